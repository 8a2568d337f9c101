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

from journey.stages import CustomerJourney, format_time, profile
from streams import compat, metrics
from streams.agents.customers import journey_config
from streams.agents.partitions import deadlines
from streams.app import app, settings
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
    return compat.worker_ready(app)


@app.page("/metrics")
class Metrics(web.View):
    """Prometheus exposition."""

    async def get(self, request: web.Request) -> web.Response:
        """Return every journeystream metric."""
        if not authorized(request):
            return self.error(*UNAUTHORIZED)
        from streams.operations_web import experiments_now

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
        "decisions": recent_decisions(state.get("recommend")),
    }


def recent_decisions(rec_state: Any) -> list[dict[str, Any]]:
    """The customer's latest decisions (their last 20), newest first: sent or held out."""
    if not isinstance(rec_state, dict):
        return []
    sent = {e[3]: e[2] for e in rec_state.get("sent") or () if isinstance(e, list) and len(e) > 3}
    out = []
    for entry in reversed(rec_state.get("exposures") or ()):
        if isinstance(entry, list) and len(entry) == 4:
            t, strategy, arm, ident = entry
            out.append(
                {
                    "at": format_time(float(t)),
                    "strategy": strategy,
                    "arm": arm,
                    "id": ident,
                    "sent_as": sent.get(ident),  # recommendation, discount_trigger; None: not sent
                }
            )
    return out


def processing_now() -> float:
    """The worker's processing time: the latest partition clock (wall time when live)."""
    clocks = [c.now() for c in deadlines.clocks.values()]
    if settings.clock == "live":
        clocks.append(time.time())
    return max(clocks, default=0.0)


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
