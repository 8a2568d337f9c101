"""The state layer's invariant: positions never ahead of state, fenced owners, proven ends.

The store runs against a changelog kept as a list (one per partition, offsets assigned in order
as a broker does) and dict databases: the same records a broker and RocksDB would hold.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.tables.state import (
    OFFSET_KEY,
    OWNER_KEY,
    POSITION_KEY,
    CustomerStore,
    PartitionLost,
    Position,
    fenced,
    restored,
)

TOPIC = "app-customers-changelog"


class Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class Log:
    """A changelog: records appended in send order, each acked with its offset."""

    def __init__(self) -> None:
        self.records: dict[int, list[tuple[bytes, bytes | None, Any]]] = {}
        self.sent_before_ack: list[bytes] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, **kw: Any) -> Any:
        assert topic == TOPIC
        part = self.records.setdefault(kw["partition"], [])
        part.append((key, value, kw["headers"]))
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(len(part) - 1))
        return fut

    def append_foreign(self, partition: int, key: bytes, value: bytes, token: bytes) -> None:
        self.records.setdefault(partition, []).append((key, value, [("owner", token)]))

    async def read(self, topic: str, partition: int, start: int) -> list[Any]:
        part = self.records.get(partition, [])
        return [(off, k, v, h) for off, (k, v, h) in enumerate(part) if off >= start]


class DB(dict):
    def write(self, batch: WriteBatch) -> None:
        for op, key, value in batch.ops:
            if op == "put":
                self[key] = value
            else:
                self.pop(key, None)


class WriteBatch:
    def __init__(self) -> None:
        self.ops: list[tuple[str, bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append(("put", key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append(("delete", key, None))


def make_store(log: Log) -> tuple[CustomerStore, dict[int, DB]]:
    dbs: dict[int, DB] = {}
    store = CustomerStore(
        TOPIC,
        db_for=lambda p: dbs.setdefault(p, DB()),
        producer=lambda: log,
        reader=log.read,
        batch=WriteBatch,
    )
    return store, dbs


def test_a_batch_lands_states_then_position_and_the_local_db_matches() -> None:
    log = Log()
    store, dbs = make_store(log)

    async def main() -> None:
        ends = await store.claim({0})
        assert ends == {0: 1}  # the marker at offset 0: a restore reads to it
        token = store.token(0)
        assert token is not None
        position = Position({"events.page-view": 7}, 100.0)
        await store.commit(0, token, {b"c:1": b"s1", b"c:2": b"s2"}, position)

    asyncio.run(main())
    keys = [k for k, _, _ in log.records[0]]
    assert keys == [OWNER_KEY, b"c:1", b"c:2", POSITION_KEY]
    assert dbs[0][b"c:1"] == b"s1"
    assert Position.decode(dbs[0][POSITION_KEY]) == Position({"events.page-view": 7}, 100.0)
    assert dbs[0][OFFSET_KEY] == b"2"  # the last state record this database holds
    assert store.acked_positions[0].offsets == {"events.page-view": 7}


def test_a_worker_fenced_out_by_a_newer_claim_writes_nothing_locally() -> None:
    log = Log()
    store, dbs = make_store(log)

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        assert token is not None
        log.append_foreign(0, OWNER_KEY, b"newer-owner", b"newer-owner")  # another worker claims
        with pytest.raises(PartitionLost):
            await store.commit(0, token, {b"c:1": b"stale"}, Position({"t": 3}))

    asyncio.run(main())
    assert b"c:1" not in dbs.get(0, {})
    assert POSITION_KEY not in dbs.get(0, {})
    assert store.token(0) is None  # it stopped writing the partition
    # and a restore of the changelog ignores the stale write after the newer marker
    assert b"c:1" not in restored(log.records[0])


def test_copies_of_own_writes_are_not_a_lost_partition() -> None:
    log = Log()
    store, dbs = make_store(log)

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        assert token is not None
        log.records[0].append((b"c:1", b"s0", [("owner", token)]))  # a retried send's copy
        await store.commit(0, token, {b"c:1": b"s1"}, Position({"t": 1}))

    asyncio.run(main())
    assert dbs[0][b"c:1"] == b"s1"


def test_a_released_partition_refuses_writes() -> None:
    log = Log()
    store, _ = make_store(log)

    async def main() -> None:
        await store.claim({0})
        token = store.token(0)
        assert token is not None
        store.release({0})
        with pytest.raises(PartitionLost):
            await store.commit(0, token, {b"c:1": b"s1"}, Position())

    asyncio.run(main())
    assert [k for k, _, _ in log.records[0]] == [OWNER_KEY]


def test_fenced_skips_a_superseded_owner_after_a_newer_marker() -> None:
    a, b = [("owner", b"A")], [("owner", b"B")]
    records = [
        (OWNER_KEY, b"A", a),
        (b"c:1", b"a1", a),
        (OWNER_KEY, b"B", b),
        (b"c:1", b"late-a", a),  # A had lost the partition: not state
        (b"c:2", b"b2", b),
        (b"c:3", b"legacy", None),  # written before owners: kept
    ]
    assert list(fenced(records, None)) == [
        (OWNER_KEY, b"A"),
        (b"c:1", b"a1"),
        (OWNER_KEY, b"B"),
        (b"c:2", b"b2"),
        (b"c:3", b"legacy"),
    ]
    assert restored(records) == {b"c:1": b"a1", b"c:2": b"b2", b"c:3": b"legacy"}


def test_restored_applies_tombstones() -> None:
    records = [(b"c:1", b"x", None), (b"c:1", None, None), (POSITION_KEY, b"{}", None)]
    assert restored(records) == {}


def test_position_round_trips() -> None:
    position = Position({"events.order": 12, "journeystream.internal": 3}, 1_790_000_000.5)
    assert Position.decode(position.encode()) == position
    assert Position.decode(None) is None
