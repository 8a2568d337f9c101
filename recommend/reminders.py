"""Replenishment reminders: a deadline per consumable bought, fired once per purchase (pure).

Per-customer memory in the `rec_state` slot (beside the guardrails' `bought`):

    "gaps": {product_id: [mean reorder gap in s, gaps counted]},  # the customer's own reorders
    "reminded": {product_id: bought_at},  # the purchase whose reminder has fired
    "reminder_due": float,                # the next reminder (absent: none); `due`, the earliest
                                          # of it and the win-back's lapse, is what
                                          # journey.customer.next_due reads (recommend.reengage)

A product's interval is its category's in the rules file, else the customer's own mean reorder
gap. Its reminder is due at `bought_at + interval`, once for that purchase: buying the product
again moves it. At fire time the replenishment strategy checks again (bought since, in stock,
caps and cooldowns) and may suppress it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from journey.stages import format_time
from recommend.rules import Rules

DAY = 86400.0
MIN_GAP_S = DAY  # orders of a product less than a day apart are one purchase, not a reorder
CHECK = "replenishment_check"


def observe_reorders(
    rec_state: dict[str, Any], lines: Iterable[Mapping[str, Any]], t: float
) -> None:
    """Learn reorder gaps from an order's lines (call before the guardrails remember them)."""
    bought = rec_state.get("bought", {})
    gaps: dict[str, list[float]] = rec_state.setdefault("gaps", {})
    for line in lines:
        pid = str(line.get("product_id") or "")
        previous = bought.get(pid)
        if not pid or previous is None or t - previous[0] < MIN_GAP_S:
            continue
        mean, count = gaps.get(pid, [0.0, 0.0])
        gaps[pid] = [round((mean * count + (t - previous[0])) / (count + 1), 3), count + 1]
    for pid in [p for p in gaps if p not in bought]:  # bounded as `bought` is
        del gaps[pid]


def learned_intervals(rec_state: Mapping[str, Any]) -> dict[str, float]:
    """Products with a learned reorder interval (the customer's mean gap)."""
    return {pid: float(entry[0]) for pid, entry in (rec_state.get("gaps") or {}).items()}


def interval_of(
    rec_state: Mapping[str, Any], rules: Rules, pid: str, category: Any
) -> float | None:
    """The category's interval in the rules file, else the customer's own reorder gap."""
    interval = rules.replenish_interval_s(category if isinstance(category, str) else None)
    if interval is None:
        entry = (rec_state.get("gaps") or {}).get(pid)
        interval = float(entry[0]) if entry else None
    return interval


def pending(rec_state: Mapping[str, Any], rules: Rules) -> list[tuple[float, str, float]]:
    """(due, product, bought_at) of every reminder not fired yet, earliest first."""
    reminded = rec_state.get("reminded") or {}
    out = []
    for pid, (bought_at, category) in (rec_state.get("bought") or {}).items():
        if reminded.get(pid) == bought_at:
            continue
        interval = interval_of(rec_state, rules, pid, category)
        if interval is not None and interval > 0:
            out.append((bought_at + interval, pid, bought_at))
    out.sort()
    return out


def next_reminder(rec_state: Mapping[str, Any], rules: Rules) -> float | None:
    """When the customer's next reminder is due, or None."""
    due = pending(rec_state, rules)
    return due[0][0] if due else None


def due_checks(
    rec_state: dict[str, Any], rules: Rules, now: float, *, customer_key: str
) -> list[dict[str, Any]]:
    """The replenishment checks due at `now`, each marked fired (one per due time)."""
    reminded: dict[str, float] = rec_state.setdefault("reminded", {})
    checks: dict[float, dict[str, Any]] = {}
    for due, pid, bought_at in pending(rec_state, rules):
        if due > now:
            break
        reminded[pid] = bought_at
        if due not in checks:
            text = f"{customer_key}|{CHECK}|{pid}|{bought_at!r}"
            ident = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]
            checks[due] = {"type": CHECK, "id": ident, "occurred_at": format_time(due)}
    for pid in [p for p in reminded if p not in (rec_state.get("bought") or {})]:
        del reminded[pid]
    return list(checks.values())
