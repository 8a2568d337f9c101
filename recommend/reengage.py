"""Re-engagement triggers: recall of never-purchased returning visitors, win-back of lapsed buyers.

Pure. Two strategies, each with its own holdout (`recommend.experiments`), through the same
guardrails as the others (`recommend.engine`):

* `recall_returning` ("recall of non-purchased assets"): a visitor who never bought starts
  their `recall.visits`-th visit (rules file; a `return_visit` signal of the journey core with
  `never_purchased`, and `journey.sessions >= visits`, so a visit count that jumped past it, e.g.
  by a One ID merge, fires on the next return). Once per customer. Trigger: a `recall_check`
  record, id sha1 of `customer_key|recall_check|<visit number>`, at the event's time.
* `win_back`: a customer who bought (stage purchase or repurchase) has had no activity for
  `win_back.after_days` (the journey's lapse rule, `segment_at`: last activity, not last order,
  so keep it equal to the journey's `lapsed_after_s`). A deadline at `last_seen + after_days`,
  in event time; it is checked again when it fires (any event since, an order included, moved
  it: nothing then) and fires once per lapse: the next lapse needs new activity first.
  Trigger: a `lapse_check` record, id sha1 of `customer_key|lapse_check|<last_seen>`, at the
  lapse time.

Per-customer memory in the `rec_state` slot, beside the reminders':

    "recalled": int,          # the visit number the recall fired on (never fires again)
    "won_back": float,        # the last activity whose lapse fired the win-back
    "reminder_due": float,    # the next replenishment reminder (recommend.reminders)
    "lapse_due": float,       # the next lapse (win-back) deadline
    "due": float,             # the earliest of the two: what journey.customer.next_due reads

A key is absent when it has no value. A state written before the lapse deadline has only
`due` (then a reminder's); `keep_due` recomputes the reminder for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from journey.stages import BUYER_STAGES, CustomerJourney, format_time
from recommend import reminders
from recommend.rules import Rules

RECALL_CHECK = "recall_check"
LAPSE_CHECK = "lapse_check"


def _ident(customer_key: str, kind: str, value: Any) -> str:
    text = f"{customer_key}|{kind}|{value!r}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]


def is_buyer(journey: CustomerJourney | None) -> bool:
    """Whether the journey's customer bought (the journey's buyer stages, or a placed order)."""
    return journey is not None and (journey.stage in BUYER_STAGES or journey.orders_placed > 0)


def recall_checks(
    rec_state: dict[str, Any],
    journey: CustomerJourney | None,
    outputs: Iterable[Mapping[str, Any]],
    rules: Rules,
    t: float,
    *,
    customer_key: str,
) -> list[dict[str, Any]]:
    """The recall trigger of an event at `t` that starts a never-purchased visitor's Nth visit."""
    n = rules.recall.visits
    if n < 2 or journey is None or is_buyer(journey) or "recalled" in rec_state:
        return []
    returned = any(
        o.get("type") == "signal" and o.get("name") == "return_visit" and o.get("never_purchased")
        for o in outputs
    )
    if not returned or journey.sessions < n:
        return []
    rec_state["recalled"] = journey.sessions
    return [
        {
            "type": RECALL_CHECK,
            "id": _ident(customer_key, RECALL_CHECK, journey.sessions),
            "occurred_at": format_time(t),
            "visit": journey.sessions,
        }
    ]


def lapse_due(
    rec_state: Mapping[str, Any], journey: CustomerJourney | None, rules: Rules
) -> float | None:
    """When the buyer lapses (win-back), or None: not a buyer, off, or fired for this lapse."""
    after = rules.win_back.after_s
    if after is None or journey is None or not is_buyer(journey):
        return None
    if rec_state.get("won_back") == journey.last_seen:
        return None
    return journey.last_seen + after


def lapse_checks(
    rec_state: dict[str, Any],
    journey: CustomerJourney | None,
    rules: Rules,
    now: float,
    *,
    customer_key: str,
) -> list[dict[str, Any]]:
    """The win-back trigger when the buyer's lapse is due at `now` (marked fired), else []."""
    due = lapse_due(rec_state, journey, rules)
    if due is None or due > now:
        return []
    assert journey is not None
    rec_state["won_back"] = journey.last_seen
    return [
        {
            "type": LAPSE_CHECK,
            "id": _ident(customer_key, LAPSE_CHECK, journey.last_seen),
            "occurred_at": format_time(due),
        }
    ]


def keep_due(
    rec_state: dict[str, Any],
    journey: CustomerJourney | None,
    rules: Rules,
    *,
    reminders_changed: bool,
) -> None:
    """Store the next reminder, the next lapse and the earliest of them (`due`).

    The reminder is recomputed only when `reminders_changed` (a trigger was decided or
    deadlines fired: only then can it move) or for a state written before the lapse deadline.
    """
    legacy = "due" in rec_state and "reminder_due" not in rec_state and "lapse_due" not in rec_state
    if reminders_changed or legacy:
        reminder = reminders.next_reminder(rec_state, rules)
    else:
        reminder = rec_state.get("reminder_due")
    lapse = lapse_due(rec_state, journey, rules)
    dues = [d for d in (reminder, lapse) if d is not None]
    for key, value in (
        ("reminder_due", reminder),
        ("lapse_due", lapse),
        ("due", min(dues) if dues else None),
    ):
        if value is None:
            rec_state.pop(key, None)
        else:
            rec_state[key] = value
