"""The operations views of a worker: `/segments`, `/kpis` and `/experiments`.

Read from the running views kept as states are written (`streams.running`); `/kpis` and
`/experiments` add every other worker's counts (`streams.cluster`), `/segments` is this
worker's. Behind the bearer token like every data route (`streams.web.require_token`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from faust import web

from journey.figures import PERIODS
from journey.running import RunningView
from journey.stages import SEGMENTS
from recommend.uplift import experiment_report
from streams import cluster, metrics
from streams.agents.customers import input_channel, journey_config
from streams.app import app
from streams.running import running, watcher
from streams.web import UNAUTHORIZED, authorized, processing_now


def orders_by_path() -> dict[str, float]:
    """Placed orders by purchase path counted by this worker since it started."""
    return {path: value for (path,), value in metrics.totals(metrics.ORDERS).items()}


def abandonment_view() -> dict[str, Any]:
    """Abandonments fired and recovered by kind, and the recovery rate (this worker)."""
    fired = {kind: int(v) for (kind,), v in metrics.totals(metrics.ABANDONMENTS).items()}
    recovered = {kind: int(v) for (kind,), v in metrics.totals(metrics.RECOVERIES).items()}
    return {
        kind: {
            "abandoned": fired.get(kind, 0),
            "recovered": recovered.get(kind, 0),
            "recovery_rate": round(recovered.get(kind, 0) / fired[kind], 4)
            if fired.get(kind)
            else None,
        }
        for kind in ("cart", "browse")
    }


SETTLE_S = 60.0  # how long /kpis and /segments wait for the counts after a restore


@app.page("/segments")
class Segments(web.View):
    """Customers by segment and the live KPIs of this worker's partitions.

    Counted on write, not per request (`streams.running`): current with the last stored batch;
    the customer/lapsed split is taken at the request's processing time. Right after a restore
    the answer waits for the partitions' counts (503 after SETTLE_S).
    """

    async def get(self, request: web.Request) -> web.Response:
        """The operations view (counts over the customers this worker owns)."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        if not await watcher.settled(SETTLE_S):
            return self.error(503, "counting the customers of restored partitions")
        view = running.segments_view(processing_now(), orders_by_path(), journey_config)
        for segment in SEGMENTS:
            metrics.CUSTOMERS.labels(segment).set(view["segments"].get(segment, 0))
        view["abandonment"] = abandonment_view()
        view["partitions"] = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == input_channel.topics[0]
        )
        return self.bytes(orjson.dumps(view), content_type="application/json")


@app.page("/kpis")
class Kpis(web.View):
    """The operations view per day, week or month over this worker's partitions.

    Summed from the partitions' views kept on write (`streams.running`): no state is read.
    Right after a restore the answer waits for the partitions' counts (503 after SETTLE_S).
    """

    async def get(self, request: web.Request) -> web.Response:
        """`?period=day|week|month&from=YYYY-MM-DD&to=YYYY-MM-DD` (default: all three, all).

        The whole store: this worker's partitions and every other worker's (`scope=local`:
        this worker's alone), summed from the counts the others export (`format=counts`).
        """
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        period = request.query.get("period")
        if period is not None and period not in PERIODS:
            return self.error(400, f"period must be one of {', '.join(PERIODS)}")
        scope = request.query.get(cluster.SCOPE, "")
        if (wrong := cluster.scope_error(scope)) is not None:
            return self.error(400, wrong)
        if not await watcher.settled(SETTLE_S):
            return self.error(503, "counting the customers of restored partitions")
        periods = (period,) if period else PERIODS
        start, end = request.query.get("from"), request.query.get("to")
        if scope == cluster.LOCAL and request.query.get("format") == "counts":
            body = orjson.dumps(running.export(periods, start=start, end=end))
            return self.bytes(body, content_type="application/json")
        others: list[RunningView] = []
        partitions = running.partitions()
        if scope != cluster.LOCAL:
            asked = {k: v for k, v in request.query.items() if k in ("period", "from", "to")}
            try:
                answers = await cluster.ask_peers(
                    "/kpis", {**asked, "format": "counts"}, request.headers.get("Authorization")
                )
                for raw in answers:
                    others += [RunningView.from_export(v) for v in orjson.loads(raw)]
            except (cluster.PeerError, KeyError, TypeError, ValueError) as exc:
                return self.error(502, f"the figures are incomplete: {exc}")
            partitions = sorted({*partitions, *cluster.peer_partitions()})
        return self.bytes(
            kpis_body(periods, start, end, others, partitions), content_type="application/json"
        )


def kpis_body(
    periods: tuple[str, ...],
    start: str | None,
    end: str | None,
    others: list[RunningView] | None = None,
    partitions: list[int] | None = None,
) -> bytes:
    """The `/kpis` answer (JSON) for valid periods and dates, with other workers' counts."""
    body = running.view(periods, start=start, end=end, others=others or ())
    body["partitions"] = running.partitions() if partitions is None else partitions
    return orjson.dumps(body)


def experiments_now(cells: Mapping[str, list[int]] | None = None) -> dict[str, Any]:
    """The experiment report, customers as the unit, of trial cells (default: this worker's).

    A cell is "strategy|arm" -> [customers decided, customers converted, revenue in cents],
    from the customers' stored trials (`streams.running`, `recommend.experiments`).
    """
    decided: dict[tuple[str, str], float] = {}
    converted: dict[tuple[str, str], float] = {}
    revenue: dict[tuple[str, str], float] = {}
    for name, (d, c, cents) in (running.trial_cells() if cells is None else cells).items():
        strategy, arm = name.split("|", 1)
        decided[strategy, arm], converted[strategy, arm] = d, c
        revenue[strategy, arm] = cents / 100
    return experiment_report(decided, converted, revenue)


@app.page("/experiments")
class Experiments(web.View):
    """Customers decided and converted, revenue and uplift versus holdout, per strategy and arm."""

    async def get(self, request: web.Request) -> web.Response:
        """The whole store's report (`scope=local`: this worker's customers alone)."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        scope = request.query.get(cluster.SCOPE, "")
        if (wrong := cluster.scope_error(scope)) is not None:
            return self.error(400, wrong)
        if not await watcher.settled(SETTLE_S):
            return self.error(503, "counting the customers of restored partitions")
        cells = running.trial_cells()
        if scope == cluster.LOCAL and request.query.get("format") == "counts":
            return self.bytes(orjson.dumps(cells), content_type="application/json")
        if scope != cluster.LOCAL:
            try:
                answers = await cluster.ask_peers(
                    "/experiments", {"format": "counts"}, request.headers.get("Authorization")
                )
                for raw in answers:
                    for name, cell in orjson.loads(raw).items():
                        mine = cells.setdefault(str(name), [0, 0, 0])
                        for i in range(3):
                            mine[i] += int(cell[i])
            except (cluster.PeerError, TypeError, ValueError, IndexError) as exc:
                return self.error(502, f"the experiment report is incomplete: {exc}")
        body = orjson.dumps({"unit": "customer", "strategies": experiments_now(cells)})
        return self.bytes(body, content_type="application/json")
