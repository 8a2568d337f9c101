"""The operations view from customers' activity: four customers over a week, counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from journey import customer as core
from journey.activity import day_of
from journey.config import JourneyConfig
from journey.customer import CustomerState
from journey.figures import PERIODS, CurrentPeriods, operations_view, period_bounds, period_of
from schemas.records import CartChange, Order, OrderLine, PageView
from streams import kpis


def at(day: int, hour: int, minute: int = 0) -> float:
    """Epoch of 2026-11-<day> hour:minute UTC (2026-11-02 is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC).timestamp()


def view(key: str, t: float) -> PageView:
    ids = {"customer_id": key[2:]} if key.startswith("c:") else {"anonymous_id": key[2:]}
    return PageView(event_id=f"v-{key}-{t}", occurred_at=t, product_id="p", category="x", **ids)


def buy(key: str, t: float, value: float) -> Order:
    ids = {"customer_id": key[2:]} if key.startswith("c:") else {"anonymous_id": key[2:]}
    line = OrderLine(product_id="p", quantity=1, unit_price=value)
    return Order(
        event_id=f"o-{key}-{t}",
        occurred_at=t,
        action="placed",
        order_id=f"o-{key}-{t}",
        lines=(line,),
        total=value,
        **ids,
    )


def customers(config: JourneyConfig | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The week, through the journey core."""
    story = {
        # new visitor buys on Monday, comes back on Wednesday and buys again
        "c:a": [
            view("c:a", at(2, 9)),
            buy("c:a", at(2, 9, 10), 100.0),
            view("c:a", at(4, 10)),
            buy("c:a", at(4, 10, 5), 50.0),
        ],
        # anonymous: Monday, back on Tuesday (returning visitor) and buys
        "a:b": [view("a:b", at(2, 10)), view("a:b", at(3, 10)), buy("a:b", at(3, 10, 5), 30.0)],
        # anonymous: Monday, back on Thursday, no order
        "a:c": [view("a:c", at(2, 11)), view("a:c", at(5, 11))],
        # identified: Tuesday only
        "c:d": [view("c:d", at(3, 12))],
    }
    out = []
    for key, events in story.items():
        state: CustomerState | None = None
        for e in events:
            if config is None:
                state, _ = core.apply(state, e, e.occurred_at, key=key)
            else:
                state, _ = core.apply(state, e, e.occurred_at, config, key=key)
        assert state is not None and state.journey is not None
        out.append((key, state.journey.activity))
    return out


def test_days() -> None:
    mon, tue, wed, thu = operations_view(customers(), "day")
    assert [p["period"] for p in (mon, tue, wed, thu)] == [
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
        "2026-11-05",
    ]
    assert mon["groups"]["new_visitor"] == {
        "visitors": 3,
        "buyers": 1,
        "conversion_rate": 0.3333,
        "orders": 1,
        "revenue": 100.0,
        "average_order_value": 100.0,
    }
    assert mon["orders_by_path"] == {"touch→purchase": 1, "touch→seed→purchase": 0, "repurchase": 0}
    assert (mon["identified_visitors"], mon["identified_share"]) == (1, 0.3333)
    assert mon["recall"]["eligible"] == 0
    # Tuesday: b comes back and buys (returning visitor, seeded path); d is new
    assert tue["groups"]["returning_visitor"]["visitors"] == 1
    assert tue["groups"]["returning_visitor"]["revenue"] == 30.0
    assert tue["groups"]["new_visitor"]["buyers"] == 0
    assert tue["orders_by_path"]["touch→seed→purchase"] == 1
    assert tue["never_purchased_return_visits"] == 1
    # active before Tuesday and never bought by then: b and c; b came back and bought
    assert tue["recall"] == {
        "eligible": 2,
        "recalled": 1,
        "rate": 0.5,
        "recalled_buyers": 1,
        "conversion_rate": 1.0,
    }
    # Wednesday: a buys again (repurchase); eligible for recall: c, d (b and a have bought)
    assert wed["groups"]["customer"]["orders"] == 1
    assert wed["repurchase_share"] == 1.0
    assert wed["recall"]["eligible"] == 2 and wed["recall"]["recalled"] == 0
    assert thu["recall"]["recalled"] == 1 and thu["never_purchased_return_visits"] == 1


def test_week_and_month_count_each_customer_once() -> None:
    (week,) = operations_view(customers(), "week")
    (month,) = operations_view(customers(), "month")
    assert (week["period"], week["first_day"], week["last_day"]) == (
        "2026-W45",
        "2026-11-02",
        "2026-11-08",
    )
    assert (month["first_day"], month["last_day"]) == ("2026-11-01", "2026-11-30")
    for p in (week, month):
        assert p["all"] == {
            "visitors": 4,
            "buyers": 2,
            "conversion_rate": 0.5,
            "orders": 3,
            "revenue": 180.0,
            "average_order_value": 60.0,
        }
        assert p["groups"]["new_visitor"]["visitors"] == 4  # each one's first activity in it
        assert p["repurchase_share"] == 0.3333
        assert p["repurchase_rate"] == {"buyers": 2, "repeat_buyers": 1, "rate": 0.5}
        assert p["never_purchased_return_visits"] == 2
        assert (p["identified_visitors"], p["identified_share"]) == (2, 0.5)


def test_range_and_bad_period() -> None:
    days = operations_view(customers(), "day", start="2026-11-03", end="2026-11-04")
    assert [p["period"] for p in days] == ["2026-11-03", "2026-11-04"]
    with pytest.raises(ValueError):
        operations_view(customers(), "year")


def test_the_store_time_zone_moves_day_boundaries() -> None:
    t = at(2, 20)  # Monday 20:00 UTC is Tuesday 04:00 in Shanghai
    assert day_of(t, "UTC") == "2026-11-02"
    assert day_of(t, "Asia/Shanghai") == "2026-11-03"
    for zone, day in (("UTC", "2026-11-02"), ("Asia/Shanghai", "2026-11-03")):
        state, _ = core.apply(None, view("c:e", t), t, JourneyConfig(timezone=zone), key="c:e")
        assert state.journey is not None
        (only,) = operations_view([("c:e", state.journey.activity)], "day")
        assert only["period"] == day and only["all"]["visitors"] == 1
    with pytest.raises(ValueError):
        JourneyConfig(timezone="Mars/Olympus")


def test_period_keys() -> None:
    assert period_of("2026-01-01", "week") == "2026-W01"
    assert period_of("2027-01-01", "week") == "2026-W53"  # ISO: Friday of 2026's last week
    assert period_bounds("2026-W53", "week") == ("2026-12-28", "2027-01-03")
    assert period_bounds("2026-02", "month") == ("2026-02-01", "2026-02-28")
    assert period_bounds("2026-12", "month") == ("2026-12-01", "2026-12-31")


def day(visitor: str, returns: int = 0, orders: int = 0, revenue: float = 0.0) -> list[Any]:
    """An activity day entry (orders on the path of `visitor`)."""
    paths = [0, 0, 0]
    paths[{"new_visitor": 0, "returning_visitor": 1}.get(visitor, 2)] = orders
    return [visitor, returns, orders, revenue, *paths]


def abandoners() -> list[tuple[str, dict[str, list[Any]], list[Any]]]:
    """Three customers with fired-abandonment markers as stored: [id, kind, due, recovered, ...]."""
    return [
        # a: new on Monday, back on Wednesday to buy; a cart abandoned on Monday 10:00 (recovered
        # by that order) and a browse abandonment on Monday 23:30 UTC (not recovered)
        (
            "c:a",
            {"2026-11-02": day("new_visitor"), "2026-11-04": day("returning_visitor", 1, 1, 30.0)},
            [
                ["x1", "cart", at(2, 10), True, ["p"], None],
                ["x2", "browse", at(2, 23, 30), False, ["p"], "x"],
            ],
        ),
        # b: Monday and Tuesday; its cart is due Wednesday 00:30, a day it was not active
        (
            "a:b",
            {"2026-11-02": day("new_visitor"), "2026-11-03": day("returning_visitor", 1)},
            [["x3", "cart", at(4, 0, 30), False]],  # a four-field marker (older states)
        ),
        # c: only Wednesday is kept; a marker from before it, and markers that cannot be read
        (
            "a:c",
            {"2026-11-04": day("new_visitor")},
            [["x4", "browse", at(2, 9), True], ["bad"], ["x5", "wish", at(4, 9), True], None],
        ),
    ]


def fired(f: int, r: int) -> dict[str, Any]:
    return {"fired": f, "recovered": r, "recovery_rate": round(r / f, 4) if f else None}


def both(cart: tuple[int, int], browse: tuple[int, int]) -> dict[str, Any]:
    """The abandonment figures of a group: both kinds, then per kind."""
    return {
        **fired(cart[0] + browse[0], cart[1] + browse[1]),
        "cart": fired(*cart),
        "browse": fired(*browse),
    }


NONE = both((0, 0), (0, 0))


def test_abandonments_per_day_in_the_customers_group_of_their_due_day() -> None:
    mon, tue, wed = operations_view(abandoners(), "day")
    # Monday: a's two, as a new visitor; c's marker is older than c's kept activity
    assert mon["abandonment"] == {
        "groups": {
            "new_visitor": both((1, 1), (1, 0)),
            "returning_visitor": NONE,
            "customer": NONE,
            "lapsed": NONE,
        },
        "all": both((1, 1), (1, 0)),
    }
    assert mon["abandonment"]["all"]["recovery_rate"] == 0.5
    assert tue["abandonment"]["all"] == NONE
    # Wednesday: b's cart, in b's type on its last active day before (Tuesday: returning)
    assert wed["abandonment"]["groups"]["returning_visitor"] == both((1, 0), (0, 0))
    assert wed["abandonment"]["groups"]["new_visitor"] == NONE
    assert wed["abandonment"]["all"] == both((1, 0), (0, 0))


def test_abandonments_per_week_follow_the_customers_group_in_the_week() -> None:
    (week,) = operations_view(abandoners(), "week")
    # b's first activity of the week was as a new visitor: its cart counts there
    assert week["abandonment"]["groups"]["new_visitor"] == both((2, 1), (1, 0))
    assert week["abandonment"]["groups"]["returning_visitor"] == NONE
    assert week["abandonment"]["all"] == both((2, 1), (1, 0))
    assert week["abandonment"]["all"]["recovery_rate"] == 0.3333


def test_abandonment_days_are_in_the_store_time_zone() -> None:
    # Shanghai is UTC+8: a's browse abandonment (Monday 23:30 UTC) falls on Tuesday, a day a was
    # not active (its Monday type: new visitor), b's cart on Wednesday 08:30
    mon, tue, wed = operations_view(abandoners(), "day", timezone="Asia/Shanghai")
    assert mon["abandonment"]["all"] == both((1, 1), (0, 0))
    assert tue["abandonment"]["groups"]["new_visitor"] == both((0, 0), (1, 0))
    assert wed["abandonment"]["all"] == both((1, 0), (0, 0))


def test_a_period_with_an_abandonment_and_no_activity_is_listed() -> None:
    only = [("a:d", {"2026-11-02": day("new_visitor")}, [["x", "cart", at(3, 0, 30), False]])]
    mon, tue = operations_view(only, "day")
    assert (mon["all"]["visitors"], mon["abandonment"]["all"]) == (1, NONE)
    assert (tue["period"], tue["all"]["visitors"]) == ("2026-11-03", 0)
    assert tue["abandonment"]["groups"]["new_visitor"] == both((1, 0), (0, 0))
    assert tue["recall"]["eligible"] == 1  # active before Tuesday, never bought


def test_a_cart_abandoned_and_recovered_through_the_core_and_the_stored_states() -> None:
    key = "c:e"
    add = CartChange(
        event_id="e1",
        occurred_at=at(2, 9),
        customer_id="e",
        action="add",
        product_id="p",
        quantity=1,
        price=20.0,
        category="x",
    )
    state, _ = core.apply(None, add, add.occurred_at, key=key)
    state, out = core.fire(state, at(2, 10, 1), key=key)  # due 10:00, an hour after the add
    assert [o["type"] for o in out] == ["cart_abandoned"]
    stored = {**state.to_dict(), "outbox": [["ignored"]]}
    (today,) = kpis.view([(key, stored)], "UTC", ("day",))["day"]
    assert today["abandonment"]["all"] == both((1, 0), (0, 0))
    state, out = core.apply(state, buy(key, at(3, 9), 20.0), at(3, 9), key=key)
    assert "abandonment_recovered" in [o["type"] for o in out]
    raw = orjson.dumps(state.to_dict())
    mon, tue = kpis.view([(key.encode(), raw)], "UTC", ("day",))["day"]
    assert mon["abandonment"]["groups"]["new_visitor"] == both((1, 1), (0, 0))
    assert tue["abandonment"]["all"] == NONE  # the recovery counts with its abandonment


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_the_current_periods_are_the_views_periods(zone: str) -> None:
    data: list[Any] = [*customers(), *abandoners()]
    for d in ("2026-10-31", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-06", "2026-12-01"):
        periods = CurrentPeriods(d, zone)
        for customer in data:
            periods.add(*customer)
        for p, found in periods.figures().items():
            expected = operations_view(data, p, start=d, end=d, timezone=zone)
            assert found == (expected[0] if expected else None), (d, p)
    assert set(periods.figures()) == set(PERIODS)
