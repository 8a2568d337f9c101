"""Operational metrics the agents do not see per event: lag, commits, segments, recovery."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from journey.customer import CustomerState
from journey.stages import SEGMENTS, segment_at
from streams import metrics, topics
from streams.agents.customers import journey_config
from streams.agents.partitions import deadlines
from streams.app import app, settings
from streams.app import topics as names
from streams.tables import customers as table
from streams.tables.state import RESERVED

_INPUTS = {*names.inputs(), names(topics.INTERNAL)}
# customers decoded per 2 s tick: about 40 µs each on a busy core, so at most 40 ms of the loop
SEGMENT_SCAN_PER_TICK = 1000


@app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Count the rebalance and drop the revoked partitions' deadline index."""
    metrics.REBALANCES.inc()
    deadlines.forget({tp.partition for tp in revoked if tp.topic == names(topics.INTERNAL)})


@app.timer(5.0)
async def report_lag_and_recovery() -> None:
    """Consumer lag and applied offset per owned input partition, changelog records to restore."""
    recovery = app.tables.recovery
    remaining = recovery.active_remaining() if recovery.in_recovery else {}
    metrics.RECOVERY_REMAINING.set(sum(max(0, v) for v in remaining.values()))
    report_applied()
    if app.rebalancing:
        return
    owned = [tp for tp in app.consumer.assignment() if tp.topic in _INPUTS]
    for tp in owned:
        highwater = app.consumer.highwater(tp)  # from fetch responses: not the ListOffsets answer
        position = await app.consumer.position(tp)
        if highwater is not None and position is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )
    metrics.prune(metrics.CONSUMER_LAG, ((tp.topic, str(tp.partition)) for tp in owned))


def report_applied() -> None:
    """The offsets the changelog acknowledged per owned input partition (read-only use)."""
    applied = {
        (topic, str(partition)): offset
        for partition, position in list(table.store.acked_positions.items())
        for topic, offset in position.offsets.items()
        if topic in _INPUTS
    }
    for labels, offset in applied.items():
        metrics.APPLIED_OFFSET.labels(*labels).set(offset)
    metrics.prune(metrics.APPLIED_OFFSET, applied)


Read = Callable[[int, bytes | None, int], list[tuple[bytes, bytes]]]


class SegmentScan:
    """Customers per segment of the owned partitions, counted a slice of keys per tick."""

    def __init__(self) -> None:
        self.done: dict[int, Counter[str]] = {}  # each partition's last complete pass
        self.counting: Counter[str] = Counter()
        self.partition: int | None = None
        self.after: bytes | None = None  # the last key counted in the current pass

    def _start(self, partition: int) -> None:
        """Begin a new pass over `partition`."""
        self.partition, self.after, self.counting = partition, None, Counter()

    def tick(
        self,
        owned: Iterable[int],
        read: Read,
        segment_of: Callable[[bytes], str | None],
        limit: int,
    ) -> Counter[str]:
        """Count up to `limit` more customers; the totals of the owned partitions' last passes."""
        order = sorted(set(owned))
        for gone in set(self.done) - set(order):
            del self.done[gone]
        if order and self.partition not in order:
            self._start(order[0])
        finished = 0
        while order and limit > 0 and finished < len(order):
            partition = order[0] if self.partition is None else self.partition
            rows = read(partition, self.after, limit)
            for key, raw in rows:
                if (segment := segment_of(raw)) is not None:
                    self.counting[segment] += 1
                self.after = key
            limit -= len(rows)
            if limit > 0:  # fewer rows than asked: the partition's pass is complete
                self.done[partition] = self.counting
                finished += 1
                later = [p for p in order if p > partition]
                self._start(later[0] if later else order[0])
        totals: Counter[str] = Counter()
        for partition in order:
            totals.update(self.done.get(partition, Counter()))
        return totals


def read_slice(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
    """Up to `limit` customer (key, value) pairs of a partition after key `after` (read-only)."""
    rows: list[tuple[bytes, bytes]] = []
    for key, value in table.store.db_for(partition).items(from_key=after):
        if not isinstance(key, bytes) or key.startswith(RESERVED) or key == after:
            continue
        rows.append((key, value))
        if len(rows) == limit:
            break
    return rows


segments = SegmentScan()


@app.timer(2.0)
async def report_segments() -> None:
    """journeystream_customers by segment, kept current by a rolling pass over the local state."""
    if app.rebalancing:
        return
    clocks = [c.now() for c in deadlines.clocks.values()]
    now = max([*clocks, time.time()] if settings.clock == "live" else clocks, default=0.0)

    def segment_of(raw: bytes) -> str | None:
        """A stored state's segment now (None without a journey)."""
        return segment_at(CustomerState.from_dict(orjson.loads(raw)).journey, now, journey_config)

    totals = segments.tick(list(table.cursors), read_slice, segment_of, SEGMENT_SCAN_PER_TICK)
    for segment in SEGMENTS:
        metrics.CUSTOMERS.labels(segment).set(totals.get(segment, 0))
