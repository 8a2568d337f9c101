"""The operations view of the current day, week and month as Prometheus gauges (`kpi_*`).

Every `JOURNEYSTREAM_KPI_GAUGES_INTERVAL_S` (0: off) a timer counts this worker's local
customer states with the code of `/kpis` (`journey.figures.CurrentPeriods`, the figures
`operations_view` gives for the current periods) and sets the `journeystream_kpi_*` gauges
(`streams.metrics.KPI_GAUGES`, samples from `streams.kpis.gauge_samples`): summable counts per
period and group, so Prometheus sums them over the workers and computes rates from the sums.

Cost: every local customer state is decoded once per refresh, in the worker's event loop, in
slices of `SLICE` states with a yield to the loop between two slices, so events keep being
processed during a pass (no long stall: a slice takes some 15-60 ms). A pass that sees its
partitions move (a rebalance, a revocation) is dropped and the gauges keep their last values;
so is a failed one, which is logged and counted (`journeystream_kpi_refresh_errors_total`): the
timer never stops the worker. `journeystream_kpi_refresh_seconds` is the duration of the last
pass, slices and waits included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from journey.activity import day_of
from journey.figures import CurrentPeriods
from streams import kpis, metrics
from streams.agents.operations import read_slice
from streams.app import app, settings
from streams.tables import customers as table
from streams.web import processing_now

log = logging.getLogger(__name__)

SLICE = 500  # customer states decoded between two yields to the event loop (about 30 µs each)


async def scan(day: str) -> dict[str, dict[str, Any] | None] | None:
    """The current periods' figures over the ready local partitions; None if they moved."""
    periods = CurrentPeriods(day, settings.store_timezone)
    for partition in sorted(table.cursors):
        after: bytes | None = None
        while True:
            if app.rebalancing or partition not in table.cursors:
                return None  # partitions moved: the pass would count some of them only
            rows = read_slice(partition, after, SLICE)
            for customer in kpis.activity_of(rows):
                periods.add(*customer)
            if len(rows) < SLICE:
                break
            after = rows[-1][0]
            await asyncio.sleep(0)  # let the agent, the heartbeats and the web server run
    return periods.figures()


async def refresh() -> bool:
    """Count the local customer states and set the gauges; False when the pass was dropped."""
    started = time.perf_counter()
    figures = await scan(day_of(processing_now(), settings.store_timezone))
    if figures is None:
        return False
    for name, values in kpis.gauge_samples(figures).items():
        gauge = metrics.KPI_GAUGES[name]
        for labels, value in values.items():
            metrics.labelled(gauge, *labels).set(value)
    metrics.KPI_REFRESH_SECONDS.set(time.perf_counter() - started)
    metrics.KPI_REFRESH_TIMESTAMP.set(time.time())
    return True


async def refresh_kpi_gauges() -> None:
    """The timer: refresh, except while partitions move or are restored; never raises."""
    if app.rebalancing or app.tables.recovery.in_recovery:
        return  # half-restored partitions would count short: keep the last values
    try:
        await refresh()
    except Exception:  # the gauges must never stop the worker
        metrics.KPI_REFRESH_ERRORS.inc()
        log.exception("kpi gauges: refresh failed (the gauges keep their last values)")


if settings.kpi_gauges_interval_s > 0:
    app.timer(settings.kpi_gauges_interval_s)(refresh_kpi_gauges)
