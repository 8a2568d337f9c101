"""The worker's running views follow the state layer's commits (streams.running, CustomerStore).

Customer states made by the journey core are committed batch after batch through the real
`CustomerStore.commit` (changelog as a list, dict databases: tests.unit.test_state); after each
batch the running views must equal the from-scratch views over the stored states.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from journey import customer as core
from journey.customer import CustomerState
from journey.kpis import operations_view as segments_scratch
from streams import kpis
from streams.running import Running, changes_of
from streams.tables.state import RESERVED, Position
from tests.unit.test_figures import at, buy, view
from tests.unit.test_state import Log, make_store

PATHS = {"touch→purchase": 2}


def scratch(db: dict[bytes, bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operations view and the /segments view counted from every stored state."""
    items = [(k, v) for k, v in db.items() if not k.startswith(RESERVED)]
    journeys = [CustomerState.from_dict(orjson.loads(v)).journey for _, v in items]
    return (
        kpis.view(items, "UTC"),
        segments_scratch([j for j in journeys if j is not None], at(9, 12), PATHS),
    )


def test_running_views_equal_a_scan_after_every_commit() -> None:
    log = Log()
    store, dbs = make_store(log)
    running = Running("UTC")
    store.on_stored = running.stored
    states: dict[bytes, CustomerState] = {}
    batches: list[list[tuple[str, Any]]] = [
        [("c:a", view("c:a", at(2, 9))), ("a:b", view("a:b", at(2, 10)))],
        [("c:a", buy("c:a", at(2, 9, 10), 100.0)), ("a:b", view("a:b", at(3, 10)))],
        [("a:b", buy("a:b", at(3, 11), 30.25)), ("c:d", view("c:d", at(4, 12)))],
        [("c:a", view("c:a", at(9, 8))), ("c:a", buy("c:a", at(9, 8, 5), 0.1))],
        [("c:d", None)],  # the key is erased: a tombstone
    ]

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        assert token is not None
        running.build(0, [])  # restored empty
        for n, batch in enumerate(batches, 1):
            writes: dict[bytes, bytes | None] = {}
            for key, event in batch:
                if event is None:
                    states.pop(key.encode(), None)
                    writes[key.encode()] = None
                    continue
                state, _ = core.apply(states.get(key.encode()), event, event.occurred_at, key=key)
                states[key.encode()] = state
                writes[key.encode()] = orjson.dumps(state.to_dict())
            old = {k: dbs[0].get(k) for k in writes} if 0 in dbs else {}
            changes = changes_of(old, writes)
            await store.commit(0, token, writes, Position({}, 0.0, n), changes=changes)
            figures, segments = scratch(dbs[0])
            assert running.view() == figures, n
            assert running.segments_view(at(9, 12), PATHS, core.DEFAULT_CONFIG) == segments, n

    asyncio.run(main())
    day = {p["period"]: p for p in running.view(("day",))["day"]}
    assert day["2026-11-09"]["all"]["revenue"] == 0.1
    assert day["2026-11-03"]["all"]["revenue"] == 30.25
    assert sum(p["all"]["visitors"] for p in running.view(("month",))["month"]) == 2  # c:d erased
    # a restart: the views counted again from the stored states are the same
    rebuilt = Running("UTC")
    rebuilt.build(0, [(k, v) for k, v in dbs[0].items() if not k.startswith(RESERVED)])
    assert rebuilt.view() == running.view()
    running.gone([0])
    assert running.view(("day",))["day"] == [] and running.partitions() == []


def test_batches_stored_while_a_partition_is_counted_in_slices() -> None:
    log = Log()
    store, dbs = make_store(log)
    running = Running("UTC")
    store.on_stored = running.stored
    keys = [f"c:{i:02d}" for i in range(12)]

    def states(t: float, who: list[str]) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for key in who:
            raw = dbs[0].get(key.encode()) if 0 in dbs else None
            state = CustomerState.from_dict(orjson.loads(raw)) if raw else None
            event = buy(key, t, 10.5) if key[-1] in "05" else view(key, t)
            state, _ = core.apply(state, event, t, key=key)
            out[key.encode()] = orjson.dumps(state.to_dict())
        return out

    def stored_items() -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in dbs[0].items() if not k.startswith(RESERVED))

    async def commit(token: bytes, writes: dict[bytes, bytes | None], batch: int) -> None:
        changes = changes_of({k: dbs[0].get(k) for k in writes} if 0 in dbs else {}, writes)
        await store.commit(0, token, writes, Position({}, 0.0, batch), changes=changes)

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        assert token is not None
        await commit(token, states(at(2, 9), keys), 1)  # not counted
        running.start(0)  # the restore is complete: counted in slices from here
        running.count(0, stored_items()[:5])  # c:00 .. c:04
        assert running.counting[0] == b"c:04"
        # a batch while the count is halfway: changed keys on both sides of it, one erased on
        # each side, a new key on each side (c:035 before the last counted, c:99 after)
        writes = states(at(3, 9), ["c:01", "c:04", "c:07", "c:11", "c:035", "c:99"])
        writes.update({b"c:02": None, b"c:09": None})
        await commit(token, writes, 2)
        after = [(k, v) for k, v in stored_items() if k > b"c:04"]
        running.count(0, after)  # the rest, with its latest stored values
        running.counting.pop(0)
        figures, segments = scratch(dbs[0])
        assert running.view() == figures
        assert running.segments_view(at(9, 12), PATHS, core.DEFAULT_CONFIG) == segments
        # and a batch after the count: everything is followed again
        await commit(token, states(at(4, 9), keys[:6]), 3)
        assert running.view() == scratch(dbs[0])[0]

    asyncio.run(main())
