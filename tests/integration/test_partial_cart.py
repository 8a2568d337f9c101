"""Partial-cart orders and product-overlap recoveries through the real broker and a worker.

A stroller and wipes in the cart and an order of the wipes alone: the stroller stays in the cart
and is abandoned one cart delay after that order. A stroller cart abandoned, then a wipes-only
order: no recovery; a stroller order afterwards recovers it, naming the stroller.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker
DELAY = 6.0
STROLLER = ("sku-stroller", 1699.0, "baby/strollers")
WIPES = ("sku-wipes", 49.9, "baby/wipes")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def cart_add(
    event_id: str, customer: str, ts: float, item: tuple[str, float, str], qty: int = 1
) -> dict[str, Any]:
    pid, price, category = item
    return {
        "type": "cart",
        "event_id": event_id,
        "occurred_at": rfc3339(ts),
        "customer_id": customer,
        "action": "add",
        "product_id": pid,
        "quantity": qty,
        "price": price,
        "category": category,
    }


def order(
    event_id: str, customer: str, ts: float, *lines: tuple[tuple[str, float, str], int]
) -> dict[str, Any]:
    rows = [
        {"product_id": pid, "quantity": q, "unit_price": price, "category": cat}
        for (pid, price, cat), q in lines
    ]
    return {
        "type": "order",
        "event_id": event_id,
        "occurred_at": rfc3339(ts),
        "customer_id": customer,
        "action": "placed",
        "order_id": f"o-{event_id}",
        "lines": rows,
        "total": round(sum(r["quantity"] * r["unit_price"] for r in rows), 2),
        "currency": "EUR",
    }


def records_of(d: Any, customer: str, kind: str) -> list[dict[str, Any]]:
    found = asyncio.run(read_topics(d.bootstrap, [d.names(topics.ABANDONMENT)], settle=0.5))
    return [r for r in found if r["type"] == kind and r["customer_key"] == f"c:{customer}"]


def wait_for(d: Any, customer: str, kind: str, until: float) -> list[dict[str, Any]]:
    """Poll the abandonment topic until a record of `kind` shows up or `until` passes."""
    while True:
        found = records_of(d, customer, kind)
        if found or time.time() > until:
            return found
        time.sleep(0.5)


def send(d: Any, events: list[dict[str, Any]]) -> None:
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))


def test_an_order_of_the_wipes_leaves_the_stroller_abandoned(deployment: Any) -> None:
    d = deployment(partitions=2, cart_abandon_delay_s=DELAY)
    d.start_worker()
    t0 = time.time()
    ordered_at = t0 + 1.0
    send(
        d,
        [
            cart_add("m1", "mum", t0, STROLLER),
            cart_add("m2", "mum", t0 + 0.5, WIPES, qty=2),
            order("m3", "mum", ordered_at, (WIPES, 2)),
        ],
    )
    found = wait_for(d, "mum", "cart_abandoned", until=ordered_at + DELAY + 15)
    assert len(found) == 1, found
    [abandoned] = found
    assert abandoned["lines"] == [
        {"product_id": "sku-stroller", "quantity": 1, "price": 1699.0, "category": "baby/strollers"}
    ]
    assert (abandoned["value"], abandoned["item_count"]) == (1699.0, 1)
    # the order changed the cart: the stroller is abandoned one delay after the order
    assert abs(epoch(abandoned["occurred_at"]) - (ordered_at + DELAY)) < 0.01
    time.sleep(2.0)
    assert len(records_of(d, "mum", "cart_abandoned")) == 1  # once


def test_a_wipes_only_order_does_not_recover_a_stroller_cart(deployment: Any) -> None:
    d = deployment(partitions=2, cart_abandon_delay_s=DELAY)
    d.start_worker()
    t0 = time.time()
    send(d, [cart_add("d1", "dad", t0, STROLLER)])
    [abandoned] = wait_for(d, "dad", "cart_abandoned", until=t0 + DELAY + 15)
    assert [ln["product_id"] for ln in abandoned["lines"]] == ["sku-stroller"]
    # within the recovery window, an order without the stroller
    send(d, [order("d2", "dad", time.time(), (WIPES, 3))])
    time.sleep(2.0)
    assert records_of(d, "dad", "abandonment_recovered") == []
    # the stroller bought: now the abandonment is recovered, by that order
    send(d, [order("d3", "dad", time.time(), (STROLLER, 1), (WIPES, 1))])
    [recovered] = wait_for(d, "dad", "abandonment_recovered", until=time.time() + 15)
    assert recovered["version"] == "1-0-1"
    assert recovered["abandonment_id"] == abandoned["id"]
    assert recovered["order_id"] == "o-d3"
    assert recovered["recovery_rule"] == "product_overlap"
    assert [p["product_id"] for p in recovered["recovered_products"]] == ["sku-stroller"]
    assert recovered["recovered_value"] == 1699.0
    assert recovered["order_value"] == 1748.9
