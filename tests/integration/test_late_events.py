"""Late events: within the grace they are applied; beyond it they are dead-lettered with why."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker


def view(eid: str, at: str) -> dict[str, Any]:
    return {
        "type": "page_view",
        "event_id": eid,
        "occurred_at": at,
        "customer_id": "late-1",
        "product_id": "p1",
        "category": "home",
        "price": 3.0,
    }


def test_beyond_grace_is_dead_lettered_within_grace_is_applied(deployment: Any) -> None:
    d = deployment(partitions=1, clock="event", late_grace_s=600.0)
    d.start_worker()
    events = [
        view("now", "2026-11-02T10:00:00+00:00"),
        view("in-grace", "2026-11-02T09:55:00+00:00"),  # 5 min behind: applied
        view("too-late", "2026-11-02T09:00:00+00:00"),  # 60 min behind: dead-lettered
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    letters = asyncio.run(read_topics(d.bootstrap, [d.names(topics.DEAD_LETTERS)]))
    assert [(r["category"], r["source"]["offset"]) for r in letters] == [("late_event", 2)]
    assert "3600s behind" in letters[0]["message"]
    import urllib.request

    import orjson

    with urllib.request.urlopen(d.workers[0].base_url + "/customers/late-1") as resp:
        journey = orjson.loads(resp.read())["journey"]
    assert journey["views"] == 2  # the on-time and the in-grace view


def test_shuffled_within_the_reorder_window_equals_in_order_reference(deployment: Any) -> None:
    """Events of 20 customers arrive shuffled (each at most 50 min late): journeys as in order."""
    import random
    from datetime import UTC, datetime

    import orjson

    from journey import customer as core
    from journey.config import JourneyConfig
    from schemas import contracts
    from tests.reliability.test_kill_restart import latest_changelog

    rng = random.Random(17)
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp()
    in_order: list[dict[str, Any]] = []
    t = t0
    for i in range(600):
        t += rng.expovariate(1 / 120.0)
        cust = f"shuffle-{rng.randrange(20)}"
        at = datetime.fromtimestamp(t, UTC).isoformat()
        if rng.random() < 0.9:
            p = rng.randrange(30)
            in_order.append(
                {
                    "type": "page_view",
                    "event_id": f"s{i}",
                    "occurred_at": at,
                    "customer_id": cust,
                    "product_id": f"p{p}",
                    "category": f"cat{p % 4}",
                    "price": 10.0 + p,
                }
            )
        else:
            in_order.append(
                {
                    "type": "order",
                    "event_id": f"s{i}",
                    "occurred_at": at,
                    "customer_id": cust,
                    "action": "placed",
                    "order_id": f"o{i}",
                    "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 11.0}],
                    "total": 11.0,
                }
            )
    # arrival order: each event delayed by up to 50 min of event time (window: 60 min)
    arrival = sorted(
        in_order,
        key=lambda e: datetime.fromisoformat(e["occurred_at"]).timestamp() + rng.uniform(0, 3000),
    )
    assert arrival != in_order

    d = deployment(partitions=4, clock="event")  # latest_changelog reads 4 partitions
    d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, arrival, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))

    config = JourneyConfig()
    expected: dict[str, Any] = {}
    states: dict[str, Any] = {}
    for raw in in_order:
        event = contracts.decode(orjson.dumps(raw), now=float("inf"))
        assert not isinstance(event, contracts.Rejection)
        key = f"c:{raw['customer_id']}"
        states[key], _ = core.apply(states.get(key), event, event.occurred_at, config, key=key)
        expected[key] = states[key].journey.to_dict()
    table = asyncio.run(latest_changelog(d.bootstrap, f"{d.settings.app_id}-customers-changelog"))
    actual = {k: v["journey"] for k, v in table.items() if k.startswith("c:shuffle-")}
    differing = [k for k in expected if actual.get(k) != expected[k]]
    assert not differing, f"{len(differing)} of {len(expected)} journeys differ from in-order"
