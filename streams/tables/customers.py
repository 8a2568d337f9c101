"""The `customers` table: customer states and input positions per partition (streams.tables.state).

The agent reads and writes through `store` and `cursors`; nothing else writes the table. A
partition is processed only while it has a cursor: set when its restore (up to this worker's
owner marker) has completed, from the position restored with it; dropped when it is revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP

from journey.customer import CustomerState
from streams.app import app, settings
from streams.compat import FencedTable, send_batches
from streams.recovery import confirmed_ends
from streams.tables.outbox import Pending, state_of
from streams.tables.state import PENDING_KEY, CustomerStore, Position

customers: Any = app.tables.add(
    FencedTable(
        app,
        name="customers",
        key_type=bytes,
        value_type=bytes,  # raw: values are orjson of the state
        partitions=settings.partitions,
        beacon=app.tables.beacon,
        help="Composite customer state (journey, identity, dedupe, abandonment, recommend).",
        options={
            "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
        },
    )
)
CHANGELOG = customers.changelog_topic.get_topic_name()


@dataclass
class Cursor:
    """A ready partition: next offset per input topic and the event time, as last stored."""

    offsets: dict[str, int] = field(default_factory=dict)
    event_time: float = 0.0
    batch: int = 0  # the number of the last batch written

    def position(self) -> Position:
        """The position record for this cursor."""
        return Position(dict(self.offsets), self.event_time, self.batch)


cursors: dict[int, Cursor] = {}
# derived in-memory state over a partition's stored states (streams.running): `ready(p)` once
# its restore is complete, `gone(partitions)` when they are claimed again or revoked
watchers: list[Any] = []
# what the derived state needs of a decoded stored state (None: no state); the agent keeps it
# for the keys it loads and writes, and hands both to `store.on_stored` (streams.running)
summarize: Callable[[dict[str, Any] | None], Any] | None = None


async def read_changelog(topic: str, partition: int, start: int) -> list[tuple[int, Any, Any, Any]]:
    """(offset, key, value, headers) of a changelog partition from `start` to its end."""
    tp = TopicPartition(topic, partition)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    bootstrap = settings.bootstrap_servers
    end = (await confirmed_ends(bootstrap, [tp], **auth))[tp]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **auth)
    await consumer.start()
    records: list[tuple[int, Any, Any, Any]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            for m in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                records.append((m.offset, m.key, m.value, m.headers))
    finally:
        await consumer.stop()
    return records


store = CustomerStore(
    CHANGELOG,
    db_for=lambda p: customers.data.db(p),
    producer=lambda: app.producer,
    reader=read_changelog,
    batch=lambda: rocksdict.WriteBatch(raw_mode=True),
    send=lambda topic, partition, records, headers: send_batches(
        app.producer, topic, partition, records, headers
    ),
)


class Inputs:
    """What the consumer asks the state layer: restore ends, seek targets (streams.compat)."""

    topic = CHANGELOG
    inputs: frozenset[str] = frozenset()  # the customer agent's input topics (set by the agent)

    async def claim(self, partitions: set[int]) -> dict[int, int]:
        """Claim the partitions (owner markers); the ends a restore must reach."""
        for p in partitions:
            cursors.pop(p, None)
        for watcher in watchers:
            watcher.gone(partitions)
        return await store.claim(partitions)

    def seek_targets(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """Where each input partition is read from: its cursor's offset (None: unknown)."""
        targets: dict[TP, int | None] = {}
        for tp in tps:
            cursor = cursors.get(tp.partition)
            if cursor is not None and tp.topic in self.inputs:
                targets[tp] = cursor.offsets.get(tp.topic)
        return targets

    def fill(self, offsets: Mapping[TP, int]) -> None:
        """Start offsets of input partitions that have no position yet (first run)."""
        for tp, offset in offsets.items():
            cursor = cursors.get(tp.partition)
            if cursor is not None:
                cursor.offsets.setdefault(tp.topic, offset)


inputs = app.positions = Inputs()


def on_restored(partitions: Iterable[int]) -> list[int]:
    """Give each claimed, restored partition its cursor; return the partitions made ready."""
    ready = []
    for p in partitions:
        if store.token(p) is None:
            continue  # revoked (or claimed by a newer rebalance) meanwhile
        stored = store.position(p)
        position = stored or Position()
        pending = Pending.decode(store.get(p, PENDING_KEY))
        batch = max(position.batch, pending.batch if pending is not None else 0)
        cursors[p] = Cursor(dict(position.offsets), position.event_time, batch)
        if stored is not None:  # in the changelog up to this worker's marker: committed too
            store.acked_positions[p] = stored
        for watcher in watchers:
            watcher.ready(p)
        ready.append(p)
    return ready


def on_revoked(partitions: Iterable[int]) -> None:
    """Stop processing and writing these partitions."""
    partitions = set(partitions)
    for p in partitions:
        cursors.pop(p, None)
    store.release(partitions)
    for watcher in watchers:
        watcher.gone(partitions)


def decoded(partition: int, key: bytes) -> dict[str, Any] | None:
    """The stored state of a customer key in a partition as a dict, or None."""
    raw = store.get(partition, key)
    return None if raw is None else orjson.loads(raw)


def load(
    partition: int, key: bytes, summaries: dict[bytes, Any] | None = None
) -> CustomerState | None:
    """The stored state of a customer key in a partition, or None.

    With `summaries`, the stored state's `summarize` is kept there (once per key).
    """
    data = decoded(partition, key)
    if summaries is not None and summarize is not None and key not in summaries:
        summaries[key] = summarize(data)
    return None if data is None else CustomerState.from_dict(data)


def summary(partition: int, key: bytes) -> Any:
    """`summarize` of a key's stored state (None without a summarizer)."""
    return None if summarize is None else summarize(decoded(partition, key))


def snapshot(key: bytes) -> dict | None:
    """The stored state as a dict (web views, outside stream iteration)."""
    for p in list(customers.data._dbs):
        raw = store.get(p, key)
        if raw is not None:
            return state_of(orjson.loads(raw))
    return None


def local_states() -> Iterator[CustomerState]:
    """Every state stored on this worker (all its partitions); for views, not the hot path."""
    for partition in list(customers.data._dbs):
        for _, raw in store.items(partition):
            yield CustomerState.from_dict(orjson.loads(raw))


def local_partitions() -> list[int]:
    """The partitions whose databases this worker holds."""
    return sorted(customers.data._dbs)


def local_items() -> Iterator[tuple[bytes, bytes]]:
    """Every customer (key, value) stored on this worker; for views, not the hot path."""
    for partition in local_partitions():
        yield from store.items(partition)


def partition_items(partition: int) -> list[tuple[bytes, bytes]]:
    """All customer (key, value) pairs stored locally for one partition."""
    return list(store.items(partition))
