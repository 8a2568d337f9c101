"""The state layer: customer states and input positions that cannot disagree after a crash.

Invariant: each changelog partition holds, after the customer writes of a batch, a position
record (every input topic-partition of that partition number -> next offset to read, and the
partition's event time). The record is sent only after the batch's customer writes were
acknowledged, through one producer that keeps one request in flight per partition, so any prefix
of the changelog that contains a position contains every write before it. A worker reads its
inputs from the restored position, never from the group's committed offset.

Ownership: on every assignment the worker appends an owner marker (a fresh token) to each of its
changelog partitions and restores up to that marker: the restore end is a record the worker
wrote and saw acknowledged, not an end the broker reported. Writes carry their owner's token in a
header; a restore ignores writes of any other token after a marker. The local RocksDB is written
only after the changelog acknowledged the same writes at the offsets that follow the worker's own
last record, so a worker that lost a partition without knowing it never keeps stale writes.

Outputs: a batch's outputs are sent after its states are stored, inside the customer records
that produced them (`streams.tables.outbox`), and before its position; a restore that finds the
batch's position missing sends them again from those records, identical.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.tables import outbox
from streams.tables.outbox import Pending, Send

logger = logging.getLogger(__name__)

OFFSET_KEY = b"__faust\0offset__"  # Faust's own: the last changelog offset in the local DB
OWNER_KEY = b"__faust\0owner__"  # the owner marker: after it only this token writes
POSITION_KEY = b"__faust\0position__"  # the partition's input position
PENDING_KEY = b"__faust\0pending__"  # the batch whose outputs may be unsent (tables.outbox)
RESERVED = b"__faust"
OWNER_HEADER = "owner"


@dataclass(frozen=True, slots=True)
class Position:
    """How far a partition's inputs are applied: next offset per input topic, event time, and
    the number of the batch whose outputs were all sent with it."""

    offsets: Mapping[str, int] = field(default_factory=dict)
    event_time: float = 0.0
    batch: int = 0

    def encode(self) -> bytes:
        """Wire form of the position record."""
        return orjson.dumps(
            {"offsets": dict(self.offsets), "event_time": self.event_time, "batch": self.batch}
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> Position | None:
        """The position in a stored record, or None."""
        if raw is None:
            return None
        data = orjson.loads(raw)
        return cls(
            dict(data.get("offsets") or {}),
            float(data.get("event_time") or 0.0),
            int(data.get("batch") or 0),
        )


def header_owner(headers: Any) -> bytes | None:
    """The owner token in a record's headers, or None (records written before owners)."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name == OWNER_HEADER:
            return bytes(value)
    return None


def fenced(
    records: Iterable[tuple[bytes, bytes | None, Any]], owner: bytes | None
) -> Iterator[tuple[bytes, bytes | None]]:
    """The (key, value) writes a restore applies, in order: none of a superseded owner.

    `records` are (key, value, headers) in changelog order; `owner` is the token of the last
    marker already applied. A marker makes its token the owner; a write whose token is not the
    owner's is a late write of a worker that lost the partition, and is skipped.
    """
    for key, value, headers in records:
        if key == OWNER_KEY:
            owner = value
            yield key, value
            continue
        token = header_owner(headers)
        if token is not None and owner is not None and token != owner:
            continue
        yield key, value


def restored(records: Iterable[tuple[bytes, bytes | None, Any]]) -> dict[bytes, bytes]:
    """What a full restore of one changelog partition holds: customer keys, latest value, fenced.

    `records` are one partition's (key, value, headers) in offset order; reserved keys
    (owner marker, position, Faust's offset) are left out.
    """
    state: dict[bytes, bytes] = {}
    for key, value in fenced(records, None):
        if key.startswith(RESERVED):
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


@dataclass
class Owner:
    """This worker's claim on a changelog partition: its token and where its next write lands."""

    token: bytes
    next_offset: int


# (topic, partition, records, headers) -> the records' offsets (streams.compat.send_batches)
SendRecords = Callable[[str, int, list[tuple[bytes, bytes | None]], Any], Awaitable[list[int]]]
# told after a batch's local write, with what the caller passed as `changes` (streams.running)
Stored = Callable[[int, Any], None]


class PartitionLost(Exception):
    """Another worker claimed the partition: this worker must not write it any more."""


class CustomerStore:
    """Per-partition customer states and positions over RocksDB and one changelog topic.

    `db_for(partition)` opens the partition's database (Faust's store owns the handles);
    `producer()` returns Faust's producer; `reader` reads changelog records (fencing check).
    """

    def __init__(
        self,
        topic: str,
        db_for: Any,
        producer: Any,
        reader: Any,
        batch: Any,
        send: SendRecords | None = None,
    ) -> None:
        self.topic = topic
        self.db_for = db_for
        self.producer = producer
        # records to one partition -> their offsets (default: one `producer().send` a record)
        self.send_records: SendRecords = send or self._send_each
        self.reader = reader
        self.write_batch = batch
        self.owners: dict[int, Owner] = {}
        self.acked_positions: dict[int, Position] = {}
        self.on_stored: Stored | None = None  # each batch stored locally, with its `changes`

    # reads

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The stored value of a key in a partition."""
        return self.db_for(partition).get(key)

    def position(self, partition: int) -> Position | None:
        """The position stored with the partition's state."""
        return Position.decode(self.db_for(partition).get(POSITION_KEY))

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every customer (key, value) of a partition (reserved keys skipped)."""
        for key, value in self.db_for(partition).items():
            if isinstance(key, bytes) and not key.startswith(RESERVED):
                yield key, value

    # ownership

    async def claim(self, partitions: Iterable[int]) -> dict[int, int]:
        """Append a fresh owner marker to each partition; return each restore end (marker + 1)."""
        tokens = {p: uuid.uuid4().hex.encode() for p in partitions}
        for p in tokens:
            self.owners.pop(p, None)
        futures = {
            p: await self.producer().send(
                self.topic,
                OWNER_KEY,
                token,
                partition=p,
                timestamp=None,
                headers=[(OWNER_HEADER, token)],
            )
            for p, token in tokens.items()
        }
        ends: dict[int, int] = {}
        for p, fut in futures.items():
            meta = await fut
            self.owners[p] = Owner(tokens[p], meta.offset + 1)
            ends[p] = meta.offset + 1
        return ends

    def release(self, partitions: Iterable[int]) -> None:
        """Stop writing these partitions (revoked)."""
        for p in partitions:
            self.owners.pop(p, None)
            self.acked_positions.pop(p, None)

    def token(self, partition: int) -> bytes | None:
        """This worker's current token for a partition, or None if it does not own it."""
        owner = self.owners.get(partition)
        return None if owner is None else owner.token

    # the write path

    async def commit(
        self,
        partition: int,
        token: bytes,
        writes: Mapping[bytes, bytes | None],
        position: Position,
        *,
        outbox_keys: Iterable[bytes] = (),
        send_outputs: Callable[[], Awaitable[None]] | None = None,
        changes: Any = None,
    ) -> None:
        """Write a batch of one partition: changelog, local DB, outputs, then the position.

        With `outbox_keys` (the written keys whose records carry outputs of batch
        `position.batch`), a pending record naming them goes first; `send_outputs` runs after
        the states are in the changelog and in the local DB, before the position is stored.
        `changes` (what the batch changed, as the caller summarised it) goes to `on_stored`
        right after the local write, before anything else can read the database.
        Raises PartitionLost when the partition was claimed by another worker (or released
        here) since `token` was read: nothing is then written locally.
        """
        headers = [(OWNER_HEADER, token)]
        records: list[tuple[bytes, bytes | None]] = []
        keys = tuple(outbox_keys)
        if keys:
            records.append((PENDING_KEY, Pending(position.batch, keys).encode()))
        records.extend(writes.items())
        metas = await self._send(partition, token, records, headers)
        db = self.db_for(partition)
        batch = self.write_batch()
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if metas:
            batch.put(OFFSET_KEY, str(max(metas)).encode())
        db.write(batch)
        if changes is not None and self.on_stored is not None:
            self.on_stored(partition, changes)
        if send_outputs is not None:
            await send_outputs()
        stored = self.write_batch()
        stored.put(POSITION_KEY, position.encode())
        db.write(stored)
        await self._send(partition, token, [(POSITION_KEY, position.encode())], headers)
        self.acked_positions[partition] = position

    def unsent(self, partition: int) -> list[Send]:
        """Outputs of a batch whose states are stored but whose position is not: send again."""
        db = self.db_for(partition)
        pending = Pending.decode(db.get(PENDING_KEY))
        if pending is None:
            return []
        position = self.position(partition) or Position()
        return outbox.unsent(pending, position.batch, ((k, db.get(k)) for k in pending.keys))

    async def _send(
        self,
        partition: int,
        token: bytes,
        records: Iterable[tuple[bytes, bytes | None]],
        headers: Any,
    ) -> list[int]:
        """Send records to the partition, await them, check nobody else wrote in between."""
        owner = self.owners.get(partition)
        if owner is None or owner.token != token:
            raise PartitionLost(partition)
        offsets = sorted(await self.send_records(self.topic, partition, list(records), headers))
        if not offsets:
            return offsets
        expected = list(range(owner.next_offset, owner.next_offset + len(offsets)))
        if offsets != expected and not await self._only_own(partition, token, owner.next_offset):
            self.owners.pop(partition, None)
            raise PartitionLost(partition)
        if self.owners.get(partition) is not owner:
            raise PartitionLost(partition)
        owner.next_offset = offsets[-1] + 1
        return offsets

    async def _send_each(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]], headers: Any
    ) -> list[int]:
        """Send records one `producer().send` each; their offsets."""
        futures = [
            await self.producer().send(
                topic, key, value, partition=partition, timestamp=None, headers=headers
            )
            for key, value in records
        ]
        return [meta.offset for meta in await asyncio.gather(*futures)]

    async def _only_own(self, partition: int, token: bytes, start: int) -> bool:
        """True if no other owner's marker is in the changelog from `start` on (retry copies)."""
        records = await self.reader(self.topic, partition, start)
        foreign = [off for off, key, value, _ in records if key == OWNER_KEY and value != token]
        if foreign:
            logger.warning(
                "changelog %s[%d]: claimed by another worker at %d; partition released",
                self.topic,
                partition,
                foreign[0],
            )
            return False
        logger.info(
            "changelog %s[%d]: offsets not contiguous, all own writes", self.topic, partition
        )
        return True
