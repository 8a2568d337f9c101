"""Web views on the worker's Faust web server: metrics, profiles, KPIs, experiments, dashboard."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web as aiohttp_web
from faust import web
from faust.exceptions import SameNode

from journey.figures import PERIODS
from journey.running import RunningView
from journey.stages import SEGMENTS, CustomerJourney, profile
from recommend.uplift import experiment_report
from streams import cluster, metrics
from streams.agents.customers import input_channel, journey_config
from streams.agents.partitions import deadlines
from streams.app import app, settings
from streams.running import running, watcher
from streams.tables import customers as customer_table

logger = logging.getLogger(__name__)

DASHBOARD = Path(__file__).parent / "dashboard"
ASSETS = {
    "dashboard.js": (DASHBOARD / "dashboard.js", "text/javascript"),
    "dashboard.css": (DASHBOARD / "dashboard.css", "text/css"),
    "chartist.js": (DASHBOARD / "vendor" / "chartist-1.5.0.umd.js", "text/javascript"),
    "chartist.css": (DASHBOARD / "vendor" / "chartist-1.5.0.css", "text/css"),
}


# Served without the token: readiness, and the dashboard page and its assets (static files,
# no data; the page's script asks for the token). Every other path needs it, including any
# route added later by journeystream or by Faust.
PUBLIC_PATHS = frozenset({"/ready", "/dashboard"})
PUBLIC_PREFIXES = ("/dashboard/static/",)


class HasHeaders(Protocol):
    """A request of either web layer (Faust's view request or aiohttp's)."""

    @property
    def headers(self) -> Mapping[str, str]: ...


def authorized(request: HasHeaders) -> bool:
    """True when no API token is set or the request carries `Authorization: Bearer <token>`.

    The token is taken from that header only: a `?token=` query parameter is never accepted
    (URLs end up in access logs, proxies and browser history).
    """
    if not settings.api_token.get_secret_value():
        return True
    header = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(header, f"Bearer {settings.api_token.get_secret_value()}".encode())


# what a view answers without the token (RFC 6750: 401 with a Bearer challenge)
UNAUTHORIZED = (401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


@aiohttp_web.middleware
async def require_token(
    request: aiohttp_web.Request,
    handler: Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]],
) -> aiohttp_web.StreamResponse:
    """Deny by default: 401 for any served route outside PUBLIC_* without the bearer token.

    A path the router does not serve keeps its 404 (or 405), with or without the token. The
    views check the token as well.
    """
    path = request.path
    if (
        request.match_info.http_exception is None
        and path not in PUBLIC_PATHS
        and not path.startswith(PUBLIC_PREFIXES)
        and not authorized(request)
    ):
        status, reason, headers = UNAUTHORIZED
        return aiohttp_web.json_response({"error": reason}, status=status, headers=headers)
    return await handler(request)


# the aiohttp Application of Faust's web driver (its middleware list freezes when it starts)
app.web.web_app.middlewares.append(require_token)  # type: ignore[attr-defined]


def ready() -> bool:
    """Partitions assigned, not rebalancing, table recovery complete."""
    recovery = app.tables.recovery
    return (
        not app.rebalancing
        and bool(app.consumer.assignment())
        and recovery.completed.is_set()
        and not recovery.in_recovery
    )


@app.page("/metrics")
class Metrics(web.View):
    """Prometheus exposition."""

    async def get(self, request: web.Request) -> web.Response:
        """Return every journeystream metric."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        for strategy, arms in experiments_now().items():
            for arm, result in arms.items():
                if result["uplift"] is not None:
                    for bound, key in (
                        ("estimate", "absolute"),
                        ("low", "ci_low"),
                        ("high", "ci_high"),
                    ):
                        metrics.UPLIFT.labels(strategy, arm, bound).set(result["uplift"][key])
        return self.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")


@app.page("/ready")
class Ready(web.View):
    """Readiness for orchestration and tests."""

    async def get(self, request: web.Request) -> web.Response:
        """200 when ready, 503 otherwise."""
        ok = ready()
        return self.json({"ready": ok}, status=200 if ok else 503)


@app.page("/customers/{customer_id}")
class CustomerProfile(web.View):
    """A customer's profile, served by the worker that owns the key."""

    async def get(self, request: web.Request, customer_id: str) -> web.Response:
        """The journey and profile of `c:<id>` (or `a:<id>` with ?anonymous=1)."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        prefix = "a:" if request.query.get("anonymous") else "c:"
        key = f"{prefix}{customer_id}"
        try:
            return await app.router.route_req(
                customer_table.customers.name, key.encode(), self.web, request
            )
        except SameNode:
            pass
        state = customer_table.snapshot(key.encode())
        if state is None:
            return self.error(404, "unknown customer")
        return self.bytes(orjson.dumps(public_profile(key, state)), content_type="application/json")


def public_profile(key: str, state: dict[str, Any]) -> dict[str, Any]:
    """What the profile API shows of a stored state: derived profile plus the raw journey."""
    journey = state.get("journey")
    derived = None
    if journey:
        j = CustomerJourney.from_dict(journey)
        derived = profile(j, max(j.last_seen, processing_now()), journey_config)
    return {
        "customer_key": key,
        "profile": derived,
        "journey": journey,
        "identity": state.get("identity"),
        "abandonment": state.get("abandonment"),
    }


def processing_now() -> float:
    """The worker's processing time: the latest partition clock (wall time when live)."""
    clocks = [c.now() for c in deadlines.clocks.values()]
    if settings.clock == "live":
        clocks.append(time.time())
    return max(clocks, default=0.0)


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
        if scope not in ("", cluster.LOCAL):
            return self.error(400, f"scope must be {cluster.LOCAL} or absent (every worker)")
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
        if scope not in ("", cluster.LOCAL):
            return self.error(400, f"scope must be {cluster.LOCAL} or absent (every worker)")
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


@app.page("/dashboard")
class Dashboard(web.View):
    """The customer-operations page (plain HTML/JS, polling the JSON views).

    The page itself holds no data and is served without the token (a browser cannot send a
    header when it opens a page): its script asks for the token and sends it as a bearer
    header to `/segments` and `/experiments`, which answer 401 without it.
    """

    async def get(self, request: web.Request) -> web.Response:
        """The page (static HTML)."""
        return self.html((DASHBOARD / "index.html").read_text(encoding="utf-8"))


@app.page("/dashboard/static/{name}")
class DashboardAsset(web.View):
    """The page's script, style and vendored chart library (no data, no token needed)."""

    async def get(self, request: web.Request, name: str) -> web.Response:
        """One of the known asset files."""
        asset = ASSETS.get(name)
        if asset is None:
            return self.error(404, "unknown asset")
        path, content_type = asset
        return self.bytes(path.read_bytes(), content_type=content_type)


@app.task
async def log_routes() -> None:
    """Log, once at start, every route the worker's web server serves (read from its router).

    Faust's own `/table/…`, `/router/…`, `/graph`, statistics and `/performance` endpoints are
    switched off in `create_app`; this line shows what is left (and the route-walk test reads it).
    """
    web_app = app.web.web_app  # type: ignore[attr-defined]
    routes = sorted(
        {
            f"{route.method} {route.resource.canonical}"
            for route in web_app.router.routes()
            if route.resource is not None
        }
    )
    logger.info("web routes: %s", orjson.dumps(routes).decode())
