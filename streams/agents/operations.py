"""Operational metrics the agents do not see per event: lag, rebalances, recovery progress."""

from __future__ import annotations

from typing import Any

from streams import metrics, topics
from streams.agents.partitions import deadlines
from streams.app import app
from streams.app import topics as names

_INPUTS = {*names.inputs(), names(topics.INTERNAL)}


@app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Count the rebalance and drop the revoked partitions' deadline index."""
    metrics.REBALANCES.inc()
    deadlines.forget({tp.partition for tp in revoked if tp.topic == names(topics.INTERNAL)})


@app.timer(5.0)
async def report_lag_and_recovery() -> None:
    """Consumer lag per owned input partition and changelog records still to restore."""
    recovery = app.tables.recovery
    remaining = recovery.active_remaining() if recovery.in_recovery else {}
    metrics.RECOVERY_REMAINING.set(sum(max(0, v) for v in remaining.values()))
    if app.rebalancing:
        return
    for tp in app.consumer.assignment():
        if tp.topic not in _INPUTS:
            continue
        highwater = app.consumer.highwater(tp)  # from fetch responses: not the ListOffsets answer
        position = await app.consumer.position(tp)
        if highwater is not None and position is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )
