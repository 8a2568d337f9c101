"""Replenishment reminders through the real broker: due after the interval, once, moved by a
re-purchase (formula's interval is 14 days in the default rules file).

One partition and the event-time clock: a later event of any customer moves the partition's
clock, and the deadlines due by then fire.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics
from tests.integration.test_goods_find_people import CATALOG, view

pytestmark = pytest.mark.broker
STRATEGY = "replenishment"


def formula(eid: str, cust: str, at: str) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": eid,
        "occurred_at": at,
        "customer_id": cust,
        "action": "placed",
        "order_id": f"o-{eid}",
        "lines": [
            {
                "product_id": "formula-s1",
                "quantity": 1,
                "unit_price": 32.0,
                "category": "baby/formula",
            }
        ],
        "total": 32.0,
    }


def tick(eid: str, at: str) -> dict[str, Any]:
    """A passer-by's page view: it moves the partition's event-time clock to `at`."""
    return view(eid, f"passer-{eid}", at, "stroller-pocket", 399.0)


def reminded(d: Any) -> dict[str, int]:
    """Replenishment decisions per customer so far (sent ones: the holdout is 0)."""
    records = asyncio.run(read_topics(d.bootstrap, [d.names(topics.DECISIONS)]))
    counts: dict[str, int] = {}
    for r in records:
        if r.get("strategy") == STRATEGY:
            assert r["delivered"] is True
            counts[r["customer_key"]] = counts.get(r["customer_key"], 0) + 1
    return counts


def play(d: Any, events: list[dict[str, Any]]) -> None:
    last = asyncio.run(produce(d.bootstrap, d.names, events, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))


def test_a_reminder_fires_once_after_its_interval_and_not_after_a_repurchase(
    deployment: Any,
) -> None:
    d = deployment(partitions=1, clock="event", experiment_holdout=0.0)
    d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    # ann buys formula once; bea buys it and again eight days later (before her 14 days)
    play(
        d,
        [
            formula("a1", "ann", "2026-11-02T10:00:00Z"),
            formula("b1", "bea", "2026-11-02T11:00:00Z"),
            formula("b2", "bea", "2026-11-10T11:00:00Z"),
        ],
    )
    play(d, [tick("t1", "2026-11-15T12:00:00Z")])  # 13 days after: nothing due yet
    assert reminded(d) == {}
    play(d, [tick("t2", "2026-11-17T12:00:00Z")])  # ann's 14 days are over; bea bought again
    assert reminded(d) == {"c:ann": 1}
    play(d, [tick("t3", "2026-11-25T12:00:00Z")])  # 15 days after bea's second order
    assert reminded(d) == {"c:ann": 1, "c:bea": 1}
    play(d, [tick("t4", "2026-12-31T12:00:00Z")])  # weeks later: each reminder fired once
    assert reminded(d) == {"c:ann": 1, "c:bea": 1}
