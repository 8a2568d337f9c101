"""Every route a started worker's web server serves, walked without and with the API token.

The worker logs the routes of its aiohttp router once it has started (`streams.web.log_routes`);
the test reads that list, so a route added later (by journeystream or by Faust) is walked too
and must either answer 401 without the token or be one of the few public, data-free routes
below. Faust's built-in `/table/…` (table data) and `/router/…` (cluster layout) endpoints, and
its statistics, graph and performance endpoints, are switched off and answer 404.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.applied import wait_applied
from harness.process import produce

pytestmark = pytest.mark.broker
TOKEN = "route-walk-token"
DASHBOARD = Path(__file__).resolve().parents[2] / "streams" / "dashboard"

# Paths served without the token (GET, and HEAD which Faust answers with GET), and why each
# carries no data.
PUBLIC = {
    "/ready",  # readiness for orchestration: {"ready": true|false}
    "/dashboard",  # the page's static HTML; its script asks for the token
    "/dashboard/static/{name}",  # the page's script, style and chart library
}
# The data routes known today; the walk covers whatever else the router holds as well (such
# as Faust's index `/`, which 0.15.3 serves whatever the settings: closed like the rest).
DATA = {
    "GET /metrics",
    "GET /segments",
    "GET /experiments",
    "GET /customers/{customer_id}",
    "GET /audience",
}
# Values for path parameters when a route is requested.
SAMPLES = {"customer_id": "nobody", "name": "dashboard.js"}
# Faust's built-in endpoints (0.15.3: faust/web/base.py), all switched off in create_app.
FAUST_BUILTINS = ("/table", "/router", "/graph", "/assignment", "/performance")
DISABLED = [
    "/table/",
    "/table/customers/",
    "/table/customers/c:nobody/",
    "/router/",
    "/router/topics",
    "/router/customers/",
    "/router/customers/c:nobody/",
    "/graph/",
    "/assignment/",
    "/performance/",
]


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def served_routes(worker: Any, timeout: float = 30.0) -> set[str]:
    """The routes the worker logged from its own aiohttp router."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"web routes: (\[.*\])", worker.log_path.read_text(errors="replace"))
        if m:
            return set(orjson.loads(m.group(1)))
        time.sleep(0.2)
    raise AssertionError(f"no 'web routes' line in the worker log\n{worker.log_tail()}")


def fill(path: str) -> str:
    return re.sub(r"\{(\w+)[^}]*\}", lambda m: SAMPLES[m.group(1)], path)


def test_every_route_is_closed_without_the_token_or_public_and_data_free(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN)
    worker = d.start_worker()
    routes = served_routes(worker)
    assert routes >= DATA, routes  # the enumeration is the real router, not an empty list
    assert not [r for r in routes if r.split(" ", 1)[1].startswith(FAUST_BUILTINS)], routes

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    walked = 0
    for route in sorted(routes):
        method, path = route.split(" ", 1)
        if path in PUBLIC:
            assert method in ("GET", "HEAD"), route
            continue
        walked += 1
        url = worker.base_url + fill(path)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": TOKEN},  # no scheme
            {"Authorization": f"Basic {TOKEN}"},
            {"X-Api-Token": TOKEN},
        ):
            status, body, got = request(url, method, headers)
            assert status == 401, (route, headers, status, body[:200])
            assert got.get("WWW-Authenticate") == "Bearer", route
            assert TOKEN.encode() not in body
        # the token in the query string is not accepted (it would end up in logs and history)
        status, _, _ = request(f"{url}?token={TOKEN}", method)
        assert status == 401, (route, "query token")
        # with the header the route answers (the 401s above were the token's doing)
        status, _, _ = request(url, method, bearer)
        assert status != 401 and status < 500, (route, status)

    assert walked >= 2 * len(DATA)  # GET and HEAD of each

    # the public routes hold no data
    status, body, _ = request(worker.base_url + "/ready")
    assert status == 200 and orjson.loads(body) == {"ready": True}
    status, body, _ = request(worker.base_url + "/dashboard")
    assert status == 200 and body.decode() == (DASHBOARD / "index.html").read_text()
    status, body, _ = request(worker.base_url + "/dashboard/static/dashboard.js")
    assert status == 200 and body == (DASHBOARD / "dashboard.js").read_bytes()
    assert request(worker.base_url + "/dashboard/static/nothing.js")[0] == 404

    # Faust's built-in endpoints are not there, with or without the token
    for path in DISABLED:
        for headers in ({}, bearer):
            status, body, _ = request(worker.base_url + path, "GET", headers)
            assert status == 404, (path, headers, status, body[:200])


def test_profiles_are_routed_between_workers_with_the_token_and_router_endpoints_off(
    deployment: Any,
) -> None:
    """/customers/{id} reaches the owning worker through the assignor, not /router/."""
    d = deployment(partitions=4, clock="event", api_token=TOKEN)
    workers = [d.start_worker(), d.start_worker()]
    customers = [f"routed-{i}" for i in range(12)]
    events = [
        {
            "type": "page_view",
            "event_id": f"rv-{c}",
            "occurred_at": "2026-11-02T10:00:00+00:00",
            "customer_id": c,
            "product_id": "p1",
            "category": "home/kitchen",
            "price": 20.0,
        }
        for c in customers
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    # each worker holds only its own partitions' customers (the table is not replicated)
    deadline = time.monotonic() + 30
    while True:
        views = [orjson.loads(request(w.base_url + "/segments", "GET", bearer)[1]) for w in workers]
        owned = [set(v["partitions"]) for v in views]
        if (all(owned) and not owned[0] & owned[1]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(owned) and not owned[0] & owned[1], owned
    local = [v["customers"] for v in views]
    assert sum(local) == len(customers) and all(local), local

    # so a worker answering for every customer forwarded the others' requests, token included
    for w in workers:
        for c in customers:
            status, body, _ = request(f"{w.base_url}/customers/{c}", "GET", bearer)
            assert status == 200, (w.base_url, c, status, body[:200])
            assert orjson.loads(body)["customer_key"] == f"c:{c}"
            assert request(f"{w.base_url}/customers/{c}")[0] == 401
        assert request(w.base_url + "/router/customers/", "GET", bearer)[0] == 404
