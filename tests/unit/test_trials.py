"""Test and learn per customer: each customer's trials in its state, summed across customers."""

from __future__ import annotations

from typing import Any

from recommend.experiments import HOLDOUT, TREATMENT, assign_arms, attribute, trial_counts
from recommend.uplift import experiment_report

T0 = 1_793_610_000.0  # 2026-11-02T09:00:00Z


def rec(n: int, key: str, strategy: str = "complements_after_purchase", day: int = 2) -> dict:
    return {
        "type": "recommendation",
        "id": f"{n:020x}",
        "customer_key": key,
        "customer_id": key[2:],
        "occurred_at": f"2026-11-{day:02d}T09:00:00Z",
        "strategy": strategy,
        "items": [{"product_id": "wipes-80"}],
    }


def decide(state: dict[str, Any], key: str, arm: str, *records: dict) -> None:
    assign_arms(state, [{**r, "arm": arm} for r in records], customer_key=key, holdout=0.5)


def test_a_customer_counts_once_per_strategy_however_many_decisions_and_orders() -> None:
    state: dict[str, Any] = {}
    key = "c:a"
    decide(state, key, TREATMENT, rec(1, key), rec(2, key, day=3))
    decide(state, key, TREATMENT, rec(2, key, day=3))  # the same decision again: not counted
    attribute(state, customer_key=key, order_id="o1", order_value=30.0, ordered_at=T0 + 86400 + 60)
    attribute(state, customer_key=key, order_id="o2", order_value=12.5, ordered_at=T0 + 86400 + 90)
    attribute(state, customer_key=key, order_id="o2", order_value=12.5, ordered_at=T0 + 86400 + 90)
    assert state["trials"] == {"complements_after_purchase": [TREATMENT, 2, 2, 42.5]}
    decided, converted, revenue = trial_counts([state])
    cell = ("complements_after_purchase", TREATMENT)
    assert (decided, converted, revenue) == ({cell: 1}, {cell: 1}, {cell: 42.5})


def test_customers_are_the_unit_of_the_uplift() -> None:
    """40 treated customers of whom 12 bought, 40 held out of whom 4 bought."""
    states = []
    for i in range(80):
        key = f"c:{i:02d}"
        arm = TREATMENT if i < 40 else HOLDOUT
        state: dict[str, Any] = {}
        decide(state, key, arm, rec(3 * i, key), rec(3 * i + 1, key, day=3))
        if i < 12 or 40 <= i < 44:
            for n in range(3):  # three orders each: still one converted customer
                attribute(
                    state,
                    customer_key=key,
                    order_id=f"o{i}-{n}",
                    order_value=10.0,
                    ordered_at=T0 + 86400 + 60 * (n + 1),
                )
        states.append(state)
    states.append({"trials": "not a map"})  # skipped
    states.append("not a state")  # skipped
    decided, converted, revenue = trial_counts(states)
    s = "complements_after_purchase"
    assert decided == {(s, TREATMENT): 40, (s, HOLDOUT): 40}
    assert converted == {(s, TREATMENT): 12, (s, HOLDOUT): 4}
    assert revenue == {(s, TREATMENT): 360.0, (s, HOLDOUT): 120.0}
    report = experiment_report(decided, converted, revenue)[s]
    assert report[TREATMENT]["conversion_rate"] == 0.3
    assert report[HOLDOUT]["conversion_rate"] == 0.1
    assert report[TREATMENT]["uplift"]["absolute"] == 0.2
    assert report[TREATMENT]["uplift"]["significant"] is True  # Newcombe: about [0.03, 0.36]
    assert 0.0 < report[TREATMENT]["uplift"]["ci_low"] < 0.1
