"""Guardrails: stock / just-bought filters, frequency caps and cooldowns (pure).

Per-customer memory lives in the JSON-friendly `rec_state` dict (the customer's `recommend`
slot of the composite state):

    {"v": 1,
     "sent": [[t, strategy, record type, record id], ...],  # oldest first, bounded
     "bought": {product_id: [t, category | null]},           # order lines seen, bounded
     "store_id": str | null}                                  # last store seen on a trigger

* Frequency cap: at most `frequency.max_per_day` messages (recommendations and discount
  triggers) in the rolling 24 h before `now`.
* Strategy cooldown: no message of a strategy within its cooldown after the previous one.
* Discount cooldown: no discount trigger within `discount.cooldown_days` after the previous one.
* Daily discount budget: discount triggers per store per UTC day, not a customer guardrail:
  reserved at the store-day's owner after the customer's guardrails passed (`recommend.budget`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from recommend.catalog import Catalog
from recommend.rules import Rules
from recommend.strategies import Candidate

DAY = 86400.0
STATE_FORMAT = 1
MAX_SENT = 50
MAX_BOUGHT = 50
DISCOUNT_RECORD = "discount_trigger"

# suppression reasons (signal labels)
OUT_OF_STOCK = "out_of_stock"
JUST_BOUGHT = "just_bought"
NO_CANDIDATES = "no_candidates"
FREQUENCY_CAP = "frequency_cap"
STRATEGY_COOLDOWN = "strategy_cooldown"
DISCOUNT_COOLDOWN = "discount_cooldown"
DISCOUNT_BUDGET = "discount_budget"


def normalize_state(rec_state: dict[str, Any] | None) -> dict[str, Any]:
    """The given state with every key present (a new one for None); mutates and returns it."""
    state = rec_state if rec_state is not None else {}
    state.setdefault("v", STATE_FORMAT)
    state.setdefault("sent", [])
    state.setdefault("bought", {})
    state.setdefault("store_id", None)
    return state


def filter_candidates(
    candidates: Iterable[Candidate],
    catalog: Catalog,
    bought: Mapping[str, float],
    now: float,
    rules: Rules,
    *,
    allow_bought: bool = False,
) -> tuple[list[Candidate], dict[str, int]]:
    """Drop out-of-stock products and products bought within `just_bought_days` (with counts)."""
    window = rules.just_bought_days * DAY
    kept: list[Candidate] = []
    dropped: dict[str, int] = {}
    seen: set[str] = set()
    for c in candidates:
        if c.product_id in seen:
            continue
        seen.add(c.product_id)
        if not catalog.in_stock(c.product_id):
            dropped[OUT_OF_STOCK] = dropped.get(OUT_OF_STOCK, 0) + 1
            continue
        t = bought.get(c.product_id)
        if not allow_bought and t is not None and now - t < window:
            dropped[JUST_BOUGHT] = dropped.get(JUST_BOUGHT, 0) + 1
            continue
        kept.append(c)
    return kept, dropped


def already_sent(rec_state: Mapping[str, Any], record_id: str) -> bool:
    """Whether a record id is in the sent log (a re-processed trigger)."""
    return any(entry[3] == record_id for entry in rec_state.get("sent", ()))


def check_caps(rec_state: Mapping[str, Any], strategy: str, now: float, rules: Rules) -> str | None:
    """The frequency-cap / strategy-cooldown reason that blocks a message now, else None."""
    sent = rec_state.get("sent", ())
    if sum(1 for e in sent if now - DAY < e[0] <= now) >= rules.frequency.max_per_day:
        return FREQUENCY_CAP
    cooldown = rules.frequency.cooldown_s(strategy)
    if cooldown > 0 and any(e[1] == strategy and 0 <= now - e[0] < cooldown for e in sent):
        return STRATEGY_COOLDOWN
    return None


def check_discount_cooldown(rec_state: Mapping[str, Any], now: float, rules: Rules) -> str | None:
    """`discount_cooldown` when a discount trigger was sent within the cooldown, else None."""
    window = rules.discount.cooldown_days * DAY
    for e in rec_state.get("sent", ()):
        if e[2] == DISCOUNT_RECORD and 0 <= now - e[0] < window:
            return DISCOUNT_COOLDOWN
    return None


def record_sent(
    rec_state: dict[str, Any],
    now: float,
    strategy: str,
    record_type: str,
    record_id: str,
    rules: Rules,
) -> None:
    """Log a sent message and drop entries no cap or cooldown can still need (bounded)."""
    sent: list[list[Any]] = rec_state.setdefault("sent", [])
    sent.append([now, strategy, record_type, record_id])
    sent.sort(key=lambda e: e[0])
    keep = max(
        DAY,
        rules.discount.cooldown_days * DAY,
        rules.frequency.cooldown_hours * 3600.0,
        *(h * 3600.0 for h in rules.frequency.strategy_cooldown_hours.values()),
    )
    sent[:] = [e for e in sent if now - e[0] < keep][-MAX_SENT:]


def remember_bought(
    rec_state: dict[str, Any], lines: Iterable[Mapping[str, Any]], t: float
) -> None:
    """Record an order's lines (product -> [time, category]); keeps the latest MAX_BOUGHT."""
    bought: dict[str, list[Any]] = rec_state.setdefault("bought", {})
    for line in lines:
        pid = line.get("product_id")
        if not pid:
            continue
        old = bought.pop(str(pid), None)
        if old is not None and old[0] > t:
            bought[str(pid)] = old
            continue
        bought[str(pid)] = [t, line.get("category")]
    if len(bought) > MAX_BOUGHT:
        ordered = sorted(bought.items(), key=lambda kv: kv[1][0])[-MAX_BOUGHT:]
        bought.clear()
        bought.update(ordered)
