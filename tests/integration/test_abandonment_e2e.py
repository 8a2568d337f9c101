"""Cart abandonment through the real broker with a shortened deadline, a live clock and SIGKILL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker
DELAY = 6.0


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def cart_add(event_id: str, customer: str, ts: float, price: float = 25.0) -> dict[str, Any]:
    return {
        "type": "cart",
        "event_id": event_id,
        "occurred_at": rfc3339(ts),
        "customer_id": customer,
        "action": "add",
        "product_id": "sku-1",
        "quantity": 2,
        "price": price,
        "category": "home/kitchen",
    }


def order(event_id: str, customer: str, ts: float) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": event_id,
        "occurred_at": rfc3339(ts),
        "customer_id": customer,
        "action": "placed",
        "order_id": f"o-{event_id}",
        "lines": [{"product_id": "sku-1", "quantity": 2, "unit_price": 25.0}],
        "total": 50.0,
    }


def abandonments(d: Any) -> list[dict[str, Any]]:
    records = asyncio.run(read_topics(d.bootstrap, [d.names(topics.ABANDONMENT)], settle=0.5))
    return [r for r in records if r["type"] == "cart_abandoned"]


def wait_for(d: Any, customer: str, until: float) -> list[dict[str, Any]]:
    """Poll the abandonment topic until the customer's record shows up or `until` passes."""
    while True:
        found = [r for r in abandonments(d) if r["customer_key"] == f"c:{customer}"]
        if found or time.time() > until:
            return found
        time.sleep(0.5)


def test_cart_abandoned_fires_once_on_time_and_an_order_cancels(deployment: Any) -> None:
    d = deployment(partitions=2, cart_abandon_delay_s=DELAY)
    d.start_worker()
    t0 = time.time()
    events = [
        cart_add("a1", "abandoner", t0),
        cart_add("b1", "buyer", t0),
        order("b2", "buyer", t0),
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    found = wait_for(d, "abandoner", until=t0 + DELAY + 15)
    seen_at = time.time()
    assert len(found) == 1, found
    record = found[0]
    assert record["value"] == 50.0 and record["lines"][0]["quantity"] == 2
    due = datetime.fromisoformat(record["occurred_at"].replace("Z", "+00:00")).timestamp()
    assert abs(due - (t0 + DELAY)) < 0.01  # the record is dated at its deadline
    # fired within a few seconds of the deadline, not before it
    assert seen_at >= t0 + DELAY
    assert seen_at - (t0 + DELAY) < 5.0
    time.sleep(2.0)  # nothing more: once only, and never for the customer who ordered
    keys = Counter(r["customer_key"] for r in abandonments(d))
    assert keys == Counter({"c:abandoner": 1})


def test_sigkill_before_the_deadline_fires_exactly_once_after_restart(deployment: Any) -> None:
    d = deployment(partitions=2, cart_abandon_delay_s=DELAY)
    worker = d.start_worker()
    t0 = time.time()
    last = asyncio.run(produce(d.bootstrap, d.names, [cart_add("k1", "killed", t0)]))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    time.sleep(1.0)  # let the state write reach the changelog
    worker.kill()  # SIGKILL before the deadline
    assert time.time() < t0 + DELAY
    d.start_worker(index=0)  # same local state directory
    found = wait_for(d, "killed", until=t0 + DELAY + 25)
    assert len(found) == 1, found
    time.sleep(3.0)
    assert Counter(r["id"] for r in abandonments(d)) == Counter({found[0]["id"]: 1})
