"""A customer's outbox: the outputs of its last write, stored in the same changelog record.

A batch's outputs are sent only after the states that produced them are in the changelog. A
customer record carries, under `outbox`, the outputs its write produced and the batch number
they belong to; a partition's *pending record* (written before the batch's states) names the
batch and the keys with outputs. If a crash comes after the states and before the batch's
position, a restore finds the pending batch ahead of the position and sends those outboxes
again, byte for byte: a repeated output is always an identical record, whatever in-memory
context (price tiers, catalog, co-purchases) the worker had when it derived it.

A key that produced many outputs in one batch (a store-day's discount budget answers every
request of the batch) keeps at most MAX_OUTBOX_BYTES of them in its own record; the rest go in
overflow records (`outbox_records`, keys under the reserved `__faust` prefix, which every reader
of customer states skips), written and named in the pending record like any outbox, so no
changelog record outgrows the broker's message size limit (1 MB by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

OUTBOX = "outbox"  # the field of a customer record that holds its outbox
MAX_OUTBOX_BYTES = 256 * 1024  # output bytes in one record; the rest go to overflow records
OVERFLOW_PREFIX = b"__faust\0outbox\0"  # reserved: readers of customer states skip `__faust`

Send = tuple[str, bytes, bytes]  # (topic, key, value), as streams.routing builds them


@dataclass(frozen=True, slots=True)
class Pending:
    """A batch whose outputs may not all be sent: its number and the keys holding outboxes."""

    batch: int
    keys: tuple[bytes, ...]

    def encode(self) -> bytes:
        """Wire form of the pending record."""
        return orjson.dumps({"batch": self.batch, "keys": [k.decode() for k in self.keys]})

    @classmethod
    def decode(cls, raw: bytes | None) -> Pending | None:
        """The pending record in a stored value, or None."""
        if raw is None:
            return None
        data = orjson.loads(raw)
        return cls(int(data["batch"]), tuple(k.encode() for k in data.get("keys") or ()))


def with_outbox(state: dict[str, Any], batch: int, sends: Sequence[Send]) -> bytes:
    """A customer record: the state (`CustomerState.to_dict()`) and the outputs of this write.

    Output values are embedded as they are, so they must be orjson's encoding of a JSON object
    (as `streams.routing` builds them): `outbox_of` re-encodes them to the same bytes.
    """
    if not sends:
        return orjson.dumps(state)
    records = [[topic, key.decode(), orjson.Fragment(value)] for topic, key, value in sends]
    return orjson.dumps({**state, OUTBOX: {"batch": batch, "records": records}})


def outbox_records(
    key: bytes, state: dict[str, Any], batch: int, sends: Sequence[Send]
) -> list[tuple[bytes, bytes]]:
    """The record of `key` (its state and first outputs) and overflow records for the rest."""
    chunks: list[list[Send]] = [[]]
    size = 0
    for send in sends:
        cost = len(send[0]) + len(send[1]) + len(send[2]) + 16  # as embedded: [topic, key, value]
        if chunks[-1] and size + cost > MAX_OUTBOX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(send)
        size += cost
    records = [(key, with_outbox(state, batch, chunks[0]))]
    for n, chunk in enumerate(chunks[1:], 1):
        records.append((overflow_key(key, n), with_outbox({}, batch, chunk)))
    return records


def overflow_key(key: bytes, n: int) -> bytes:
    """The key of a customer key's `n`-th overflow record (n >= 1)."""
    return OVERFLOW_PREFIX + key + b"\0" + str(n).encode()


def state_of(record: dict[str, Any]) -> dict[str, Any]:
    """The customer state in a decoded record (its outbox left out)."""
    if OUTBOX not in record:
        return record
    return {k: v for k, v in record.items() if k != OUTBOX}


def outbox_of(raw: bytes) -> tuple[int | None, list[Send]]:
    """The batch number and the outputs (values re-encoded identically) of a customer record."""
    box = orjson.loads(raw).get(OUTBOX)
    if not box:
        return None, []
    sends = [(topic, key.encode(), orjson.dumps(value)) for topic, key, value in box["records"]]
    return int(box["batch"]), sends


def unsent(
    pending: Pending | None, applied_batch: int, records: Iterable[tuple[bytes, bytes | None]]
) -> list[Send]:
    """The outputs to send again: those of the pending batch, if its position is not stored.

    `records` are the (key, stored value) of the pending record's keys.
    """
    if pending is None or pending.batch <= applied_batch:
        return []
    out: list[Send] = []
    for _, raw in records:
        if raw is None:
            continue
        batch, sends = outbox_of(raw)
        if batch == pending.batch:
            out.extend(sends)
    return out
