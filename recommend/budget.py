"""The daily discount budget per store: reserved at one owner per store-day, then sent (pure).

A customer's batch does not send a treated discount trigger itself: `reserve` turns it and its
`decision` record into a `Reservation`, an internal output keyed by the store-day
(`budget_key`: the store id and the UTC day of the decision's `now`). The stream layer routes
it to the partition that owns that key, whose worker is the budget's only writer, and applies
it there with `grant` to the store-day's row (`{"v", "store_id", "day", "granted": [ids]}`,
at most the cap's ids):

* an id already granted is granted again, identically (a re-delivery is not a new spend);
* below the cap the id is added and the decision and the trigger are published;
* at the cap only the decision is published, `delivered: false` with `held_out_reason`
  `discount_budget` (decision 1-0-1), and a `recommendation_suppressed` signal counts it.

Held-out decisions never become reservations: they spend nothing (`recommend.experiments`).
The customer's own guardrails (frequency cap, discount cooldown) are taken when the customer
decides, before the store answers: a denied trigger still uses the customer's discount
cooldown and counts against the frequency cap (documented in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recommend.experiments import DECISION, HOLDOUT
from recommend.guardrails import DISCOUNT_BUDGET

DAY = 86400.0
REQUEST = "discount_budget"  # the internal message's kind
DISCOUNT_TRIGGER = "discount_trigger"
DENIED_VERSION = "1-0-1"  # decision version whose held_out_reason has discount_budget
ROW_FORMAT = 1
# budget rows live in the customer table under its reserved prefix (streams.tables.state
# RESERVED), which every reader of customer states skips
KEY_PREFIX = "__faust\x00budget\x00"


def budget_day(now: float) -> int:
    """The UTC day number of a time (epoch seconds)."""
    return int(now // DAY)


def budget_key(store_id: str | None, day: int) -> str:
    """The key of a store-day's budget row (and of its reservation requests)."""
    return f"{KEY_PREFIX}{day}|{store_id or ''}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A request to spend one of a store-day's discount triggers on a decided trigger."""

    store_id: str | None
    day: int
    trigger: Mapping[str, Any]  # the discount_trigger record, arm set
    decision: Mapping[str, Any]  # its decision record (delivered: true)

    @property
    def key(self) -> str:
        """The store-day's budget key."""
        return budget_key(self.store_id, self.day)

    def to_output(self) -> dict[str, Any]:
        """The internal output that carries the request to the budget's owner."""
        message = {
            "kind": REQUEST,
            "store_id": self.store_id,
            "day": self.day,
            "trigger": dict(self.trigger),
            "decision": dict(self.decision),
        }
        return {"type": "internal", "key": self.key, "message": message}

    @classmethod
    def from_message(cls, obj: Mapping[str, Any]) -> Reservation | None:
        """The reservation in a decoded internal message, or None when it is not well formed."""
        store_id, day = obj.get("store_id"), obj.get("day")
        trigger, decision = obj.get("trigger"), obj.get("decision")
        if not (isinstance(trigger, dict) and isinstance(decision, dict)):
            return None
        if not isinstance(day, int) or not (store_id is None or isinstance(store_id, str)):
            return None
        if trigger.get("type") != DISCOUNT_TRIGGER or not isinstance(trigger.get("id"), str):
            return None
        if decision.get("type") != DECISION or decision.get("id") != trigger["id"]:
            return None
        return cls(store_id, day, trigger, decision)


def reserve(
    outputs: list[dict[str, Any]], store_id: str | None, now: float
) -> list[dict[str, Any]]:
    """The outputs with each treated discount trigger and its decision made one reservation."""
    treated = {
        o["id"]: o for o in outputs if o.get("type") == DISCOUNT_TRIGGER and o.get("arm") != HOLDOUT
    }
    if not treated:
        return outputs
    result: list[dict[str, Any]] = []
    for o in outputs:
        kind, rid = o.get("type"), o.get("id")
        if kind == DECISION and rid in treated and o.get("delivered"):
            result.append(Reservation(store_id, budget_day(now), treated[rid], o).to_output())
        elif not (kind == DISCOUNT_TRIGGER and rid in treated):
            result.append(o)
    return result


def grant(
    row: Mapping[str, Any] | None, request: Reservation, cap: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The store-day's new row and what to publish for one reservation (the grant rule)."""
    granted = list((row or {}).get("granted") or ())
    new = {"v": ROW_FORMAT, "store_id": request.store_id, "day": request.day, "granted": granted}
    rid = request.trigger["id"]
    if request.trigger.get("arm") == HOLDOUT:  # never reserved; spends nothing if it comes
        return new, [{**request.decision, "delivered": False, "held_out_reason": HOLDOUT}]
    if rid in granted or len(granted) < cap:
        if rid not in granted:
            granted.append(rid)
        return new, [dict(request.decision), dict(request.trigger)]
    denied = {
        **request.decision,
        "version": DENIED_VERSION,
        "delivered": False,
        "held_out_reason": DISCOUNT_BUDGET,
    }
    signal = {
        "type": "signal",
        "name": "recommendation_suppressed",
        "strategy": request.trigger.get("strategy"),
        "reason": DISCOUNT_BUDGET,
    }
    return new, [denied, signal]
