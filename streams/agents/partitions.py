"""A partition's progress in the customer agent: cursor, admission, write, gaps, ownership.

A batch works on each partition through a `Work`: the partition's cursor (next offset per input
topic and the event time, as last stored), the states it changes, and this worker's owner token.
A record is admitted only at its partition's next offset; the batch's states and the new
position are written by `commit` (streams.tables.state). A partition is processed only while it
has a cursor: from the end of its restore to its revocation.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from journey.customer import CustomerState
from streams import compat, metrics, routing, topics
from streams.app import app, settings
from streams.app import topics as names
from streams.clock import Clock
from streams.deadlines import DeadlineIndex
from streams.tables import customers as table
from streams.tables.outbox import Send, outbox_records
from streams.tables.state import PartitionLost, Position

deadlines = DeadlineIndex(settings.clock)
idle = asyncio.Event()  # set while no batch is in flight
idle.set()


@dataclass
class Work:
    """What a batch changes in one partition: states to write once each, the new position."""

    partition: int
    token: bytes
    offsets: dict[str, int]
    clock: Clock
    batch: int  # this batch's number in the partition
    states: dict[bytes, CustomerState] = field(default_factory=dict)
    deleted: set[bytes] = field(default_factory=set)
    outbox: dict[bytes, list[Send]] = field(default_factory=dict)  # outputs per written key
    rows: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # reserved-key rows (budget)
    before: dict[bytes, Any] = field(default_factory=dict)  # loaded keys' `table.summarize`
    applied: int = 0

    def outputs_of(self, key: bytes) -> list[Send]:
        """Where the outputs of a customer's change go: its outbox, sent after its write."""
        return self.outbox.setdefault(key, [])

    def state(self, key: bytes) -> CustomerState | None:
        """The batch's copy of a state, else the stored one."""
        if key in self.deleted:
            return None
        state = self.states.get(key)
        return state if state is not None else table.load(self.partition, key, self.before)

    def put(self, key: bytes, state: CustomerState) -> None:
        """Keep a changed state for the end-of-batch write."""
        self.states[key] = state
        self.deleted.discard(key)
        deadlines.track(self.partition, key, state)

    def delete(self, key: bytes) -> list[Send]:
        """Erase a key at the end of the batch (a tombstone in the changelog).

        Returns the outputs its outbox held: a tombstone carries none, the caller sends them.
        """
        self.states.pop(key, None)
        self.deleted.add(key)
        deadlines.due_of.pop(key, None)
        return self.outbox.pop(key, [])


def open_work(partition: int) -> Work | None:
    """A partition's batch context, or None while it is not ready (being restored)."""
    cursor = table.cursors.get(partition)
    token = table.store.token(partition)
    if cursor is None or token is None:
        return None
    clock = copy.copy(deadlines.clock(partition))
    return Work(partition, token, dict(cursor.offsets), clock, cursor.batch + 1)


gaps: dict[TP, tuple[int, float, int]] = {}  # tp -> (expected offset, last seek, seeks)
unplaced: set[TP] = set()  # records came before the partition had a start offset


def admit(work: Work, topic: str, offset: int) -> bool:
    """True if the record is the partition's next one; skip re-deliveries and gaps."""
    expected = work.offsets.get(topic)
    if expected is None:  # delivered before the first seek placed a new partition: read again
        metrics.labelled(metrics.INPUT_SKIPS, "not_ready").inc()
        unplaced.add(TP(topic, work.partition))
        return False
    if offset < expected:
        metrics.labelled(metrics.INPUT_SKIPS, "already_applied").inc()
        return False
    if offset > expected:
        metrics.labelled(metrics.INPUT_SKIPS, "gap").inc()
        tp = TP(topic, work.partition)
        if tp not in gaps or gaps[tp][0] != expected:
            gaps[tp] = (expected, 0.0, 0)
        return False
    work.offsets[topic] = offset + 1
    work.applied += 1
    return True


async def commit(work: Work, send: Callable[[list[Send]], Awaitable[None]]) -> None:
    """Write a partition's states (with their outboxes), send the outputs, write the position."""
    outputs = {
        key: sends
        for key, sends in work.outbox.items()
        if sends and (key in work.states or key in work.rows)
    }
    writes: dict[bytes, bytes | None] = {}
    outbox_keys: list[bytes] = []
    # encoded at once, and nothing changes the states until the write is done: no copies
    stored = [(key, state.to_dict(copy=False)) for key, state in work.states.items()]
    for key, record in [*stored, *work.rows.items()]:
        records = outbox_records(key, record, work.batch, outputs.get(key, ()))
        writes.update(records)
        if key in outputs:
            outbox_keys += [k for k, _ in records]
    writes.update(dict.fromkeys(work.deleted))
    changes = summary_changes(work, stored)
    position = Position(dict(work.offsets), work.clock.event_time, work.batch)
    flat = [s for sends in outputs.values() for s in sends]
    if flat and settings.fault == "exit_before_outputs":
        send = exit_before_outputs
    try:
        await table.store.commit(
            work.partition,
            work.token,
            writes,
            position,
            outbox_keys=outbox_keys,
            send_outputs=(lambda: send(flat)) if flat else None,
            changes=changes,
        )
    except PartitionLost:
        table.cursors.pop(work.partition, None)
        app.log.warning("partition %d was claimed by another worker: stopped", work.partition)
        return
    cursor = table.cursors.get(work.partition)
    if cursor is not None:
        cursor.offsets = dict(work.offsets)
        cursor.event_time = work.clock.event_time
        cursor.batch = work.batch
        deadlines.clocks[work.partition] = work.clock


def summary_changes(
    work: Work, stored: list[tuple[bytes, dict[str, Any]]]
) -> dict[bytes, tuple[Any, Any]] | None:
    """Each written customer key's `table.summarize`, as stored before the batch and after it."""
    summarize = table.summarize
    if summarize is None:
        return None
    before = work.before

    def was(key: bytes) -> Any:
        return before[key] if key in before else table.summary(work.partition, key)

    changes = {key: (was(key), summarize(record)) for key, record in stored}
    for key in work.deleted:
        changes[key] = (was(key), summarize(None))
    return changes


async def exit_before_outputs(sends: list[Send]) -> None:
    """The test suite's fault: die with the states stored and the outputs not sent."""
    app.log.warning("fault exit_before_outputs: exiting with %d outputs unsent", len(sends))
    os._exit(70)


async def read_gaps_again() -> None:
    """Seek partitions with a gap back to their position (again after a second, if needed)."""
    now = time.monotonic()
    for tp in list(unplaced):  # once placed, they are a gap: read from the start offset
        cursor = table.cursors.get(tp.partition)
        start = None if cursor is None else cursor.offsets.get(tp.topic)
        if cursor is None or start is not None:
            unplaced.discard(tp)
        if start is not None and tp not in gaps:
            gaps[tp] = (start, 0.0, 0)
    for tp, (expected, last, seeks) in list(gaps.items()):
        cursor = table.cursors.get(tp.partition)
        if cursor is None or cursor.offsets.get(tp.topic, expected) != expected:
            del gaps[tp]  # revoked, or the records arrived
            continue
        if now - last < 1.0:
            continue
        if seeks >= 5 and await accept_gap(tp, expected, cursor):
            del gaps[tp]
            continue
        gaps[tp] = (expected, now, seeks + 1)
        log = app.log.info if seeks == 0 else app.log.warning
        log(
            "%s[%d]: records after %d arrived first: reading from it",
            tp.topic,
            tp.partition,
            expected,
        )
        try:
            await app.consumer.seek(tp, expected)
        except Exception as exc:  # no longer assigned, or stopping
            app.log.warning("cannot seek %s[%d]: %s", tp.topic, tp.partition, exc)


async def accept_gap(tp: TP, expected: int, cursor: table.Cursor) -> bool:
    """Skip offsets the broker no longer holds (retention): counted, logged, never silent."""
    earliest = (await app.consumer.earliest_offsets(tp)).get(tp)
    if earliest is None or earliest <= expected:
        return False
    app.log.error(
        "%s[%d]: offsets %d..%d are gone from the broker: skipped",
        tp.topic,
        tp.partition,
        expected,
        earliest - 1,
    )
    metrics.INPUT_GAPS_ACCEPTED.inc(earliest - expected)
    cursor.offsets[tp.topic] = earliest
    return True


def index_partition(partition: int) -> None:
    """Rebuild a partition's deadline index from its stored states."""
    deadlines.rebuild(partition, table.partition_items(partition))


@table.customers.on_recover
async def on_restored() -> None:
    """Restore done: send unsent outputs again, then make the partitions ready, all at once.

    A batch can run while this awaits, so no await comes between a partition's cursor and its
    deadline index and clock: a batch that saw a cursor without them would fire none of the
    partition's deadlines, which would then fire late, at a later record.
    """
    owned = list(table.store.owners)
    for partition in owned:
        unsent = table.store.unsent(partition)
        if unsent:
            app.log.info("partition %d: %d outputs sent again", partition, len(unsent))
            metrics.OUTPUTS_RESENT.inc(len(unsent))
            await routing.send_all(unsent)
    for partition in table.on_restored(owned):
        index_partition(partition)
        clock = deadlines.clocks[partition] = Clock(settings.clock)
        clock.advance_to(table.cursors[partition].event_time)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust sends `revoked` positionally
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Let the batch in flight finish (it writes its position), then stop the partitions."""
    try:
        await asyncio.wait_for(idle.wait(), timeout=settings.rebalance_timeout_s / 2)
    except TimeoutError:
        app.log.warning("batch still running at revocation: its writes will be fenced")
    table.on_revoked({tp.partition for tp in revoked})
    deadlines.forget({tp.partition for tp in revoked if tp.topic == names(topics.INTERNAL)})


@app.timer(settings.commit_interval_s)
async def commit_positions() -> None:
    """Commit the positions the changelog holds, for lag monitoring and tools.

    Committed again every interval, changed or not: in the reliability runs the group's
    committed offset was seen to stay behind the owner's applied position after a rebalance,
    and nothing reads commits for correctness any more.
    """
    assigned = app.consumer.assignment()
    offsets = {
        tp: offset
        for partition, position in list(table.store.acked_positions.items())
        for topic, offset in position.offsets.items()
        if (tp := TP(topic, partition)) in assigned
    }
    if offsets:
        await compat.commit_offsets(app.consumer, offsets)


@app.timer(1.0)
async def gap_timer() -> None:
    """Seek gaps again also when no batch arrives (a seek lost to a rebalance or a stale fetch)."""
    if (gaps or unplaced) and not app.rebalancing and idle.is_set():
        await read_gaps_again()
