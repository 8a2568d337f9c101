"""Re-engagement: recall of never-purchased returning visitors, win-back of lapsed buyers.

Through the pure cores as the agent drives them: `journey.customer.apply` then `react` per
event, `journey.customer.fire` then `react` per deadline, `next_due` for the deadline index.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import fastjsonschema
import pytest

from journey import customer as core
from journey.customer import CustomerState
from recommend.budget import Reservation, grant
from recommend.experiments import ExperimentConfig
from recommend.rules import RECALL, WIN_BACK, Recall, RulesError, WinBack, load_rules, parse_rules
from recommend.triggers import Recommender, react
from schemas.contracts import validator_for
from schemas.records import CartChange, Order, PageView
from tests.unit.scenario_catalog import PRODUCTS, order_lines, scenario_catalog

DAY = 86400.0
T0 = 1_793_610_000.0  # 2026-11-02T09:00:00Z
VISITOR = "c:c-visitor-1"
BUYER = "c:c-buyer-1"
Out = dict[str, Any]


def recommender(holdout: float = 0.0, **changes: Any) -> Recommender:
    """The default rules (recall on visit 3, win-back after 90 days), `changes` replaced."""
    rules = replace(load_rules(), **changes)
    return Recommender(rules=rules, catalog=scenario_catalog(T0), holdout=holdout)


class Customer:
    """One customer's state driven through the cores; optionally restarted between steps."""

    def __init__(self, key: str, rec: Recommender, *, restart: bool = False) -> None:
        self.key = key
        self.rec = rec
        self.restart = restart
        self.state: CustomerState | None = None
        self.n = 0

    def _reload(self) -> None:
        if self.restart and self.state is not None:
            self.state = CustomerState.from_dict(self.state.to_dict())

    def event(self, event: Any) -> list[Out]:
        self._reload()
        self.state, outputs = core.apply(self.state, event, event.occurred_at, key=self.key)
        return outputs + react(
            self.state, outputs, self.rec, event.occurred_at, key=self.key, event=event
        )

    def view(self, t: float, pid: str, action: str = "view") -> list[Out]:
        self.n += 1
        p = PRODUCTS[pid]
        return self.event(
            PageView(
                event_id=f"{self.key}-v{self.n}",
                occurred_at=t,
                customer_id=self.key[2:],
                store_id="baby-home-2",
                product_id=pid,
                category=p.category,
                price=p.price,
                action=action,  # type: ignore[arg-type]
            )
        )

    def cart(self, t: float, pid: str) -> list[Out]:
        self.n += 1
        p = PRODUCTS[pid]
        return self.event(
            CartChange(
                event_id=f"{self.key}-c{self.n}",
                occurred_at=t,
                customer_id=self.key[2:],
                action="add",
                product_id=pid,
                quantity=1,
                price=p.price,
                category=p.category,
            )
        )

    def order(self, t: float, *pids: str) -> list[Out]:
        self.n += 1
        lines = order_lines(*pids)
        return self.event(
            Order(
                event_id=f"{self.key}-o{self.n}",
                occurred_at=t,
                customer_id=self.key[2:],
                store_id="baby-home-2",
                action="placed",
                order_id=f"o-{self.n}",
                lines=lines,
                total=sum(line.unit_price for line in lines),
            )
        )

    def fire(self, at: float) -> list[Out]:
        self._reload()
        assert self.state is not None
        self.state, outputs = core.fire(self.state, at, key=self.key)
        return outputs + react(self.state, outputs, self.rec, at, key=self.key)

    def next_due(self) -> float | None:
        self._reload()
        return core.next_due(self.state)


def of(outputs: list[Out], strategy: str, rtype: str = "recommendation") -> list[Out]:
    return [o for o in outputs if o["type"] == rtype and o.get("strategy") == strategy]


def granted(outputs: list[Out]) -> list[Out]:
    """The outputs with each discount reservation granted by a fresh store-day budget."""
    out: list[Out] = []
    for o in outputs:
        request = Reservation.from_message(o["message"]) if o["type"] == "internal" else None
        out.extend(grant(None, request, 1)[1] if request is not None else [o])
    return out


def items(record: Out) -> list[str]:
    return [i["product_id"] for i in record["items"]]


# ---------------------------------------------------------------------------------------------
# recall_returning


def three_visits(c: Customer) -> list[list[Out]]:
    """Visit 1: views, a favourite, a cart line; visit 2 a day later; visit 3 the day after."""
    first = (
        c.view(T0, "stroller-city")
        + c.view(T0 + 60, "bottle-set")
        + c.view(T0 + 120, "kettle-glass", "favourite")
        + c.cart(T0 + 180, "towels-bath")
    )
    second = c.view(T0 + DAY, "knife-set")
    third = c.view(T0 + 2 * DAY, "storage-boxes")
    return [first, second, third]


@pytest.mark.parametrize("restart", [False, True])
def test_the_third_visit_of_a_visitor_who_never_bought_recalls_what_they_left(
    restart: bool,
) -> None:
    c = Customer(VISITOR, recommender(), restart=restart)
    first, second, third = three_visits(c)
    assert of(first, RECALL) == [] and of(second, RECALL) == []
    (recall,) = of(third, RECALL)
    # cart first, then favourites, then views (latest first); not what this visit viewed
    assert items(recall) == [
        "towels-bath",
        "kettle-glass",
        "knife-set",
        "bottle-set",
        "stroller-city",
    ]
    assert [i["score"] for i in recall["items"]] == [1.0, 0.5, 0.3333, 0.25, 0.2]
    assert [i["reason"] for i in recall["items"][:3]] == [
        "left in your cart",
        "in your favourites",
        "viewed on an earlier visit",
    ]
    assert recall["version"] == "1-0-1"
    assert recall["trigger_type"] == "recall_check"
    assert recall["occurred_at"] == "2026-11-04T09:00:00.000Z"
    assert recall["reason"] == "visit 3 without a purchase: products of earlier visits"
    assert recall["store"]["id"] == "baby-home-2"  # the event's store
    assert recall["arm"] == "treatment"
    validator_for("recommendation", "1-0-1")(recall)
    (decision,) = [o for o in of(third, RECALL, "decision")]
    assert decision["delivered"] is True and decision["id"] == recall["id"]
    assert decision["product_ids"] == items(recall)
    validator_for("decision", "1-0-0")(decision)
    # once per customer: the fourth and fifth visits recall nothing
    assert of(c.view(T0 + 3 * DAY, "wipes-80"), RECALL) == []
    assert of(c.view(T0 + 4 * DAY, "wipes-80"), RECALL) == []


def test_the_recall_is_the_same_with_or_without_restarts() -> None:
    plain, restarted = (
        Customer(VISITOR, recommender()),
        Customer(VISITOR, recommender(), restart=True),
    )
    assert three_visits(plain) == three_visits(restarted)
    assert plain.state is not None and restarted.state is not None
    assert plain.state.to_dict() == restarted.state.to_dict()
    assert plain.state.recommend["recalled"] == 3


def test_a_buyer_never_gets_the_recall() -> None:
    c = Customer(VISITOR, recommender())
    outs = c.view(T0, "stroller-city") + c.order(T0 + 60, "bottle-set")
    outs += c.view(T0 + DAY, "knife-set") + c.view(T0 + 2 * DAY, "storage-boxes")
    outs += c.view(T0 + 3 * DAY, "storage-boxes")
    assert c.state is not None and c.state.journey is not None and c.state.journey.sessions == 4
    assert of(outs, RECALL) == [] and of(outs, RECALL, "decision") == []


def test_the_visit_number_comes_from_the_rules_and_zero_turns_it_off() -> None:
    c = Customer(VISITOR, recommender(recall=Recall(visits=2)))
    c.view(T0, "stroller-city")
    (recall,) = of(c.view(T0 + DAY, "knife-set"), RECALL)
    assert items(recall) == ["stroller-city"]
    off = Customer(VISITOR, recommender(recall=Recall(visits=0)))
    assert all(of(outs, RECALL) == [] for outs in three_visits(off))


def test_a_held_out_recall_is_a_decision_not_delivered_and_spends_no_cap() -> None:
    # the recall's own experiment holds everyone out; the other strategies are not held out
    rec = recommender(experiments={RECALL: ExperimentConfig(holdout=1.0)})
    c = Customer(VISITOR, rec)
    *_, third = three_visits(c)
    assert of(third, RECALL) == []
    (decision,) = of(third, RECALL, "decision")
    assert decision["delivered"] is False
    assert decision["held_out_reason"] == "holdout" and decision["arm"] == "holdout"
    assert decision["product_ids"][:2] == ["towels-bath", "kettle-glass"]
    assert {"type": "signal", "name": "suppressed_by_holdout", "strategy": RECALL} in third
    assert c.state is not None
    assert [e[1] for e in c.state.recommend["sent"] if e[1] == RECALL] == []  # no cap spent
    assert c.state.recommend["recalled"] == 3  # and it is not tried again


def test_recall_as_a_discount_offers_the_top_product() -> None:
    c = Customer(VISITOR, recommender(recall=Recall(visits=2, offer="discount")))
    c.view(T0, "stroller-city")
    c.view(T0 + 60, "kettle-glass", "favourite")
    (discount,) = of(granted(c.view(T0 + DAY, "knife-set")), RECALL, "discount_trigger")
    assert discount["product_id"] == "kettle-glass"  # favourites before views
    assert discount["percent"] == 10.0  # [discount] default_percent
    assert discount["version"] == "1-0-1"
    assert discount["expires_at"] == "2026-11-05T09:00:00.000Z"  # 48 h
    validator_for("discount_trigger", "1-0-1")(discount)
    with pytest.raises(fastjsonschema.JsonSchemaValueException, match="must be one of"):
        validator_for("discount_trigger", "1-0-0")({**discount, "version": "1-0-0"})


# ---------------------------------------------------------------------------------------------
# win_back


@pytest.mark.parametrize("restart", [False, True])
def test_the_lapse_is_a_deadline_that_fires_once(restart: bool) -> None:
    c = Customer(BUYER, recommender(), restart=restart)
    c.order(T0, "kettle-glass")  # home/kitchen: no replenishment reminder
    assert c.next_due() == T0 + 90 * DAY
    assert of(c.fire(T0 + 89 * DAY), WIN_BACK) == []  # not due yet
    assert c.next_due() == T0 + 90 * DAY
    out = c.fire(T0 + 90 * DAY)
    (win,) = of(out, WIN_BACK)
    # the customer's own product, then the most popular of their favourite category
    assert items(win) == ["kettle-glass", "knife-set"]
    assert win["store"]["id"] == "baby-home-2"  # the store of the last order
    assert win["occurred_at"] == "2027-01-31T09:00:00.000Z"
    assert win["trigger_type"] == "lapse_check"
    assert win["reason"] == "no visit for 90 days: products bought before, and popular ones"
    assert win["version"] == "1-0-1"
    validator_for("recommendation", "1-0-1")(win)
    with pytest.raises(fastjsonschema.JsonSchemaValueException, match="must be one of"):
        validator_for("recommendation", "1-0-0")({**win, "version": "1-0-0"})  # enum
    assert [d["delivered"] for d in of(out, WIN_BACK, "decision")] == [True]
    assert c.next_due() is None  # once per lapse
    assert of(c.fire(T0 + 91 * DAY), WIN_BACK) == []


def test_an_order_before_the_lapse_moves_it_and_a_new_order_re_arms_it() -> None:
    c = Customer(BUYER, recommender())
    c.order(T0, "kettle-glass")
    c.order(T0 + 60 * DAY, "knife-set")
    assert c.next_due() == T0 + 150 * DAY
    assert of(c.fire(T0 + 90 * DAY), WIN_BACK) == []  # bought since: nothing
    (first,) = of(c.fire(T0 + 150 * DAY), WIN_BACK)
    assert c.next_due() is None
    c.order(T0 + 200 * DAY, "towels-bath")  # back: a new lapse can come
    assert c.next_due() == T0 + 290 * DAY
    (second,) = of(c.fire(T0 + 290 * DAY), WIN_BACK)
    assert second["id"] != first["id"]
    assert second["occurred_at"] == "2027-08-19T09:00:00.000Z"  # 290 days after T0


def test_any_activity_moves_the_lapse_as_the_journeys_segment_rule() -> None:
    # lapsed = no activity for lapsed_after_s (journey.stages.segment_at), not only no order
    c = Customer(BUYER, recommender())
    c.order(T0, "kettle-glass")
    c.view(T0 + 80 * DAY, "knife-set")
    assert c.next_due() == T0 + 170 * DAY
    assert of(c.fire(T0 + 90 * DAY), WIN_BACK) == []


def test_a_visitor_who_never_bought_has_no_lapse_and_off_means_off() -> None:
    c = Customer(VISITOR, recommender())
    c.view(T0, "stroller-city")
    assert c.next_due() is None
    assert c.state is not None and c.state.recommend == {}  # nothing stored for a visitor
    off = Customer(BUYER, recommender(win_back=WinBack(after_days=0)))
    off.order(T0, "kettle-glass")
    assert off.next_due() is None


def test_the_reminder_and_the_lapse_share_next_due_earliest_first() -> None:
    c = Customer(BUYER, recommender())
    c.order(T0, "formula-s1")  # reminder after 14 days (rules.toml), lapse after 90
    dues = []
    while (due := c.next_due()) is not None:
        assert len(dues) < 5, "the flush loop must end"
        dues.append(due)
        c.fire(due)
    assert [(d - T0) / DAY for d in dues] == [14.0, 90.0]


def test_a_state_from_before_the_lapse_deadline_keeps_its_reminder() -> None:
    c = Customer(BUYER, recommender())
    c.order(T0, "formula-s1")
    assert c.state is not None
    old = c.state.to_dict()
    old["recommend"] = {
        k: v for k, v in old["recommend"].items() if k not in ("reminder_due", "lapse_due")
    }
    old["recommend"]["due"] = T0 + 14 * DAY  # the layout before: `due` was the reminder's
    c.state = CustomerState.from_dict(old)
    assert c.next_due() == T0 + 14 * DAY
    c.view(T0 + DAY, "wipes-80")
    assert c.state.recommend["reminder_due"] == T0 + 14 * DAY
    assert c.state.recommend["lapse_due"] == T0 + 91 * DAY
    assert c.next_due() == T0 + 14 * DAY


def test_a_held_out_win_back_is_a_decision_not_delivered() -> None:
    c = Customer(BUYER, recommender(experiments={WIN_BACK: ExperimentConfig(holdout=1.0)}))
    c.order(T0, "kettle-glass")
    out = c.fire(T0 + 90 * DAY)
    assert of(out, WIN_BACK) == []
    (decision,) = of(out, WIN_BACK, "decision")
    assert (decision["delivered"], decision["arm"]) == (False, "holdout")
    assert decision["product_ids"] == ["kettle-glass", "knife-set"]
    assert c.next_due() is None  # held out is still fired once


def test_win_back_as_a_discount() -> None:
    c = Customer(BUYER, recommender(win_back=WinBack(after_days=60, offer="discount")))
    c.order(T0, "kettle-glass")
    assert c.next_due() == T0 + 60 * DAY
    (discount,) = of(granted(c.fire(T0 + 60 * DAY)), WIN_BACK, "discount_trigger")
    assert (discount["product_id"], discount["percent"]) == ("kettle-glass", 10.0)
    validator_for("discount_trigger", "1-0-1")(discount)


# ---------------------------------------------------------------------------------------------
# rules file


def test_the_rules_file_configures_both_and_their_experiments() -> None:
    rules = load_rules()
    assert (rules.recall.visits, rules.recall.offer) == (3, "recommendation")
    assert (rules.win_back.after_days, rules.win_back.offer) == (90.0, "recommendation")
    text = (
        '[recall]\nvisits = 4\noffer = "discount"\n[win_back]\nafter_days = 30\n'
        "[experiment.win_back]\nholdout = 0.5\n[frequency.strategy_cooldown_hours]\n"
        "recall_returning = 0\n"
    )
    rules = parse_rules(text)
    assert rules.recall == Recall(visits=4, offer="discount")
    assert rules.win_back.after_s == 30 * DAY
    assert rules.experiments[WIN_BACK].holdout == 0.5
    assert rules.frequency.cooldown_s(RECALL) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[recall]\nvisits = 1\n", "line 2: recall.visits: must be 0 (off) or >= 2"),
        ('[recall]\noffer = "sms"\n', "recall.offer: must be one of 'recommendation', 'discount'"),
        ("[win_back]\nafter_days = -1\n", "win_back.after_days: must be a number in [0, inf)"),
        ("[win_back]\ndays = 9\n", "win_back.days: unknown key"),
    ],
)
def test_bad_reengagement_rules_are_named(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=re.escape(message)):
        parse_rules(text, "r.toml")
