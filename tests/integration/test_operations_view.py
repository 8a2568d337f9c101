"""`process --kpis`: the operations view of a replay, the same with one worker and with two.

The UCI Online Retail invoices of December 2010 (orders only: every visit is an order) are
played twice through `process_file`, with one and with two workers. The two views must be equal,
and each day's figures must match what the purchase records on the output topic say, counted
here: orders, revenue and paths per day, and visitors per group (a customer is a new visitor
on the day of their first order, an old customer on every later day).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.process_run import process_file
from tests.conftest import shared_file
from tests.integration.test_real_data import RETAIL, first_invoices

pytestmark = [pytest.mark.broker, pytest.mark.shared_data]
INVOICES = 600


def replay(path: Path, out: Path, bootstrap: str, workers: int) -> tuple[list[Any], Any]:
    kpis = out.with_suffix(".kpis.json")
    process_file(
        path,
        fmt="online-retail",
        output=out,
        bootstrap=bootstrap,
        progress=False,
        workers=workers,
        kpis=kpis,
    )
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return records, orjson.loads(kpis.read_bytes())


def day(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).date().isoformat()


def test_one_worker_and_two_give_the_same_view_and_it_matches_the_orders(
    broker: Any, tmp_path: Path
) -> None:
    path = first_invoices(shared_file(RETAIL), tmp_path / "retail.csv.gz", INVOICES)
    records, one = replay(path, tmp_path / "one.jsonl", broker.bootstrap, 1)
    _, two = replay(path, tmp_path / "two.jsonl", broker.bootstrap, 2)
    assert one == two
    assert one["timezone"] == "UTC" and set(one) == {"timezone", "day", "week", "month"}

    purchases = sorted(
        (r for r in records if r["type"] == "journey_transition" and r["kind"] == "purchase"),
        key=lambda r: r["occurred_at"],
    )
    assert len(purchases) > 400
    orders: Counter[str] = Counter()
    revenue: defaultdict[str, float] = defaultdict(float)
    paths: defaultdict[str, Counter[str]] = defaultdict(Counter)
    first_day: dict[str, str] = {}
    visitors: defaultdict[str, dict[str, str]] = defaultdict(dict)  # day -> key -> group
    for r in purchases:
        d, key = day(r["occurred_at"]), r["customer_key"]
        orders[d] += 1
        revenue[d] += r["order_value"]
        paths[d][r["path"]] += 1
        first_day.setdefault(key, d)
        visitors[d].setdefault(key, "new_visitor" if first_day[key] == d else "customer")

    days = {p["period"]: p for p in one["day"]}
    assert set(days) == set(orders)
    for d, figures in days.items():
        assert figures["all"]["orders"] == orders[d], d
        assert figures["all"]["revenue"] == pytest.approx(revenue[d], abs=0.01 * orders[d]), d
        assert {p: n for p, n in figures["orders_by_path"].items() if n} == dict(paths[d]), d
        groups = Counter(visitors[d].values())
        for group in ("new_visitor", "customer"):
            assert figures["groups"][group]["visitors"] == groups[group], (d, group)
            assert figures["groups"][group]["buyers"] == groups[group], (d, group)
        assert figures["groups"]["returning_visitor"]["visitors"] == 0  # no visit without order
    (month,) = one["month"]
    assert month["period"] == "2010-12"
    assert month["all"]["orders"] == len(purchases)
    assert month["all"]["visitors"] == len(first_day)
    identified = sum(1 for k in first_day if k.startswith("c:"))
    assert month["identified_visitors"] == identified
