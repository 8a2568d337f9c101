"""A restored partition is never ready (a cursor) without its deadline index and clock.

The customer agent processes a partition once it has a cursor; a batch can run whenever the
restore callback awaits (it sends a partition's unsent outputs again). Here partition 0 has
unsent outputs and partition 1 a customer with a deadline: while partition 0's outputs are
sent, partition 1 must either have no cursor or have its deadline indexed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from journey.customer import CustomerState
from streams import routing
from streams.agents import partitions
from streams.deadlines import DeadlineIndex
from streams.tables import customers as table
from streams.tables.outbox import Pending, with_outbox
from streams.tables.state import PENDING_KEY, POSITION_KEY, CustomerStore, Owner, Position

DUE = 1_793_610_000.0
OUTPUT = ("journeystream.recommendations", b"c:p0", b'{"id":"r-1"}')


def restored_store() -> CustomerStore:
    """Two owned partitions as a restore leaves them: 0 with a batch's outputs unsent."""
    dbs: dict[int, dict[bytes, bytes]] = {
        0: {
            b"c:p0": with_outbox(CustomerState().to_dict(), 1, [OUTPUT]),
            PENDING_KEY: Pending(1, (b"c:p0",)).encode(),
        },
        1: {
            b"c:due": orjson.dumps(CustomerState(recommend={"due": DUE}).to_dict()),
            POSITION_KEY: Position({"t": 5}, DUE - 60.0, 3).encode(),
        },
    }
    store = CustomerStore("changelog", dbs.__getitem__, None, None, None)
    store.owners = {0: Owner(b"t0", 2), 1: Owner(b"t1", 2)}
    return store


def test_a_partition_gets_its_cursor_with_its_deadlines_and_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = restored_store()
    index = DeadlineIndex("event")
    monkeypatch.setattr(table, "store", store)
    monkeypatch.setattr(table, "cursors", {})
    monkeypatch.setattr(partitions, "deadlines", index)
    seen: list[tuple[list[Any], dict[int, Any]]] = []

    async def send_all(sends: list[Any]) -> None:
        await asyncio.sleep(0)  # where a batch of any ready partition can run
        ready = {p: (index.earliest(p), index.clocks.get(p)) for p in table.cursors}
        seen.append((sends, ready))

    monkeypatch.setattr(routing, "send_all", send_all)
    asyncio.run(partitions.on_restored())

    assert [sends for sends, _ in seen] == [[OUTPUT]]  # partition 0's outputs, sent again
    for _, ready in seen:
        for p, (earliest, clock) in ready.items():
            assert clock is not None, f"partition {p} ready without its clock"
            assert p != 1 or earliest == DUE, f"partition 1 ready, deadline index {earliest}"
    assert sorted(table.cursors) == [0, 1]
    assert index.earliest(1) == DUE
    assert index.clocks[1].event_time == DUE - 60.0
