"""The operations view kept on write (`journey.running`): by hand, and against operations_view."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey.activity import GROUPS
from journey.figures import PERIODS, operations_view
from journey.running import RunningView, total
from tests.unit.test_figures import customers


def test_the_hand_counted_week_after_adds_removes_and_a_change() -> None:
    running = RunningView()
    week = customers()
    for key, days in week:
        running.add(key, days)
    running.add("c:e", {"2026-11-03": ["new_visitor", 0, 1, 12.34, 1, 0, 0]})
    running.remove("c:e", {"2026-11-03": ["new_visitor", 0, 1, 12.34, 1, 0, 0]})
    mon, tue, wed, thu = running.figures("day")
    assert mon["groups"]["new_visitor"]["visitors"] == 3 and mon["all"]["revenue"] == 100.0
    assert tue["recall"] == {
        "eligible": 2,  # b and c: active before Tuesday, never bought by then
        "recalled": 1,
        "rate": 0.5,
        "recalled_buyers": 1,
        "conversion_rate": 1.0,
    }
    assert wed["recall"]["eligible"] == 2 and wed["groups"]["customer"]["orders"] == 1
    assert thu["recall"]["recalled"] == 1
    (w,) = running.figures("week")
    assert w["all"] == {
        "visitors": 4,
        "buyers": 2,
        "conversion_rate": 0.5,
        "orders": 3,
        "revenue": 180.0,
        "average_order_value": 60.0,
    }
    # a's Wednesday order is gone from its state: taken back with the old days, added with the new
    key, days = week[0]
    assert key == "c:a"
    changed = copy.deepcopy(dict(days))
    changed["2026-11-04"] = ["customer", 0, 0, 0.0, 0, 0, 0]
    running.remove(key, days)
    running.add(key, changed)
    (w,) = running.figures("week")
    assert (w["all"]["orders"], w["all"]["revenue"], w["all"]["average_order_value"]) == (
        2,
        130.0,
        65.0,
    )
    assert w["repurchase_rate"] == {"buyers": 2, "repeat_buyers": 0, "rate": 0.0}
    wed = running.figures("day", start="2026-11-04", end="2026-11-04")[0]
    assert wed["groups"]["customer"] == {
        "visitors": 1,
        "buyers": 0,
        "conversion_rate": 0.0,
        "orders": 0,
        "revenue": 0.0,
        "average_order_value": None,
    }


def test_taking_everyone_back_leaves_nothing() -> None:
    running = RunningView()
    for key, days in customers():
        running.add(key, days, [["x", "cart", datetime(2026, 11, 9, tzinfo=UTC).timestamp(), 1]])
    assert [p["period"] for p in running.figures("week")] == ["2026-W45", "2026-W46"]
    for key, days in customers():
        running.remove(key, days, [["x", "cart", datetime(2026, 11, 9, tzinfo=UTC).timestamp(), 1]])
    assert all(running.figures(p) == [] for p in PERIODS)
    assert running.first_days == {} and running.first_orders == {} and running.customers == 0


def test_revenue_in_cents_never_drifts() -> None:
    running = RunningView()
    cheap = {"2026-11-02": ["new_visitor", 0, 1, 0.1, 1, 0, 0]}
    other = {"2026-11-02": ["new_visitor", 0, 1, 0.2, 1, 0, 0]}
    running.add("a:1", cheap)
    for _ in range(1000):  # 0.1 + 0.2 != 0.3 in floats: counted in cents, it is
        running.add("a:2", other)
        running.remove("a:2", other)
    running.add("a:2", other)
    (day,) = running.figures("day")
    assert day["all"]["revenue"] == 0.3 and day["all"]["average_order_value"] == 0.15


def test_a_bad_period_is_refused() -> None:
    with pytest.raises(ValueError):
        RunningView().figures("year")


FIRST = date(2026, 10, 20)  # 30 days over a month's end and five ISO weeks
ZONES = ("UTC", "Asia/Shanghai", "America/Los_Angeles")


@st.composite
def a_customer(draw: st.DrawFn) -> tuple[dict[str, list[Any]], list[Any]]:
    """Random activity days and stored markers (some unreadable)."""
    days: dict[str, list[Any]] = {}
    for offset in draw(st.sets(st.integers(0, 29), max_size=6)):
        orders = draw(st.integers(0, 3))
        revenue = draw(st.integers(0, 50_000)) / 100 if orders else 0.0
        paths = [draw(st.integers(0, 2)) for _ in range(3)]
        returns = draw(st.integers(0, 2))
        day = (FIRST + timedelta(days=offset)).isoformat()
        days[day] = [draw(st.sampled_from(GROUPS)), returns, orders, revenue, *paths]
    start = datetime(2026, 10, 19, tzinfo=UTC).timestamp()
    marker = st.tuples(
        st.sampled_from(["cart", "browse", "other"]),
        st.floats(start, start + 33 * 86400),
        st.booleans(),
    ).map(lambda m: ["id", m[0], m[1], m[2]])
    fired = draw(st.lists(st.one_of(marker, st.just(["short"])), max_size=4))
    return days, fired


def key_of(slot: int) -> str:
    return f"c:{slot}" if slot % 2 else f"a:{slot}"


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.none() | a_customer() | a_customer().map(lambda c: ("edit", c)),
        ),
        max_size=25,
    ),
    zone=st.sampled_from(ZONES),
    bounds=st.tuples(st.none() | st.integers(0, 35), st.none() | st.integers(0, 35)),
)
def test_any_adds_and_removes_give_the_from_scratch_view(
    ops: list[tuple[int, Any]],
    zone: str,
    bounds: tuple[int | None, int | None],
) -> None:
    running = RunningView(zone)
    held: dict[str, tuple[dict[str, list[Any]], list[Any]]] = {}
    for n, (slot, customer) in enumerate(ops):  # each op replaces a slot's customer (None: gone)
        key = key_of(slot)
        before = held.pop(key, None)
        if customer is not None and customer[0] == "edit":  # some days and a marker changed
            days, fired = copy.deepcopy(before) if before is not None else ({}, [])
            customer = ({**days, **customer[1][0]}, fired + customer[1][1][:1])
        if customer is not None:
            held[key] = copy.deepcopy(customer)
        if n % 2:  # one step: only the periods whose share changed are touched
            running.change(key, before, customer)
        else:  # taken back, then added
            if before is not None:
                running.remove(key, *before)
            if customer is not None:
                running.add(key, *customer)
    start, end = (
        None if b is None else (FIRST + timedelta(days=b - 3)).isoformat() for b in bounds
    )
    remaining = [(k, days, fired) for k, (days, fired) in held.items()]
    for period in PERIODS:
        expected = operations_view(remaining, period, start=start, end=end, timezone=zone)
        assert running.figures(period, start=start, end=end) == expected
        # the same customers spread over two partitions, summed
        parts = (RunningView(zone), RunningView(zone))
        for i, customer in enumerate(remaining):
            parts[i % 2].add(*customer)
        assert total(parts, period, start=start, end=end) == expected


@settings(max_examples=60, deadline=None)
@given(
    customers_=st.lists(a_customer(), max_size=12),
    zone=st.sampled_from(ZONES),
    bounds=st.tuples(st.none() | st.integers(0, 35), st.none() | st.integers(0, 35)),
)
def test_views_exported_by_other_workers_sum_to_the_from_scratch_view(
    customers_: list[tuple[dict[str, list[Any]], list[Any]]],
    zone: str,
    bounds: tuple[int | None, int | None],
) -> None:
    """What `/kpis?scope=local&format=counts` sends, read back and summed with local views."""
    import orjson

    start, end = (
        None if b is None else (FIRST + timedelta(days=b - 3)).isoformat() for b in bounds
    )
    parts = [RunningView(zone) for _ in range(3)]
    remaining = []
    for i, (days, fired) in enumerate(customers_):
        parts[i % 3].add(key_of(i), days, fired)
        remaining.append((key_of(i), days, fired))
    for period in PERIODS:
        shipped = [
            RunningView.from_export(
                orjson.loads(orjson.dumps(p.export([period], start=start, end=end)))
            )
            for p in parts[1:]
        ]
        expected = operations_view(remaining, period, start=start, end=end, timezone=zone)
        assert total([parts[0], *shipped], period, start=start, end=end) == expected


def test_a_malformed_export_is_refused() -> None:
    view = RunningView("UTC")
    view.add("c:1", {"2026-11-02": ["new_visitor", 0, 1, 20.0, 1, 0, 0]})
    good = view.export(["day"])
    assert RunningView.from_export(good).figures("day") == view.figures("day")
    for bad in (
        {**good, "tallies": {"year": {}}},
        {**good, "tallies": {"day": {"2026-11-02": [[], [], [], [], []]}}},
        {k: v for k, v in good.items() if k != "first_days"},
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            RunningView.from_export(bad)
