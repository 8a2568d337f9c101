"""Operational metrics the agents do not see per event: lag, commits, segments, recovery."""

from __future__ import annotations

import time
from typing import Any

from journey.stages import SEGMENTS
from streams import compat, metrics, topics
from streams.agents.customers import journey_config
from streams.agents.partitions import deadlines
from streams.app import app, settings
from streams.app import topics as names
from streams.running import running
from streams.tables import customers as table

_INPUTS = {*names.inputs(), names(topics.INTERNAL)}


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust sends `revoked` positionally
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Count the rebalance."""
    metrics.REBALANCES.inc()


@app.timer(5.0)
async def report_lag_and_recovery() -> None:
    """Consumer lag and applied offset per owned input partition, changelog records to restore."""
    recovery = compat.table_recovery(app)
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


@app.timer(2.0)
async def report_segments() -> None:
    """journeystream_customers by segment, from the counts kept on write (`streams.running`)."""
    if app.rebalancing or running.counting:
        return  # partitions moving or being counted: keep the last values
    clocks = [c.now() for c in deadlines.clocks.values()]
    now = max([*clocks, time.time()] if settings.clock == "live" else clocks, default=0.0)
    segments = running.segments_view(now, {}, journey_config)["segments"]
    for segment in SEGMENTS:
        metrics.CUSTOMERS.labels(segment).set(segments.get(segment, 0))
