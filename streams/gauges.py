"""The operations view of the current day, week and month as Prometheus gauges (`kpi_*`).

Every `JOURNEYSTREAM_KPI_GAUGES_INTERVAL_S` (0: off) a timer reads this worker's running
operations view (`streams.running`, kept as states are stored: the figures `operations_view`
gives for the current periods, without reading a state) and sets the `journeystream_kpi_*`
gauges (`streams.metrics.KPI_GAUGES`, samples from `streams.kpis.gauge_samples`): summable
counts per period and group, so Prometheus sums them over the workers and computes rates from
the sums. While partitions move, are restored or counted the gauges keep their last values; a failed
refresh is logged and counted (`journeystream_kpi_refresh_errors_total`): the timer never stops
the worker. `journeystream_kpi_refresh_seconds` is the duration of the last refresh.
"""

from __future__ import annotations

import logging
import time

from journey.activity import day_of
from streams import compat, kpis, metrics
from streams.app import app, settings
from streams.running import running
from streams.web import processing_now

log = logging.getLogger(__name__)


async def refresh() -> None:
    """Set the gauges from the running view of the owned partitions."""
    started = time.perf_counter()
    figures = running.current(day_of(processing_now(), settings.store_timezone))
    for name, values in kpis.gauge_samples(figures).items():
        gauge = metrics.KPI_GAUGES[name]
        for labels, value in values.items():
            metrics.labelled(gauge, *labels).set(value)
    metrics.KPI_REFRESH_SECONDS.set(time.perf_counter() - started)
    metrics.KPI_REFRESH_TIMESTAMP.set(time.time())


async def refresh_kpi_gauges() -> None:
    """The timer: refresh, except while partitions move or are restored; never raises."""
    if app.rebalancing or compat.table_recovery(app).in_recovery or running.counting:
        return  # half-restored or half-counted partitions would count short: keep the values
    try:
        await refresh()
    except Exception:  # the gauges must never stop the worker
        metrics.KPI_REFRESH_ERRORS.inc()
        log.exception("kpi gauges: refresh failed (the gauges keep their last values)")


if settings.kpi_gauges_interval_s > 0:
    app.timer(settings.kpi_gauges_interval_s)(refresh_kpi_gauges)
