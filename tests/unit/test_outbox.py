"""Outputs travel in the state records that produced them and are sent again, identical.

The store runs against the list changelog and dict databases of `test_state`; a crash is an
exception from the output sender, or a changelog cut after any record (what a restore of a
prefix holds, as `FencedStore.apply_changelog_batch` writes it: every key, reserved ones too).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from journey.customer import CustomerState
from streams.tables.outbox import OUTBOX, outbox_of, state_of, with_outbox
from streams.tables.state import OWNER_KEY, PENDING_KEY, POSITION_KEY, Position, fenced
from tests.unit.test_state import DB, Log, make_store

ABANDONMENT = "journeystream.abandonment"
STATE = {"journey": None, "seen": {"ids": ["e1"]}, "recommend": {}}
# output values are orjson's encoding of a record (streams.routing), as here
OUT_1 = (ABANDONMENT, b"c:1", orjson.dumps({"type": "browse_abandoned", "price": 12.5, "t": "é"}))
OUT_2 = (ABANDONMENT, b"c:2", orjson.dumps({"type": "cart_abandoned", "value": 1e-7, "n": [1]}))


class Crash(Exception):
    """The worker dies here."""


def commit_batch(
    store: Any, token: bytes, batch: int, outputs: dict[bytes, list[Any]], send: Any
) -> Any:
    writes = {key: with_outbox(STATE, batch, outs) for key, outs in outputs.items()}
    position = Position({"events.page-view": 10 * batch}, 100.0 * batch, batch)
    return store.commit(
        0,
        token,
        writes,
        position,
        outbox_keys=[k for k, v in outputs.items() if v],
        send_outputs=lambda: send([s for outs in outputs.values() for s in outs]),
    )


def restore(records: list[Any]) -> DB:
    """A fresh database filled from a changelog prefix, as the fenced restore writes it."""
    db = DB()
    for key, value in fenced(records, None):
        if value is None:
            db.pop(key, None)
        else:
            db[key] = value
    return db


def test_outputs_go_after_the_states_and_before_the_position() -> None:
    log = Log()
    store, dbs = make_store(log)
    seen: list[Any] = []

    async def send(sends: list[Any]) -> None:
        seen.append(([k for k, _, _ in log.records[0]], dict(dbs[0]), sends))

    async def main() -> None:
        await store.claim({0})
        await commit_batch(store, store.token(0), 1, {b"c:1": [OUT_1], b"c:2": [OUT_2]}, send)

    asyncio.run(main())
    keys_then, db_then, sends = seen[0]
    assert keys_then == [OWNER_KEY, PENDING_KEY, b"c:1", b"c:2"]  # states in, position not
    assert b"c:1" in db_then and POSITION_KEY not in db_then
    assert sends == [OUT_1, OUT_2]
    assert [k for k, _, _ in log.records[0]][-1] == POSITION_KEY
    assert store.unsent(0) == []  # the position names the batch: nothing to send again


def test_a_crash_before_the_position_sends_the_same_bytes_again() -> None:
    log = Log()
    store, dbs = make_store(log)

    async def crash(sends: list[Any]) -> None:
        raise Crash

    async def main() -> None:
        await store.claim({0})
        with pytest.raises(Crash):
            await commit_batch(store, store.token(0), 1, {b"c:1": [OUT_1], b"c:2": [OUT_2]}, crash)

    asyncio.run(main())
    assert POSITION_KEY not in dbs[0]
    assert store.unsent(0) == [OUT_1, OUT_2]  # local state kept
    lost, _ = make_store(log)  # local state lost: restored from the changelog
    lost.db_for = lambda p: restore(log.records[0])
    assert lost.unsent(0) == [OUT_1, OUT_2]


def test_a_cut_changelog_sends_only_the_outboxes_of_the_batch_it_holds() -> None:
    log = Log()
    store, _ = make_store(log)

    async def ok(sends: list[Any]) -> None:
        return None

    async def crash(sends: list[Any]) -> None:
        raise Crash

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        await commit_batch(store, token, 1, {b"c:1": [OUT_1], b"c:2": [OUT_2]}, ok)
        with pytest.raises(Crash):
            await commit_batch(store, token, 2, {b"c:1": [OUT_1], b"c:2": [OUT_2]}, crash)

    asyncio.run(main())
    records = log.records[0]
    keys = [k for k, _, _ in records]
    second = keys.index(PENDING_KEY, keys.index(POSITION_KEY))  # batch 2's pending record
    expected = {
        second: [],  # batch 1's position, nothing of batch 2: nothing was sent, nothing to send
        second + 1: [],  # batch 2 pending, no state yet: c:1 holds batch 1's (sent) outbox
        second + 2: [OUT_1],  # c:1 of batch 2 is stored, c:2 is not (it is derived again)
        second + 3: [OUT_1, OUT_2],
    }
    for cut, sends in expected.items():
        cut_store, _ = make_store(log)
        cut_store.db_for = lambda p, cut=cut: restore(records[:cut])
        assert cut_store.unsent(0) == sends, cut


def test_a_record_holds_the_state_and_its_outbox_byte_for_byte() -> None:
    raw = with_outbox(STATE, 7, [OUT_1, OUT_2])
    record = orjson.loads(raw)
    assert record[OUTBOX]["batch"] == 7
    assert state_of(record) == STATE
    assert outbox_of(raw) == (7, [OUT_1, OUT_2])
    assert with_outbox(STATE, 7, []) == orjson.dumps(STATE)
    assert outbox_of(orjson.dumps(STATE)) == (None, [])
    empty = CustomerState().to_dict()
    assert CustomerState.from_dict(orjson.loads(with_outbox(empty, 1, [OUT_1]))).to_dict() == empty


def test_many_outputs_of_one_key_are_split_over_overflow_records_and_all_sent_again() -> None:
    """A store-day answering 3,000 discount requests in one batch: no record near 1 MB."""
    from streams.tables.outbox import (
        MAX_OUTBOX_BYTES,
        OVERFLOW_PREFIX,
        Pending,
        outbox_records,
        unsent,
    )

    sends = [
        (
            "t.decisions",
            b"c:%d" % i,
            orjson.dumps({"type": "decision", "id": f"{i:020x}", "pad": "x" * 600}),
        )
        for i in range(3000)
    ]
    records = outbox_records(b"__faust\0budget\0x", {"granted": ["a"]}, 7, sends)
    assert len(records) > 1 and records[0][0] == b"__faust\0budget\0x"
    assert all(k.startswith(OVERFLOW_PREFIX) for k, _ in records[1:])
    assert len({k for k, _ in records}) == len(records)
    assert max(len(v) for _, v in records) < MAX_OUTBOX_BYTES + 2048  # far below 1 MB
    assert orjson.loads(records[0][1])["granted"] == ["a"]  # the row's own state stays whole
    pending = Pending(7, tuple(k for k, _ in records))
    assert unsent(pending, 6, records) == sends  # every output, in order, byte for byte
    assert unsent(pending, 7, records) == []
    # a later batch's overflow leaves an older one's record stale: not sent for the new batch
    later = outbox_records(b"__faust\0budget\0x", {"granted": ["a"]}, 8, sends[:1])
    assert len(later) == 1
    assert unsent(Pending(8, (later[0][0],)), 7, [*later, *records[1:]]) == sends[:1]
