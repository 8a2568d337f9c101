"""/segments and /customers/{id} through a real worker, with the bearer token enforced."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest

from harness.applied import wait_applied
from harness.process import produce

pytestmark = pytest.mark.broker
TOKEN = "s3cret-token"


def view(eid: str, cust: str, at: str, product: str = "p1") -> dict[str, Any]:
    return {
        "type": "page_view",
        "event_id": eid,
        "occurred_at": at,
        "customer_id": cust,
        "product_id": product,
        "category": "home/kitchen",
        "price": 20.0,
    }


def get(url: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def test_segments_counts_and_token(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN)
    worker = d.start_worker()
    events = [
        view("n1", "new", "2026-11-02T10:00:00+00:00"),
        view("r1", "back", "2026-11-02T10:00:00+00:00"),
        view("r2", "back", "2026-11-02T12:00:00+00:00"),  # 2 h later: a return visit
        view("b1", "buyer", "2026-11-02T10:00:00+00:00"),
        {
            "type": "order",
            "event_id": "b2",
            "occurred_at": "2026-11-02T10:05:00+00:00",
            "customer_id": "buyer",
            "action": "placed",
            "order_id": "o1",
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 20.0}],
            "total": 20.0,
        },
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))

    assert get(worker.base_url + "/segments", None)[0] == 401
    assert get(worker.base_url + "/customers/buyer", "wrong")[0] == 401
    status, view_ = get(worker.base_url + "/segments", TOKEN)
    assert status == 200
    assert view_["segments"] == {"new_visitor": 1, "returning_visitor": 1, "customer": 1}
    assert view_["orders_by_path"] == {"touch→purchase": 1}
    assert view_["return_visits_never_purchased"] == 1
    assert view_["revenue"] == 20.0

    # the operations view of the day, over this worker's partitions (all of them here)
    assert get(worker.base_url + "/kpis", None)[0] == 401
    assert get(worker.base_url + "/kpis?period=year", TOKEN)[0] == 400
    status, kpis = get(worker.base_url + "/kpis?period=day&from=2026-11-02&to=2026-11-02", TOKEN)
    assert status == 200 and set(kpis) == {"timezone", "day", "partitions"}
    (today,) = kpis["day"]
    assert today["period"] == "2026-11-02"
    groups = {g: (f["visitors"], f["buyers"]) for g, f in today["groups"].items()}
    # "back" visited twice that day: its first activity was as a new visitor
    assert groups == {
        "new_visitor": (3, 1),
        "returning_visitor": (0, 0),
        "customer": (0, 0),
        "lapsed": (0, 0),
    }
    assert today["never_purchased_return_visits"] == 1
    assert today["all"]["revenue"] == 20.0 and today["identified_share"] == 1.0
    assert get(worker.base_url + "/kpis?period=day&from=2026-11-03", TOKEN)[1]["day"] == []

    status, prof = get(worker.base_url + "/customers/back", TOKEN)
    assert status == 200 and prof["profile"]["segment"] == "returning_visitor"
    assert get(worker.base_url + "/customers/nobody", TOKEN)[0] == 404
    status, _ = get(worker.base_url + "/ready", None)  # readiness stays open for orchestration
    assert status == 200

    # consumer lag per owned input partition, reported every 5 s: 0 once everything is processed
    deadline = time.time() + 15
    lags: list[str] = []
    while time.time() < deadline and not lags:
        req = urllib.request.Request(
            worker.base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        text = urllib.request.urlopen(req).read().decode()
        lags = [ln for ln in text.splitlines() if ln.startswith("journeystream_consumer_lag{")]
        time.sleep(0.5)
    assert lags and all(ln.endswith(" 0.0") for ln in lags), lags
    assert any("page-view" in ln for ln in lags)
