"""A worker's journeystream_kpi_* gauges after a small workload, scraped with the token."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.applied import wait_applied
from harness.process import produce

pytestmark = pytest.mark.broker
TOKEN = "g4uge-token"
DAY = "2026-11-02"


def event(kind: str, eid: str, cust: str, hhmm: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": eid,
        "occurred_at": f"{DAY}T{hhmm}:00+00:00",
        "customer_id": cust,
        **fields,
    }


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The kpi samples of /metrics by (name, labels)."""
    request = urllib.request.Request(
        base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("journeystream_kpi_")
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get(("journeystream_kpi_" + name, frozenset(labels.items())))


def test_the_gauges_count_the_days_customers_and_abandonments(deployment: Any) -> None:
    d = deployment(partitions=1, clock="event", api_token=TOKEN, kpi_gauges_interval_s=1)
    worker = d.start_worker()
    line = {"product_id": "p1", "quantity": 1, "unit_price": 20.0}
    events = [
        event("page_view", "v1", "x", "10:00", product_id="p1", category="c", price=20.0),
        event("cart", "c1", "x", "10:01", action="add", product_id="p1", quantity=1, price=20.0),
        event("page_view", "v2", "y", "10:30", product_id="p2", category="c", price=5.0),
        # due at 11:01, fired by this order's time, then recovered by it (it has p1)
        event("order", "o1", "x", "12:00", action="placed", order_id="o1", lines=[line], total=20),
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    expected = {
        ("visitors", "new_visitor"): 2.0,
        ("visitors", "all"): 2.0,
        ("buyers", "all"): 1.0,
        ("orders", "all"): 1.0,
        ("revenue", "all"): 20.0,
    }
    deadline = time.monotonic() + 20  # refreshed every second
    while True:
        found = scrape(worker.base_url)
        day = {k: value(found, k[0], period="day", group=k[1]) for k in expected}
        fired = value(found, "abandonments", period="day", group="new_visitor", kind="cart")
        recovered = value(found, "abandonments_recovered", period="day", group="all", kind="cart")
        if day == expected and (fired, recovered) == (1.0, 1.0):
            break
        assert time.monotonic() < deadline, (day, fired, recovered)
        time.sleep(0.5)
    for period in ("week", "month"):
        assert value(found, "visitors", period=period, group="all") == 2.0
        assert value(found, "abandonments", period=period, group="all", kind="cart") == 1.0
    assert value(found, "identified_visitors", period="day") == 2.0
    assert value(found, "abandonments", period="day", group="all", kind="browse") == 0.0
    assert value(found, "refresh_timestamp_seconds") is not None
    assert found.get(("journeystream_kpi_refresh_errors_total", frozenset())) == 0.0
