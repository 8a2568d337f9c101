"""Test and learn: deterministic experiment arms with a holdout, and last-touch attribution.

A customer's arm is a hash of the experiment name (the strategy) and the customer key, so it is
stable across workers and restarts. Every decision yields a `decision` record, sent
(`delivered: true`) or held out (`delivered: false`, nothing else sent); a placed order within
the attribution window after a decision (sent or held out) is attributed to the latest one,
once per order, so conversion can be compared arm by arm.

The customer is the unit of randomisation and of analysis: `rec_state["trials"]` keeps, per
strategy the customer was decided for, `[arm, decisions, attributed orders, attributed
revenue]` (never trimmed: one entry per strategy). `trial_counts` sums the customers' trials of
stored states into customers decided, customers converted and revenue per (strategy, arm), the
figures `recommend.uplift.experiment_report` compares with the holdout; a decision the store's
discount budget denied counts as decided in its arm (intent to treat).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOLDOUT = "holdout"
TREATMENT = "treatment"
ATTRIBUTION_WINDOW_S = 7 * 86400.0
MAX_EXPOSURES = 20
MAX_ATTRIBUTED = 50
DECISION_TYPES = frozenset({"recommendation", "discount_trigger"})
DECISION = "decision"


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """A strategy's experiment (rules file): holdout share (None: the default), arms, bandit."""

    holdout: float | None = None
    variants: tuple[str, ...] = (TREATMENT,)
    bandit: bool = False  # Thompson sampling over the variants (recommend.bandit)


def arm_for(
    customer_key: str,
    experiment: str,
    holdout: float = 0.10,
    variants: tuple[str, ...] = (TREATMENT,),
) -> str:
    """The customer's arm in an experiment: `holdout` share held out, the rest split evenly."""
    digest = hashlib.sha256(f"{experiment}|{customer_key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < holdout:
        return HOLDOUT
    share = (u - holdout) / (1.0 - holdout) if holdout < 1.0 else 0.0
    return variants[min(int(share * len(variants)), len(variants) - 1)]


def assign_arms(
    rec_state: dict[str, Any],
    decisions: list[dict[str, Any]],
    *,
    customer_key: str,
    holdout: float,
    experiments: Mapping[str, ExperimentConfig] | None = None,
) -> list[dict[str, Any]]:
    """Label decisions with their arm and add each one's `decision` record (sent or held out).

    A decision that carries no `arm` yet gets one here (`arm_picker`). Held-out decisions are
    not sent: their `decision` record says `delivered: false`, and a `suppressed_by_holdout`
    signal counts them. Every decision is remembered as an exposure for attribution.
    """
    arm_of = arm_picker(customer_key, holdout, experiments)
    exposures: list[list[Any]] = rec_state.setdefault("exposures", [])
    out: list[dict[str, Any]] = []
    for record in decisions:
        if record.get("type") not in DECISION_TYPES:
            out.append(record)
            continue
        strategy = str(record.get("strategy"))
        arm = str(record.get("arm") or arm_of(strategy))
        t = _epoch(record["occurred_at"])
        if not any(e[3] == record["id"] for e in exposures):
            exposures.append([t, strategy, arm, record["id"]])
            exposures.sort(key=lambda e: e[0])
            del exposures[:-MAX_EXPOSURES]
            trial = rec_state.setdefault("trials", {}).setdefault(strategy, [arm, 0, 0, 0.0])
            trial[0] = arm
            trial[1] += 1
        out.append(decision_record(record, arm))
        if arm == HOLDOUT:
            out.append({"type": "signal", "name": "suppressed_by_holdout", "strategy": strategy})
        else:
            out.append({**record, "arm": arm})
    return out


def arm_picker(
    customer_key: str,
    holdout: float,
    experiments: Mapping[str, ExperimentConfig] | None = None,
    *,
    trials: Mapping[str, Any] | None = None,
    counts: Callable[[str], Mapping[str, tuple[int, int]]] | None = None,
) -> Callable[[str], str]:
    """The customer's arm per strategy: the strategy's experiment, else the default holdout.

    A bandit strategy keeps the arm in the customer's `trials` and draws a new customer's from
    `counts(strategy)` (variant -> customers decided, converted; `recommend.bandit`).
    """

    def arm_of(strategy: str) -> str:
        config = (experiments or {}).get(strategy) or ExperimentConfig()
        share = holdout if config.holdout is None else config.holdout
        if not config.bandit or len(config.variants) < 2:
            return arm_for(customer_key, strategy, share, config.variants)
        kept = (trials or {}).get(strategy)
        if isinstance(kept, list) and kept and kept[0] in (*config.variants, HOLDOUT):
            return str(kept[0])
        from recommend.bandit import thompson_arm  # here: recommend.bandit imports this module

        seen = counts(strategy) if counts is not None else {}
        return thompson_arm(customer_key, strategy, share, config.variants, seen)

    return arm_of


def decision_record(record: Mapping[str, Any], arm: str) -> dict[str, Any]:
    """The audit record of one decision, sent or held out (topic `recommend.decisions`)."""
    held = arm == HOLDOUT
    items = record.get("items")
    products = [str(i["product_id"]) for i in items] if isinstance(items, list) else []
    if not products and record.get("product_id"):
        products = [str(record["product_id"])]
    return {
        "type": DECISION,
        "version": "1-0-0",
        "id": record["id"],
        "customer_key": record.get("customer_key"),
        "customer_id": record.get("customer_id"),
        "occurred_at": record["occurred_at"],
        "strategy": record.get("strategy"),
        "arm": arm,
        "delivered": not held,
        "held_out_reason": HOLDOUT if held else None,
        "decision_type": record["type"],
        "trigger_id": record.get("trigger_id"),
        "trigger_type": record.get("trigger_type"),
        "product_ids": products,
        "discount_percent": record.get("percent"),
        "reason": record.get("reason"),
    }


def attribute(
    rec_state: dict[str, Any],
    *,
    customer_key: str,
    order_id: str,
    order_value: float,
    ordered_at: float,
    window_s: float = ATTRIBUTION_WINDOW_S,
) -> dict[str, Any] | None:
    """A `recommendation_converted` record for a placed order, or None (last touch, once)."""
    attributed: list[str] = rec_state.setdefault("attributed", [])
    if order_id in attributed:
        return None
    eligible = [e for e in rec_state.get("exposures", []) if 0 <= ordered_at - e[0] <= window_s]
    if not eligible:
        return None
    t, strategy, arm, decision_id = max(eligible, key=lambda e: e[0])
    attributed.append(order_id)
    del attributed[:-MAX_ATTRIBUTED]
    trial = rec_state.setdefault("trials", {}).setdefault(strategy, [arm, 0, 0, 0.0])
    trial[2] += 1
    trial[3] = round(trial[3] + max(0.0, order_value), 2)
    text = f"{customer_key}|converted|{order_id}"
    ident = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]
    return {
        "type": "recommendation_converted",
        "version": "1-0-0",
        "id": ident,
        "customer_key": customer_key,
        "customer_id": customer_key[2:] if customer_key.startswith("c:") else None,
        "occurred_at": datetime.fromtimestamp(ordered_at, UTC).isoformat(),
        "strategy": strategy,
        "arm": arm,
        "decision_id": decision_id,
        "order_id": order_id,
        "order_value": round(order_value, 2),
        "seconds_to_convert": round(ordered_at - t, 3),
    }


Counts = dict[tuple[str, str], float]


def trial_counts(rec_states: Iterable[Any]) -> tuple[Counts, Counts, Counts]:
    """Customers decided, customers converted and attributed revenue per (strategy, arm).

    Each customer counts once per strategy, in their arm; `rec_states` are the customers'
    `recommend` states as stored (anything else is skipped).
    """
    totals = TrialTotals()
    for rec_state in rec_states:
        totals.change((), trial_share(rec_state))
    return totals.counts()


TrialShare = tuple[tuple[str, str, int, int], ...]  # (strategy, arm, converted 0/1, cents)


def trial_share(rec_state: Any) -> TrialShare:
    """A customer's part of `trial_counts`: per strategy decided, its arm, converted, revenue."""
    trials = rec_state.get("trials") if isinstance(rec_state, dict) else None
    if not isinstance(trials, dict):
        return ()
    out = []
    for strategy, trial in sorted(trials.items()):
        if isinstance(trial, list) and len(trial) == 4 and trial[1] > 0:
            converted = 1 if trial[2] > 0 else 0
            out.append((str(strategy), str(trial[0]), converted, round(float(trial[3]) * 100)))
    return tuple(out)


class TrialTotals:
    """`trial_counts` kept as customers change: each customer's share added or taken back."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], list[int]] = {}  # decided, converted, revenue cents

    def change(self, old: TrialShare, new: TrialShare) -> None:
        """A customer's share went from `old` to `new`."""
        for share, sign in ((old, -1), (new, 1)):
            for strategy, arm, converted, cents in share:
                cell = self.cells.setdefault((strategy, arm), [0, 0, 0])
                cell[0] += sign
                cell[1] += sign * converted
                cell[2] += sign * cents * converted
                if cell == [0, 0, 0]:
                    del self.cells[(strategy, arm)]

    def counts(self) -> tuple[Counts, Counts, Counts]:
        """Customers decided, converted and revenue per (strategy, arm), as `trial_counts`."""
        decided: Counts = {}
        converted: Counts = {}
        revenue: Counts = {}
        for cell, (d, c, cents) in self.cells.items():
            if d:
                decided[cell] = d
            if c:
                converted[cell] = c
                revenue[cell] = cents / 100
        return decided, converted, revenue


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
