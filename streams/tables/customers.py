"""The `customers` table: composite customer state per customer key, in RocksDB + changelog."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping

import orjson
from faust.streams import _current_event, current_event
from faust.types import EventT

from journey.customer import CustomerState
from streams.app import app, settings

customers = app.Table(
    "customers",
    key_type=bytes,
    value_type=bytes,  # bytes => Faust's "raw" codec; values are orjson of the state
    partitions=settings.partitions,
    help="Composite customer state (journey, identity, dedupe, abandonment, recommend).",
    options={
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
    },
)


def load(key: bytes) -> CustomerState | None:
    """The stored state of a customer key, or None (call inside stream iteration).

    Reads the current event's partition database directly, as Faust's store does for a
    table read inside a stream, minus the mapping layers, sensor call and key-index update a
    table read goes through (keys and values are raw bytes: nothing to decode there).
    """
    event = current_event()
    if event is None:
        raw = customers.get(key)
    else:
        raw = customers.data._db_for_partition(event.message.partition).get(key)
    return None if raw is None else CustomerState.from_dict(orjson.loads(raw))


def store_batch(
    states: Mapping[bytes, CustomerState],
    last_event: Mapping[bytes, EventT],
    forgotten: Mapping[bytes, EventT] | None = None,
) -> None:
    """Write each state once, with its own last event current, so it lands in its partition.

    Forgotten keys are deleted: a tombstone in the changelog, nothing left in RocksDB.
    """
    for key, state in states.items():
        _current_event.set(weakref.ref(last_event[key]))
        customers[key] = orjson.dumps(state.to_dict())
    for key, event in (forgotten or {}).items():
        _current_event.set(weakref.ref(event))
        if key in customers:
            del customers[key]


def snapshot(key: bytes) -> dict | None:
    """The stored state as a dict (web views, outside stream iteration)."""
    raw = customers.data.get(key) if hasattr(customers, "data") else None
    return None if raw is None else orjson.loads(raw)


def local_states() -> Iterator[CustomerState]:
    """Every state stored on this worker (all its partitions); for views, not the hot path."""
    for partition in list(customers.data._dbs):
        for key, raw in partition_items(partition):
            if isinstance(key, bytes) and not key.startswith(b"__faust"):
                yield CustomerState.from_dict(orjson.loads(raw))


def partition_items(partition: int) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs stored locally for one partition (deadline index rebuild)."""
    db = customers.data._dbs.get(partition)  # rocksdict store, one DB per partition
    return [] if db is None else list(db.items())
