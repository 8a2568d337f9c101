"""/kpis and /segments of a worker, kept on write, equal the views counted from the changelog.

After a first workload, after more events that change the same customers (so each changed
state is taken back and added again through the real commit path), and after a restart (the
views rebuilt from the restored states), the worker's `/kpis` must be what `process --kpis`
computes from the changelog (`streams.kpis.view` over `latest_changelog`), and its `/segments`
counts what `journey.kpis.operations_view` counts over the changelog's journeys.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

from harness.applied import changelog_name, wait_applied
from harness.changelog import latest_changelog
from harness.process import produce
from journey.customer import CustomerState
from journey.kpis import operations_view
from recommend.experiments import trial_counts
from recommend.uplift import experiment_report
from streams import kpis
from tests.integration.test_segments_api import get

pytestmark = pytest.mark.broker
TOKEN = "kp1-token"
LINE = {"product_id": "p1", "quantity": 1, "unit_price": 20.0}


def event(kind: str, eid: str, cust: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": eid, "occurred_at": at, "customer_id": cust, **fields}


def visit(eid: str, cust: str, at: str) -> dict[str, Any]:
    return event("page_view", eid, cust, at, product_id="p1", category="c", price=20.0)


def order(eid: str, cust: str, at: str, total: float) -> dict[str, Any]:
    line = {**LINE, "unit_price": total}
    return event("order", eid, cust, at, action="placed", order_id=eid, lines=[line], total=total)


FIRST = [
    visit("v1", "ann", "2026-11-02T09:00:00+00:00"),
    order("o1", "ann", "2026-11-02T09:10:00+00:00", 19.99),
    visit("v2", "bob", "2026-11-02T10:00:00+00:00"),
    event("cart", "c1", "bob", "2026-11-02T10:01:00+00:00", action="add", **LINE, price=20.0),
    visit("v3", "cat", "2026-11-03T11:00:00+00:00"),
    visit("v4", "dan", "2026-11-03T12:00:00+00:00"),
    visit("v5", "eve", "2026-11-04T08:00:00+00:00"),
]
# the same customers again: later days, a second order, bob's cart fired then bought
MORE = [
    visit("w1", "bob", "2026-11-04T09:00:00+00:00"),
    order("p1", "bob", "2026-11-04T09:05:00+00:00", 20.0),
    visit("w2", "ann", "2026-11-05T10:00:00+00:00"),
    order("p2", "ann", "2026-11-05T10:05:00+00:00", 5.01),
    visit("w3", "cat", "2026-11-03T11:30:00+00:00"),  # the same day again
    visit("w4", "dan", "2026-11-09T12:00:00+00:00"),  # the next ISO week
]


def expected(d: Any) -> tuple[dict[str, Any], list[CustomerState]]:
    """The operations view and the states, as the changelog holds them."""
    states = asyncio.run(
        latest_changelog(d.bootstrap, changelog_name(d.settings.app_id), d.settings.partitions)
    )
    return kpis.view(states.items(), "UTC"), [CustomerState.from_dict(s) for s in states.values()]


def check(d: Any, worker: Any, now: str) -> dict[str, Any]:
    """/kpis and /segments of the worker equal the views of the changelog; /kpis returned."""
    figures, states = expected(d)
    status, body = get(worker.base_url + "/kpis", TOKEN)
    assert status == 200
    assert body.pop("partitions") == [0, 1]
    assert body == figures
    journeys = [s.journey for s in states if s.journey is not None]
    scratch = operations_view(journeys, datetime.fromisoformat(now).timestamp())
    status, segments = get(worker.base_url + "/segments", TOKEN)
    assert status == 200
    for name in ("customers", "segments", "stages", "orders", "revenue", "average_order_value"):
        assert segments[name] == scratch[name], name
    assert segments["return_visits_never_purchased"] == scratch["return_visits_never_purchased"]
    return body


def test_kpis_kept_on_write_equal_the_changelog_view(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN)
    worker = d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, FIRST))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    first = check(d, worker, "2026-11-04T08:00:00+00:00")
    assert sum(p["all"]["orders"] for p in first["day"]) == 1

    last = asyncio.run(produce(d.bootstrap, d.names, MORE))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    body = check(d, worker, "2026-11-09T12:00:00+00:00")
    days = {p["period"]: p for p in body["day"]}
    assert days["2026-11-02"]["all"]["revenue"] == 19.99
    assert days["2026-11-05"]["all"]["revenue"] == 5.01
    assert [w["period"] for w in body["week"]] == ["2026-W45", "2026-W46"]
    assert body["month"][0]["all"]["orders"] == 3
    assert body["month"][0]["abandonment"]["all"]["cart"]["fired"] == 1  # bob's cart

    worker.stop()  # restart on its state: the views are counted again from the restored states
    worker = d.start_worker(0)
    assert check(d, worker, "2026-11-09T12:00:00+00:00") == body


def test_kpis_of_two_workers_are_the_whole_stores(deployment: Any) -> None:
    """Either worker answers for the store: its partitions' counts plus the other's."""
    d = deployment(partitions=4, clock="event", api_token=TOKEN)
    workers = [d.start_worker(index=0), d.start_worker(index=1)]
    crowd = [
        visit(f"x{i}", f"guest-{i}", f"2026-11-0{2 + i % 5}T13:00:00+00:00") for i in range(24)
    ]
    crowd += [
        order(f"y{i}", f"guest-{i}", f"2026-11-0{2 + i % 5}T13:30:00+00:00", 10.0 + i)
        for i in range(0, 24, 3)
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, [*FIRST, *MORE, *crowd]))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    for _ in range(60):  # the group has shared the partitions out
        parts = [
            get(w.base_url + "/kpis?scope=local&period=month", TOKEN)[1]["partitions"]
            for w in workers
        ]
        if all(parts) and sorted(parts[0] + parts[1]) == [0, 1, 2, 3]:
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"the workers never shared out the partitions: {parts}")
    figures, _ = expected(d)
    for w in workers:
        status, body = get(w.base_url + "/kpis", TOKEN)
        assert status == 200
        assert body.pop("partitions") == [0, 1, 2, 3]
        assert body == figures
        status, local = get(w.base_url + "/kpis?scope=local", TOKEN)
        assert status == 200 and len(local.pop("partitions")) < 4
        assert local != figures  # one worker's part alone is not the store
    status, week = get(workers[1].base_url + "/kpis?period=week&from=2026-11-09", TOKEN)
    assert status == 200 and [w["period"] for w in week["week"]] == ["2026-W46"]
    assert week["week"] == [w for w in figures["week"] if w["period"] == "2026-W46"]
    assert get(workers[0].base_url + "/kpis?scope=all", TOKEN)[0] == 400

    # test and learn, customers as the unit: the whole store's trials, whichever worker answers
    states = asyncio.run(
        latest_changelog(d.bootstrap, changelog_name(d.settings.app_id), d.settings.partitions)
    )
    store = experiment_report(*trial_counts(s.get("recommend") for s in states.values()))
    assert sum(a["decided"] for arms in store.values() for a in arms.values()) > 0
    for w in workers:
        status, body = get(w.base_url + "/experiments", TOKEN)
        assert status == 200 and body == {"unit": "customer", "strategies": store}
    parts = [get(w.base_url + "/experiments?scope=local", TOKEN)[1]["strategies"] for w in workers]
    decided = [sum(a["decided"] for arms in p.values() for a in arms.values()) for p in parts]
    assert sum(decided) == sum(a["decided"] for arms in store.values() for a in arms.values())
