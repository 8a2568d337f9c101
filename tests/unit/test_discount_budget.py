"""The shared daily discount budget: the grant rule, reservations from decisions, the wire form."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import orjson

from journey import customer as core
from journey.customer import DEFAULT_CONFIG as CONFIG
from recommend.budget import (
    KEY_PREFIX,
    REQUEST,
    Reservation,
    budget_day,
    budget_key,
    grant,
    reserve,
)
from recommend.experiments import HOLDOUT, TREATMENT, decision_record
from recommend.rules import load_rules
from recommend.triggers import Recommender, react
from schemas.contracts import validator_for
from schemas.records import CartChange
from streams.messages import BudgetRequest, classify
from streams.tables.state import RESERVED
from tests.unit.scenario_catalog import scenario_catalog

STORE = "baby-home-1"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
DECISION_1_0_0 = validator_for("decision", "1-0-0")
DECISION_1_0_1 = validator_for("decision", "1-0-1")


def request(n: int, *, day: int | None = None, store: str | None = STORE, arm: str = TREATMENT):
    """A reservation for customer n's discount trigger (as `react` builds it)."""
    trigger: dict[str, Any] = {
        "type": "discount_trigger",
        "version": "1-0-0",
        "id": f"{n:020x}",
        "customer_key": f"c:{n}",
        "customer_id": str(n),
        "occurred_at": "2026-11-02T08:00:00Z",
        "strategy": "discount_after_abandonment",
        "trigger_id": f"cart-{n}",
        "trigger_type": "cart_abandoned",
        "arm": arm,
        "product_id": "formula-s1",
        "percent": 10.0,
        "reason": "highest-value line",
    }
    d = budget_day(T0) if day is None else day
    return Reservation(store, d, trigger, decision_record(trigger, arm))


def apply_all(requests: list[Reservation], cap: int, row: dict | None = None):
    """Apply requests in order to one row; the published records."""
    published: list[dict[str, Any]] = []
    for r in requests:
        row, out = grant(row, r, cap)
        published.extend(out)
    return row, published


def of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind]


def test_the_cap_grants_five_and_denies_the_rest_with_a_decision() -> None:
    row, out = apply_all([request(n) for n in range(8)], cap=5)
    assert [t["id"] for t in of(out, "discount_trigger")] == [f"{n:020x}" for n in range(5)]
    assert row["granted"] == [f"{n:020x}" for n in range(5)]
    decisions = of(out, "decision")
    assert [d["delivered"] for d in decisions] == [True] * 5 + [False] * 3
    for d in decisions[:5]:
        DECISION_1_0_0(d)
    for d in decisions[5:]:
        assert (d["version"], d["held_out_reason"], d["arm"]) == (
            "1-0-1",
            "discount_budget",
            "treatment",
        )
        DECISION_1_0_1(d)
    assert [(s["name"], s["reason"]) for s in of(out, "signal")] == [
        ("recommendation_suppressed", "discount_budget")
    ] * 3


def test_a_granted_id_again_is_the_same_trigger_and_no_new_spend() -> None:
    row, first = apply_all([request(0), request(1)], cap=2)
    row, again = grant(row, request(0), 2)  # a re-delivery, the budget full
    assert row["granted"] == [f"{0:020x}", f"{1:020x}"]
    assert again == first[:2]  # decision and trigger, identical
    row, denied = grant(row, request(2), 2)
    assert of(denied, "discount_trigger") == []
    row, denied_again = grant(row, request(2), 2)  # a denied request stays denied, identically
    assert denied_again == denied and len(row["granted"]) == 2


def test_the_row_is_the_state_and_the_input_is_not_mutated() -> None:
    row, _ = apply_all([request(0)], cap=3)
    before = json.loads(json.dumps(row))
    new, _ = grant(row, request(1), 3)
    assert row == before and new["granted"] == [f"{0:020x}", f"{1:020x}"]
    assert (new["store_id"], new["day"]) == (STORE, budget_day(T0))


def test_each_utc_day_and_each_store_has_its_own_budget() -> None:
    midnight = (T0 // DAY + 1) * DAY
    assert budget_day(midnight - 0.001) + 1 == budget_day(midnight)
    today, tomorrow = budget_day(midnight - 1), budget_day(midnight)
    assert budget_key(STORE, today) != budget_key(STORE, tomorrow)
    assert budget_key(STORE, today) != budget_key("baby-home-2", today)
    assert budget_key(None, today) == budget_key("", today)  # no store: one shared budget
    rows: dict[str, Any] = {}
    sent = 0
    for n in range(6):  # three a day asked, cap 2: two a day granted
        r = request(n, day=today if n < 3 else tomorrow)
        rows[r.key], out = grant(rows.get(r.key), r, 2)
        sent += len(of(out, "discount_trigger"))
    assert sent == 4 and len(rows) == 2


def test_held_out_decisions_never_reach_the_budget() -> None:
    held = request(0, arm=HOLDOUT)
    outputs = [dict(held.decision), {"type": "signal", "name": "suppressed_by_holdout"}]
    assert reserve(outputs, STORE, T0) == outputs  # nothing reserved
    row, out = grant(None, held, 1)  # and were one to come, it spends nothing
    assert row["granted"] == [] and of(out, "discount_trigger") == []
    treated = request(1)
    reserved = reserve([dict(treated.decision), dict(treated.trigger)], STORE, T0)
    assert reserved == [treated.to_output()]


def test_budget_rows_use_the_reserved_prefix_every_customer_reader_skips() -> None:
    assert KEY_PREFIX.encode().startswith(RESERVED)
    assert budget_key(STORE, 1).encode().startswith(RESERVED)


def test_the_internal_message_round_trips_to_a_budget_request() -> None:
    r = request(3)
    out = r.to_output()
    body = orjson.dumps({"type": "internal", **out["message"]})  # as streams.routing sends it
    msg = classify(
        "internal",
        out["key"].encode(),
        body,
        internal_topic="internal",
        now=T0,
        max_bytes=1 << 20,
        future_tolerance=300,
    )
    assert msg == BudgetRequest(out["key"].encode(), r)
    wrong_key = classify(
        "internal",
        b"c:3",
        body,
        internal_topic="internal",
        now=T0,
        max_bytes=1 << 20,
        future_tolerance=300,
    )
    assert type(wrong_key).__name__ == "BadInput"
    assert out["message"]["kind"] == REQUEST


def test_many_customers_of_one_store_get_exactly_the_cap_through_react() -> None:
    """The pure path end to end: carts abandoned, decisions reserved, one owner grants 5."""
    rules = load_rules(None)
    rules = dataclasses.replace(
        rules, discount=dataclasses.replace(rules.discount, daily_budget_per_store=5)
    )
    recommender = Recommender(rules=rules, catalog=scenario_catalog(T0), holdout=0.0)
    rows: dict[str, Any] = {}
    published: list[dict[str, Any]] = []
    for n in range(12):
        key = f"c:shopper-{n}"
        add = CartChange(
            event_id=f"add-{n}",
            occurred_at=T0 + n,
            customer_id=f"shopper-{n}",
            store_id=STORE,
            action="add",
            product_id="formula-s1",
            quantity=1,
            price=36.0,
            category="baby/formula",
        )
        state, outs = core.apply(None, add, T0 + n, CONFIG, key=key)
        outs += react(state, outs, recommender, T0 + n, key=key, event=add)
        due = core.next_due(state)
        assert due is not None
        state, fired = core.fire(state, due, CONFIG, key=key)
        for out in react(state, fired, recommender, due, key=key):
            if out["type"] == "internal":
                r = Reservation.from_message(out["message"])
                assert r is not None and out["key"] == budget_key(STORE, budget_day(due))
                rows[out["key"]], granted = grant(rows.get(out["key"]), r, 5)
                published.extend(granted)
            else:
                assert out["type"] != "discount_trigger"  # never sent by the customer itself
    assert len(of(published, "discount_trigger")) == 5
    denied = [d for d in of(published, "decision") if not d["delivered"]]
    assert len(denied) == 7 and {d["held_out_reason"] for d in denied} == {"discount_budget"}
