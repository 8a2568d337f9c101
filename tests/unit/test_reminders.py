"""Replenishment reminders through the pure cores, as the agent fires a customer's deadlines."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from journey import customer as core
from journey.customer import CustomerState
from recommend.rules import WinBack, load_rules
from recommend.triggers import Recommender, react
from schemas.records import Order
from tests.unit.scenario_catalog import order_lines, scenario_catalog

DAY = 86400.0
T0 = 1_793_610_000.0  # 2026-11-02T09:00:00Z
KEY = "c:c-mother-1"
Out = dict[str, Any]


def recommender(**stock: int) -> Recommender:
    """The default rules (formula every 14 days, no default interval), no holdout.

    The win-back's lapse deadline is off: these tests are about the reminders' deadlines alone
    (tests/unit/test_reengage.py has the two together).
    """
    rules = replace(load_rules(), win_back=WinBack(after_days=0))
    return Recommender(rules=rules, catalog=scenario_catalog(T0, **stock), holdout=0.0)


def order(state: CustomerState | None, rec: Recommender, t: float, *pids: str) -> CustomerState:
    """Apply an order through the journey core and react to it, as the agent does."""
    lines = order_lines(*pids)
    event = Order(
        event_id=f"ev-{t}",
        occurred_at=t,
        customer_id=KEY[2:],
        action="placed",
        order_id=f"o-{t}",
        lines=lines,
        total=sum(line.unit_price for line in lines),
    )
    state, outputs = core.apply(state, event, t, key=KEY)
    react(state, outputs, rec, t, key=KEY, event=event)
    return state


def fire(state: CustomerState, rec: Recommender, at: float) -> list[Out]:
    """Fire the customer's deadlines at `at`, as the agent's `fire_at_time`."""
    state, outputs = core.fire(state, at, key=KEY)
    return outputs + react(state, outputs, rec, at, key=KEY)


def sent(outputs: list[Out], strategy: str = "replenishment") -> list[Out]:
    return [o for o in outputs if o["type"] == "recommendation" and o["strategy"] == strategy]


def test_formula_reminder_is_due_after_its_interval_and_fires_once() -> None:
    rec = recommender()
    state = order(None, rec, T0, "formula-s1")
    assert core.next_due(state) == T0 + 14 * DAY  # rules.toml: baby/formula = 14 days
    assert fire(state, rec, T0 + 13 * DAY) == []  # not due yet: nothing
    (reminder,) = sent(fire(state, rec, T0 + 14 * DAY))
    assert [i["product_id"] for i in reminder["items"]] == ["formula-s1"]
    assert reminder["trigger_type"] == "replenishment_check"
    assert reminder["occurred_at"].startswith("2026-11-16T09:00:00")
    assert core.next_due(state) is None  # once per purchase
    assert sent(fire(state, rec, T0 + 15 * DAY)) == []


def test_buying_again_moves_the_reminder() -> None:
    rec = recommender()
    state = order(None, rec, T0, "formula-s1")
    state = order(state, rec, T0 + 10 * DAY, "formula-s1")
    assert core.next_due(state) == T0 + 24 * DAY
    assert sent(fire(state, rec, T0 + 14 * DAY)) == []


def test_out_of_stock_at_fire_time_is_suppressed_not_sent_and_not_repeated() -> None:
    rec = recommender(formula_s1=0)
    state = order(None, rec, T0, "formula-s1")
    out = fire(state, rec, T0 + 14 * DAY)
    assert sent(out) == []
    assert [o["strategy"] for o in out if o["type"] == "signal"] == ["replenishment"]
    assert core.next_due(state) is None


def test_unlisted_product_uses_the_customers_own_reorder_gap() -> None:
    rec = recommender()
    state = order(None, rec, T0, "kettle-glass")  # home/kitchen: no interval in the rules
    assert core.next_due(state) is None
    state = order(state, rec, T0 + 20 * DAY, "kettle-glass")
    assert core.next_due(state) == T0 + 40 * DAY  # bought again 20 days later
    (reminder,) = sent(fire(state, rec, T0 + 40 * DAY))
    assert reminder["items"][0]["product_id"] == "kettle-glass"
    assert "lasts about 20 days" in reminder["items"][0]["reason"]


def test_same_day_orders_teach_no_gap() -> None:
    rec = recommender()
    state = order(None, rec, T0, "kettle-glass")
    state = order(state, rec, T0 + 3600, "kettle-glass")
    assert core.next_due(state) is None


def test_flushing_fires_every_reminder_and_ends() -> None:
    rec = recommender()
    state = order(None, rec, T0, "formula-s1", "wipes-80", "diapers-s")
    dues = []
    while (due := core.next_due(state)) is not None:
        assert len(dues) < 10, "the flush loop must end"
        dues.append(due)
        fire(state, rec, due)
    assert [(d - T0) / DAY for d in dues] == [10.0, 14.0, 21.0]  # diapers, formula, wipes


def test_state_round_trips_with_the_reminder_due() -> None:
    rec = recommender()
    state = order(None, rec, T0, "formula-s1")
    again = CustomerState.from_dict(state.to_dict())
    assert core.next_due(again) == T0 + 14 * DAY
