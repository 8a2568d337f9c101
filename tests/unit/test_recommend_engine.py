"""The engine end to end: journey/abandonment records in, schema-valid records and signals out."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from journey import abandonment, stages
from journey.stages import CustomerJourney, format_time
from recommend.catalog import Catalog
from recommend.copurchase import DAY, CoPurchase
from recommend.engine import decide, record_id
from recommend.rules import Rules, load_rules
from replay.scenario import CATALOG, PREMIUM_STROLLERS
from schemas.contracts import validator_for
from schemas.records import CartChange, Order, OrderLine, PageView
from tests.unit.scenario_catalog import scenario_catalog

T0 = 1_793_610_000.0  # 2026-11-02T09:40:00Z
RULES = load_rules()
STORE = "baby-home-1"
VALIDATE = {t: validator_for(t) for t in ("recommendation", "discount_trigger", "decision")}
Out = dict[str, Any]


def demo_catalog(**stock: int) -> Catalog:
    return scenario_catalog(T0, **stock)


def run(
    trigger: Out,
    *,
    state: dict[str, Any] | None = None,
    journey: CustomerJourney | None = None,
    catalog: Catalog | None = None,
    copurchase: CoPurchase | None = None,
    rules: Rules = RULES,
    now: float | None = None,
    key: str = "c:c-mother-1",
    arm: str | None = None,
) -> tuple[dict[str, Any], list[Out]]:
    """`decide` with demo defaults; validates every published record against its schema."""
    state, out = decide(
        state if state is not None else {},
        trigger,
        journey,
        catalog if catalog is not None else demo_catalog(),
        copurchase if copurchase is not None else CoPurchase(),
        rules,
        now if now is not None else stages_time(trigger),
        customer_key=key,
        arm_of=None if arm is None else (lambda strategy: arm),
    )
    for rec in out:
        if rec["type"] != "signal":
            VALIDATE[rec["type"]](rec)
    return state, out


def stages_time(trigger: Out) -> float:
    from recommend.engine import parse_time

    return parse_time(trigger["occurred_at"])


def of(out: list[Out], rtype: str) -> list[Out]:
    return [r for r in out if r["type"] == rtype]


def signals(out: list[Out]) -> list[tuple[str, str]]:
    return [(r["strategy"], r["reason"]) for r in out if r["type"] == "signal"]


def purchase(
    lines: list[tuple[str, int]], t: float, key: str = "c:c-mother-1", order_id: str = "o-1"
) -> tuple[CustomerJourney, Out]:
    """A journey and its `purchase` transition record from the real journey core."""
    products = {p.product_id: p for p in CATALOG}
    order = Order(
        event_id=f"ev-{order_id}",
        occurred_at=t,
        customer_id=key[2:],
        store_id=STORE,
        action="placed",
        order_id=order_id,
        lines=tuple(
            OrderLine(
                product_id=pid,
                quantity=q,
                unit_price=products[pid].price,
                category=products[pid].category,
            )
            for pid, q in lines
        ),
        total=sum(products[pid].price * q for pid, q in lines),
    )
    journey, out = stages.apply(None, order, t, customer_key=key)
    assert journey is not None
    (rec,) = [r for r in out if r.get("kind") == "purchase"]
    return journey, {**rec, "store_id": STORE}


def cart_record(rid: str, t: float, key: str = "c:c-mother-1") -> Out:
    return {
        "type": "cart_abandoned",
        "version": "1-0-0",
        "id": rid,
        "customer_key": key,
        "customer_id": key[2:],
        "occurred_at": format_time(t),
        "cart_id": f"cart-{rid}",
        "lines": [
            {"product_id": "wipes-80", "quantity": 1, "price": 6.5, "category": "baby/wipes"},
            {"product_id": "formula-s1", "quantity": 2, "price": 36.0, "category": "baby/formula"},
        ],
        "item_count": 3,
        "value": 78.5,
        "last_activity_at": format_time(t - 3600),
        "seconds_since_last_activity": 3600.0,
    }


def father_browse(
    catalog: Catalog, t: float = T0, key: str = "c:c-father-1", sid: str = "s-f-1"
) -> tuple[CustomerJourney, Out]:
    """Three premium strollers viewed in one session, then the session ends (real cores)."""
    journey: CustomerJourney | None = None
    ab: abandonment.AbandonmentState | None = None
    for n, pid in enumerate(PREMIUM_STROLLERS):
        item = catalog.items[pid]
        view = PageView(
            event_id=f"{sid}-v{n}",
            occurred_at=t + 60 * n,
            customer_id=key[2:],
            session_id=sid,
            store_id=STORE,
            product_id=pid,
            category=item["category"],
            price=item["price"],
        )
        journey, _ = stages.apply(journey, view, t + 60 * n, customer_key=key)
        ab, _ = abandonment.apply(
            ab, view, t + 60 * n, customer_key=key, tier_of=catalog.tiers.tier_of
        )
    assert journey is not None and ab is not None
    _, out = abandonment.flush(ab, customer_key=key, tier_of=catalog.tiers.tier_of)
    (rec,) = out
    assert rec["type"] == "browse_abandoned" and rec["high_priced_count"] == 3
    return journey, {**rec, "store_id": STORE}


# ---------------------------------------------------------------------------------------------


def test_stage1_formula_purchase_recommends_size_s_diapers_and_wipes() -> None:
    journey, trigger = purchase([("formula-s1", 2)], T0)
    state, out = run(trigger, journey=journey)
    (rec,) = out
    assert rec["type"] == "recommendation"
    assert rec["strategy"] == "complements_after_purchase"
    assert [(i["product_id"], i["score"], i["price"]) for i in rec["items"]] == [
        ("diapers-s", 2.0, 29.0),
        ("wipes-80", 1.99, 6.5),
    ]
    assert rec["items"][0]["title"] == "Soft Dry Diapers, Size S, 84 pcs"
    assert rec["category"] == "baby/formula"
    assert rec["store"] == {
        "id": "baby-home-1",
        "name": "Baby & Home Riverside",
        "address": "88 Riverside Road, Level 2",
        "guide": {"name": "Lin Mei", "contact": "+86 21 5550 0101"},
    }
    assert rec["occurred_at"] == trigger["occurred_at"]
    assert rec["trigger_id"] == trigger["id"] and rec["trigger_type"] == "journey_transition"
    expected = hashlib.sha1(
        f"c:c-mother-1|complements_after_purchase|{trigger['id']}".encode()
    ).hexdigest()[:20]
    assert (
        rec["id"]
        == expected
        == record_id("c:c-mother-1", "complements_after_purchase", trigger["id"])
    )
    assert state["bought"] == {"formula-s1": [pytest.approx(T0, abs=0.002), "baby/formula"]}
    assert state["store_id"] == STORE


def test_order_lines_in_the_trigger_and_wipes_in_the_same_order() -> None:
    journey, trigger = purchase([("formula-s1", 2), ("wipes-80", 1)], T0)
    _, out = run(trigger, journey=journey)
    assert [i["product_id"] for i in out[0]["items"]] == ["diapers-s"]
    trigger = {**trigger, "order_lines": [{"product_id": "formula-s2"}], "store_id": "nowhere"}
    _, out = run(trigger, journey=None)
    assert [i["product_id"] for i in out[0]["items"]] == ["diapers-m", "wipes-80"]
    assert out[0]["store"] is None  # a store id not in the directory


def test_never_recommends_just_bought_or_out_of_stock() -> None:
    journey, trigger = purchase([("formula-s1", 1)], T0)
    journey.recent_purchases = {"wipes-80": T0 - 2 * DAY, **journey.recent_purchases}
    catalog = demo_catalog(diapers_s=0)
    _, out = run(trigger, journey=journey, catalog=catalog)
    # diapers-s is sold out (and diapers-m is the wrong size); wipes were bought 2 days ago
    assert out == [
        {
            "type": "signal",
            "name": "recommendation_suppressed",
            "strategy": "complements_after_purchase",
            "reason": "just_bought",
        }
    ]
    journey.recent_purchases["wipes-80"] = T0 - 31 * DAY
    _, out = run(trigger, journey=journey, catalog=catalog)
    assert [i["product_id"] for i in out[0]["items"]] == ["wipes-80"]


def test_three_premium_strollers_downsell_and_discount() -> None:
    catalog = demo_catalog()
    journey, trigger = father_browse(catalog)
    _, out = run(trigger, journey=journey, catalog=catalog, key="c:c-father-1")
    (rec,) = of(out, "recommendation")
    assert rec["strategy"] == "downsell_after_browse"
    assert [(i["product_id"], i["score"]) for i in rec["items"]] == [
        ("stroller-city", 0.6023),
        ("stroller-breeze", 0.4886),
    ]
    assert rec["category"] == "baby/strollers"
    (disc,) = of(out, "discount_trigger")
    # the most recently viewed premium stroller, at the strollers' 5 %
    assert (disc["product_id"], disc["percent"], disc["price"]) == ("stroller-velvet", 5.0, 3690.0)
    assert disc["strategy"] == "discount_after_abandonment"
    assert disc["expires_at"] == format_time(stages_time(trigger) + 48 * 3600)
    assert disc["store"]["guide"]["name"] == "Lin Mei"
    assert disc["id"] != rec["id"]


def test_downsell_skips_the_out_of_stock_mid_stroller() -> None:
    catalog = demo_catalog(stroller_city=0)
    journey, trigger = father_browse(catalog)
    _, out = run(trigger, journey=journey, catalog=catalog, key="c:c-father-1")
    (rec,) = of(out, "recommendation")
    assert [i["product_id"] for i in rec["items"]] == ["stroller-breeze"]


def test_cart_abandonment_discount_and_7_day_cooldown() -> None:
    state, out = run(cart_record("a1", T0))
    (disc,) = out
    assert (disc["product_id"], disc["percent"], disc["title"]) == (
        "formula-s1",
        10.0,
        "Gentle Start Infant Formula, Stage 1, 800 g",
    )
    assert disc["store"] is None  # no store id known for this customer yet
    state, out = run(cart_record("a2", T0 + 3 * DAY), state=state)
    assert signals(out) == [("discount_after_abandonment", "discount_cooldown")]
    state, out = run(cart_record("a3", T0 + 7 * DAY + 1), state=state)
    assert [r["type"] for r in out] == ["discount_trigger"]


def test_browse_discount_then_cart_discount_share_the_cooldown() -> None:
    catalog = demo_catalog()
    journey, trigger = father_browse(catalog)
    state, out = run(trigger, journey=journey, catalog=catalog, key="c:c-father-1")
    assert len(of(out, "discount_trigger")) == 1
    cart = cart_record("c1", stages_time(trigger) + DAY, key="c:c-father-1")
    _, out = run(cart, state=state, key="c:c-father-1")
    assert signals(out) == [("discount_after_abandonment", "discount_cooldown")]


def test_the_engine_leaves_the_store_budget_to_its_owner() -> None:
    """With a budget of 1, every customer's decision is a trigger: the owner denies the rest."""
    rules = dataclasses.replace(
        RULES, discount=dataclasses.replace(RULES.discount, daily_budget_per_store=1)
    )
    day_start = (T0 // DAY) * DAY
    for n, key in enumerate(("c:one", "c:two", "c:three")):
        trigger = {**cart_record(f"b-{key}", day_start + 100 * n, key=key), "store_id": STORE}
        _, out = run(trigger, rules=rules, key=key)
        assert [r["type"] for r in out] == ["discount_trigger"]


def test_held_out_decisions_leave_caps_and_cooldowns_alone_and_reserve_nothing() -> None:
    from recommend.budget import REQUEST, reserve
    from recommend.experiments import assign_arms

    day_start = (T0 // DAY) * DAY
    held = {**cart_record("h1", day_start + 100), "store_id": STORE}
    state, out = run(held, arm="holdout")
    (disc,) = of(out, "discount_trigger")  # decided as for a treated customer ...
    assert disc["arm"] == "holdout"
    assert state.get("sent", []) == []  # ... but nothing logged against caps or cooldowns
    labelled = assign_arms(state, out, customer_key="c:c-mother-1", holdout=0.0)
    audit, signal = reserve(labelled, STORE, day_start + 100)  # and no budget reservation
    assert (audit["type"], audit["delivered"], audit["product_ids"]) == (
        "decision",
        False,
        ["formula-s1"],
    )
    assert audit["discount_percent"] == 10.0 and signal["name"] == "suppressed_by_holdout"
    VALIDATE["decision"](audit)
    # the same customer, treated next for a cart an hour later: no cooldown from the held one
    treated = {**cart_record("t1", day_start + 3700), "store_id": STORE}
    state, out = run(treated, state=state, arm="treatment")
    assert [r["type"] for r in out] == ["discount_trigger"]
    labelled = assign_arms(state, out, customer_key="c:c-mother-1", holdout=0.0)
    (request,) = reserve(labelled, STORE, day_start + 3700)  # a treated one is reserved
    assert (request["type"], request["message"]["kind"]) == ("internal", REQUEST)


def test_frequency_cap_fourth_message_in_a_day_is_suppressed() -> None:
    state: dict[str, Any] = {}
    kinds = []
    for n in range(5):
        t = T0 + n * 3 * 3600 if n < 4 else T0 + DAY + 1
        trigger = {
            "type": "journey_transition",
            "kind": "purchase",
            "id": f"p{n}",
            "occurred_at": format_time(t),
            "customer_id": "c-mother-1",
            "order_lines": [{"product_id": "formula-s1"}],
        }
        state, out = run(trigger, state=state)
        kinds.append(out[0]["type"] if out[0]["type"] != "signal" else out[0]["reason"])
    # messages at 0 h, 3 h, 6 h; the 4th at 9 h is capped; a day after the first one, room again
    assert kinds == ["recommendation"] * 3 + ["frequency_cap", "recommendation"]
    assert len(state["sent"]) == 4


def test_strategy_cooldown_for_downsell() -> None:
    catalog = demo_catalog()
    journey, first = father_browse(catalog, T0, sid="s-1")
    state, out = run(first, journey=journey, catalog=catalog, key="c:c-father-1")
    assert len(of(out, "recommendation")) == 1
    journey, second = father_browse(catalog, T0 + 2 * 3600, sid="s-2")
    _, out = run(second, state=state, journey=journey, catalog=catalog, key="c:c-father-1")
    assert signals(out) == [
        ("downsell_after_browse", "strategy_cooldown"),
        ("discount_after_abandonment", "discount_cooldown"),
    ]


def test_deterministic_ids_and_redelivery() -> None:
    journey, trigger = purchase([("formula-s1", 1)], T0)
    s1, out1 = run(trigger, journey=journey)
    _, out2 = run(trigger, journey=journey)
    assert out1 == out2
    # the same trigger again on the saved state: same record, not counted twice
    s1, again = run(trigger, state=s1, journey=journey)
    assert again == out1
    assert len(s1["sent"]) == 1


def test_seed_recommends_popular_in_the_seeded_category() -> None:
    catalog = demo_catalog()
    journey, _ = father_browse(catalog)
    cp = CoPurchase()
    cp.observe_order(["stroller-city"], T0 - DAY)
    cp.observe_order(["stroller-city"], T0 - DAY)
    cp.observe_order(["stroller-pocket"], T0 - DAY)
    trigger = {
        "type": "journey_transition",
        "kind": "stage",
        "to_stage": "seed",
        "id": "seed-1",
        "occurred_at": format_time(T0 + 120),
        "customer_id": "c-father-1",
    }
    _, out = run(trigger, journey=journey, catalog=catalog, copurchase=cp, key="c:c-father-1")
    (rec,) = out
    assert rec["strategy"] == "popular_in_category" and rec["category"] == "baby/strollers"
    # viewed strollers are left out; city 2 orders, pocket 1, breeze none
    assert [(i["product_id"], i["score"]) for i in rec["items"]] == [
        ("stroller-city", 1.0),
        ("stroller-pocket", 0.5),
        ("stroller-breeze", 0.0),
    ]
    assert rec["store"] is None


def test_replenishment_check() -> None:
    journey, trigger = purchase([("formula-s1", 1)], T0)
    state, _ = run(trigger, journey=journey)
    check = {
        "type": "replenishment_check",
        "id": "tick-1",
        "occurred_at": format_time(T0 + 16 * DAY),
    }
    _, out = run(check, state=state, journey=journey)
    (rec,) = out
    assert rec["strategy"] == "replenishment"
    assert [(i["product_id"], i["score"]) for i in rec["items"]] == [("formula-s1", 0.875)]
    assert rec["store"]["id"] == STORE  # remembered from the purchase trigger


def test_other_triggers_yield_nothing() -> None:
    cart = CartChange(
        event_id="c1", occurred_at=T0, customer_id="x", action="add", product_id="p", quantity=1
    )
    _, recs = stages.apply(None, cart, T0, customer_key="c:x")
    for rec in recs:  # first contact / add-to-cart stage records, segment records
        if rec.get("to_stage") == "seed" and rec["kind"] == "stage":
            continue
        assert run(rec, key="c:x")[1] == []
    assert (
        run({"type": "abandonment_recovered", "id": "r", "occurred_at": format_time(T0)})[1] == []
    )


def test_state_stays_bounded_and_json_friendly() -> None:
    import json

    rules = dataclasses.replace(
        RULES, frequency=dataclasses.replace(RULES.frequency, max_per_day=1000)
    )
    state: dict[str, Any] = {}
    for n in range(200):
        t = T0 + n * 600
        trigger = {
            "type": "journey_transition",
            "kind": "purchase",
            "id": f"p{n}",
            "occurred_at": format_time(t),
            "order_lines": [{"product_id": f"x{n}"}, {"product_id": "formula-s1"}],
        }
        state, _ = run(trigger, state=state, rules=rules)
    assert len(state["sent"]) == 50
    assert len(state["bought"]) == 50
    assert len(state["history"]) == 100
    assert state["history"]["formula-s1"][2] == 200  # the product of every order is kept
    assert json.loads(json.dumps(state)) == state


def _order(oid: str, t: float, *products: str) -> Out:
    return {
        "type": "journey_transition",
        "kind": "purchase",
        "id": oid,
        "occurred_at": format_time(t),
        "order_lines": [{"product_id": p} for p in products],
    }


def test_products_bought_again_are_replenishment_exempt_from_just_bought() -> None:
    state, out = run(_order("p1", T0, "x1", "formula-s1"))
    assert [i["product_id"] for i in out[0]["items"]] == ["diapers-s", "wipes-80"]
    state, out = run(_order("p2", T0 + 10 * DAY, "x1"), state=state)
    # x1: second order, 10 days after the first -> decayed orders 2 ** (-10 / 365) + 1
    s = 2 ** (-10 / 365) + 1
    (rec,) = out
    assert [(i["product_id"], i["score"]) for i in rec["items"]] == [
        ("x1", pytest.approx(1 + 0.9 * s / (1 + s), abs=1e-6))
    ]  # formula-s1 (once, 10 days ago) is still just bought
    assert rec["items"][0]["reason"] == "bought again: in 2 of your orders"
    assert rec["reason"].startswith("products bought before")
    assert state["history"]["x1"][2] == 2
    state, _ = run(_order("p3", T0 + 10 * DAY, "x1"), state=state)  # same visit: counted once
    assert state["history"]["x1"][2] == 2


def test_rule_complements_come_before_products_bought_again() -> None:
    state, _ = run(_order("p1", T0, "x1"))
    _, out = run(_order("p2", T0 + DAY, "x1", "formula-s1"), state=state)
    assert [i["product_id"] for i in out[0]["items"]] == ["diapers-s", "wipes-80", "x1"]


def test_a_product_bought_once_comes_back_after_the_just_bought_window() -> None:
    state, _ = run(_order("p1", T0, "x1"))
    _, out = run(_order("p2", T0 + 40 * DAY, "y1"), state=state)
    (rec,) = out
    # x1: once, 40 days ago (not just bought); y1: once, just now (not a repurchase)
    assert [(i["product_id"], i["reason"]) for i in rec["items"]] == [
        ("x1", "you bought it 40 days ago")
    ]
