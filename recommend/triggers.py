"""Goods find people: turn the journey and abandonment cores' outputs into recommendations.

Pure: `react` looks at one customer's fresh outputs (a purchase, a seed transition, a cart or
browse abandonment, a never-purchased visitor's Nth visit) and the deadlines that fired
(replenishment reminders, a buyer's lapse: `recommend.reengage`), asks the engine for a
decision on each, and keeps the per-customer guardrail memory in `CustomerState.recommend`.
Placed orders also feed co-purchase counts, with the products the customer had ordered before
counted as repurchases: this worker's counts at once, every worker's through the
`copurchase_order` record (`recommend.copurchase`: each order counted once by its key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from journey.customer import CustomerState
from journey.stages import format_time
from recommend import reengage, reminders
from recommend.budget import reserve
from recommend.catalog import Catalog
from recommend.copurchase import CoPurchase, order_key
from recommend.engine import decide, repurchased
from recommend.experiments import arm_picker, assign_arms, attribute
from recommend.rules import Rules
from schemas.records import Order


@dataclass
class Recommender:
    """What the strategies read besides the customer: catalog, co-purchases, rules, holdout."""

    rules: Rules
    catalog: Catalog = field(default_factory=Catalog)
    copurchase: CoPurchase = field(default_factory=CoPurchase)
    holdout: float = 0.10  # share of customers held out of every strategy
    # strategy -> variant -> (customers decided, converted): what a bandit strategy draws from
    variant_counts: Callable[[str], Mapping[str, tuple[int, int]]] | None = None


def is_trigger(record: dict[str, Any]) -> bool:
    """A purchase, a seed transition, or an abandonment."""
    kind = record.get("type")
    if kind == "journey_transition":
        return record.get("kind") == "purchase" or (
            record.get("kind") == "stage" and record.get("to_stage") == "seed"
        )
    return kind in ("cart_abandoned", "browse_abandoned")


def react(
    state: CustomerState,
    outputs: list[dict[str, Any]],
    recommender: Recommender,
    now: float,
    *,
    key: str,
    event: Any = None,
) -> list[dict[str, Any]]:
    """Attribution of an order, then arm-labelled decisions for the triggers among `outputs`.

    Without an event (a deadline fired), the customer's replenishment reminders and lapse
    (win-back) due at `now` are triggers too; with one, the start of a never-purchased visitor's
    Nth visit (recall). The next deadline's time is kept in the state for the deadline index
    (`recommend.reengage.keep_due`).
    """
    decisions: list[dict[str, Any]] = []
    if isinstance(event, Order) and event.action == "placed":
        products = [ln.product_id for ln in event.lines]
        repeats = repurchased(state.recommend, products, event.occurred_at)
        recommender.copurchase.observe_once(
            order_key(key, event.order_id), products, event.occurred_at, repeats=repeats
        )
        decisions.append(copurchase_order(key, event, products, repeats))
        # attribute before deciding: an order never converts the recommendation it triggers
        converted = attribute(
            state.recommend,
            customer_key=key,
            order_id=event.order_id,
            order_value=event.total,
            ordered_at=event.occurred_at,
        )
        if converted is not None:
            decisions.append(converted)
    if not isinstance(state.recommend, dict):
        state.recommend = {}
    rules = recommender.rules
    arm_of = arm_picker(
        key,
        recommender.holdout,
        rules.experiments,
        trials=state.recommend.get("trials"),
        counts=recommender.variant_counts,
    )
    triggers = [_prepared(record, event) for record in outputs if is_trigger(record)]
    reminding = event is None
    if reminding:  # a deadline fired: the reminders and the lapse due now
        triggers += reminders.due_checks(state.recommend, rules, now, customer_key=key)
        triggers += reengage.lapse_checks(
            state.recommend, state.journey, rules, now, customer_key=key
        )
    elif state.journey is not None:  # the Nth visit of a visitor who never bought
        t = float(getattr(event, "occurred_at", now))
        recall = reengage.recall_checks(
            state.recommend, state.journey, outputs, rules, t, customer_key=key
        )
        triggers += [_prepared(record, event) for record in recall]
    for trigger in triggers:
        state.recommend, out = decide(
            state.recommend,
            trigger,
            state.journey,
            recommender.catalog,
            recommender.copurchase,
            recommender.rules,
            now,
            customer_key=key,
            arm_of=arm_of,
        )
        labelled = assign_arms(
            state.recommend,
            out,
            customer_key=key,
            holdout=recommender.holdout,
            experiments=recommender.rules.experiments,
        )
        # treated discount triggers are sent by the store-day's budget owner, if it grants them
        decisions.extend(reserve(labelled, state.recommend.get("store_id"), now))
    # after every event or deadline: the lapse moves with the customer's activity
    reengage.keep_due(
        state.recommend, state.journey, rules, reminders_changed=bool(triggers) or reminding
    )
    return decisions


def copurchase_order(
    key: str, order: Order, products: list[str], repeats: list[str]
) -> dict[str, Any]:
    """The `copurchase_order` record of a placed order: what every worker counts it from."""
    distinct = list(dict.fromkeys(p for p in products if p))
    return {
        "type": "copurchase_order",
        "version": "1-0-0",
        "customer_key": key,
        "customer_id": key[2:] if key.startswith("c:") else None,
        "order_id": order.order_id,
        "occurred_at": format_time(order.occurred_at),
        "products": distinct,
        "repeats": [p for p in dict.fromkeys(repeats) if p in distinct],
    }


def _prepared(record: dict[str, Any], event: Any) -> dict[str, Any]:
    """A trigger record with the event's store and, for its own order, the order's lines."""
    store_id = getattr(event, "store_id", None)
    if not store_id and not (record.get("kind") == "purchase" and isinstance(event, Order)):
        return record
    trigger = {**record}
    if store_id:
        trigger["store_id"] = store_id
    if isinstance(event, Order) and record.get("order_id") == event.order_id:
        trigger["order_lines"] = [
            {"product_id": ln.product_id, "category": ln.category} for ln in event.lines
        ]
    return trigger
