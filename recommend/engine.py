"""Decide what to send for one trigger record: strategies + guardrails -> output records (pure).

`decide(rec_state, trigger, journey, catalog, copurchase, rules, now, customer_key=...)`
takes one output record of the journey/abandonment cores and returns the (mutated) per-customer
`rec_state` and a list of outputs:

* `journey_transition`, kind `purchase` -> `complements_after_purchase` recommendation: the
  merchant's complement rules, then the customer's own past products (`buy_again`; only its
  repurchases are exempt from the just-bought filter, as replenishment), then learned
  co-purchases, by score. The order's lines are the trigger's optional `order_lines`
  (`[{"product_id", "category"?, ...}]`), else the journey's `recent_purchases` stamped at the
  trigger's time; they are remembered in `rec_state["bought"]` (replenishment, just-bought
  filter) and counted in `rec_state["history"]` (product -> [decayed orders, last order time,
  orders]; orders at the same time count once; at most `MAX_HISTORY` products, the least
  weighty dropped).
* `journey_transition`, kind `stage`, to_stage `seed` -> `popular_in_category` (the customer's
  favourite-category repurchases first, then the most popular products of the category the
  current session seeded on).
* `browse_abandoned` -> `downsell_after_browse` recommendation (>= `downsell.min_high_priced`
  high-priced products viewed) and a `discount_after_abandonment` trigger on the
  highest-intent viewed product.
* `cart_abandoned` -> `discount_after_abandonment` trigger on the highest-value carted line.
* `replenishment_check` (`{"type", "id", "occurred_at"}`, from `recommend.reminders` when a
  bought product's interval has passed) -> `replenishment` recommendation of products due
  again (just-bought filter off).
* `recall_check` (from `recommend.reengage` when a never-purchased visitor starts the rules'
  `recall.visits`-th visit) -> `recall_returning`: the products of earlier visits (cart,
  favourites, views; `recall_interest`).
* `lapse_check` (from `recommend.reengage` when a buyer's inactivity reaches
  `win_back.after_days`) -> `win_back`: the customer's own past products (`buy_again`), then
  the most popular of their favourite category.
  Both send a recommendation, or with `offer = "discount"` a discount trigger on the top
  candidate (the discount policy's percent and cooldown). Their records carry version
  1-0-1 (the schemas' strategy enums add them); every other record stays 1-0-0.
Any other trigger yields nothing.

Every decision carries its experiment `arm` (`arm_of(strategy)`, default treatment). A held-out
decision is built like a sent one and marked `delivered: False`: its guardrails are checked
(read-only), but it is not logged against the customer's frequency caps and cooldowns, which
count real messages only. The store's daily discount budget is not checked here: a treated
discount trigger is reserved afterwards at the store-day's owner (`recommend.budget`), held-out
ones never are.
Guardrail suppressions yield `{"type": "signal", "name": "recommendation_suppressed",
"strategy", "reason"}` (reasons in `recommend.guardrails`). Ids: sha1 of
`customer_key|strategy|trigger id`, hex[:20]; a trigger whose id is already in the sent log (a
re-delivery) is re-emitted identically without being counted again against caps (and the
budget's owner grants an id it granted before again, without a new spend).
`decide` never mutates `copurchase` or `catalog`: the streams layer feeds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from journey.stages import CustomerJourney, format_time
from recommend import guardrails as g
from recommend import reengage, reminders
from recommend.catalog import Catalog
from recommend.copurchase import CoPurchase
from recommend.experiments import HOLDOUT, TREATMENT
from recommend.rules import (
    COMPLEMENTS,
    DISCOUNT,
    DOWNSELL,
    OFFER_DISCOUNT,
    POPULAR,
    RECALL,
    REPLENISHMENT,
    WIN_BACK,
    Rules,
)
from recommend.strategies import (
    HISTORY_HALF_LIFE_DAYS,
    Candidate,
    DiscountTarget,
    buy_again,
    complements_after_purchase,
    discount_target,
    downsell_after_browse,
    favourites_repurchase,
    popular_in,
    recall_interest,
    replenishment_due,
)

VERSION = "1-0-0"
REENGAGE_VERSION = "1-0-1"  # recommendation / discount_trigger whose strategy enum has them
REENGAGE_STRATEGIES = frozenset({RECALL, WIN_BACK})
RECOMMENDATION = "recommendation"
DISCOUNT_TRIGGER = "discount_trigger"
SUPPRESSED = "recommendation_suppressed"
REPLENISHMENT_CHECK = reminders.CHECK
RECALL_CHECK = reengage.RECALL_CHECK
LAPSE_CHECK = reengage.LAPSE_CHECK
ORDER_TIME_TOLERANCE_S = 0.0015  # journey records carry milliseconds
MAX_HISTORY = 100  # products per customer in `rec_state["history"]`
DAY = 86400.0

Output = dict[str, Any]


def record_id(customer_key: str, strategy: str, trigger_id: str) -> str:
    """Deterministic output id: sha1 of `customer_key|strategy|trigger_id`, hex[:20]."""
    text = f"{customer_key}|{strategy}|{trigger_id}"
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (`Z` or an offset)."""
    return datetime.fromisoformat(text.replace("z", "Z")).timestamp()


@dataclass
class _Ctx:
    state: dict[str, Any]
    trigger: dict[str, Any]
    journey: CustomerJourney | None
    catalog: Catalog
    copurchase: CoPurchase
    rules: Rules
    now: float
    customer_key: str
    trigger_id: str
    trigger_time: float
    store_id: str | None
    out: list[Output]
    arm_of: Callable[[str], str]


def decide(
    rec_state: dict[str, Any] | None,
    trigger: dict[str, Any],
    journey: CustomerJourney | None,
    catalog: Catalog,
    copurchase: CoPurchase,
    rules: Rules,
    now: float,
    *,
    customer_key: str,
    arm_of: Callable[[str], str] | None = None,
) -> tuple[dict[str, Any], list[Output]]:
    """Recommendations / discount triggers / suppression signals for one trigger record."""
    state = g.normalize_state(rec_state)
    ttype = trigger.get("type")
    store_id = trigger.get("store_id")
    if isinstance(store_id, str) and store_id:
        state["store_id"] = store_id
    occurred = trigger.get("occurred_at")
    try:
        t = parse_time(occurred) if isinstance(occurred, str) else now
    except ValueError:
        t = now
    ctx = _Ctx(
        state=state,
        trigger=trigger,
        journey=journey,
        catalog=catalog,
        copurchase=copurchase,
        rules=rules,
        now=now,
        customer_key=customer_key,
        trigger_id=str(trigger.get("id") or trigger.get("event_id") or ""),
        trigger_time=t,
        store_id=state.get("store_id"),
        out=[],
        arm_of=arm_of or _treated,
    )
    if ttype == "journey_transition":
        if trigger.get("kind") == "purchase":
            _on_purchase(ctx)
        elif trigger.get("kind") == "stage" and trigger.get("to_stage") == "seed":
            _on_seed(ctx)
    elif ttype == "browse_abandoned":
        _on_browse(ctx)
    elif ttype == "cart_abandoned":
        _on_cart(ctx)
    elif ttype == REPLENISHMENT_CHECK:
        _on_replenishment(ctx)
    elif ttype == RECALL_CHECK:
        _on_recall(ctx)
    elif ttype == LAPSE_CHECK:
        _on_lapse(ctx)
    return state, ctx.out


# ---------------------------------------------------------------------------------------------
# triggers


def _on_purchase(ctx: _Ctx) -> None:
    lines = ctx.trigger.get("order_lines")
    if not isinstance(lines, list):
        lines = []
        if ctx.journey is not None:
            for pid, bought_at in ctx.journey.recent_purchases.items():
                if abs(bought_at - ctx.trigger_time) < ORDER_TIME_TOLERANCE_S:
                    lines.append({"product_id": pid, "category": ctx.catalog.category_of(pid)})
    reminders.observe_reorders(ctx.state, lines, ctx.trigger_time)
    g.remember_bought(ctx.state, lines, ctx.trigger_time)
    products = [str(ln["product_id"]) for ln in lines if ln.get("product_id")]
    remember_history(ctx.state, products, ctx.trigger_time)
    history = ctx.state["history"]
    again, repurchases = buy_again(history, ctx.copurchase, ctx.now, k=len(history))
    candidates = complements_after_purchase(
        lines, ctx.catalog, ctx.rules, ctx.copurchase, ctx.now, k=ctx.rules.k * 2
    )
    candidates = sorted([*again, *candidates], key=lambda c: -c.score)  # stable: ties keep order
    category = ctx.catalog.category_of(products[0]) if products else None
    kept, _dropped = _filter(ctx, candidates, False, repurchases)
    reason = "complements of the products just bought"
    if {c.product_id for c in again} & {c.product_id for c in kept[: ctx.rules.k]}:
        reason = "products bought before, and complements of the products just bought"
    _recommend(ctx, COMPLEMENTS, candidates, category, reason, replenish=repurchases)


def _on_seed(ctx: _Ctx) -> None:
    j = ctx.journey
    category = ctx.trigger.get("category")
    if not isinstance(category, str) or not category:
        category = None
        if j is not None and j.session_categories:
            category = min(j.session_categories.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        elif j is not None:
            favs = j.favourite_categories(1)
            category = favs[0] if favs else None
    candidates: list[Candidate] = []
    if j is not None:
        candidates += favourites_repurchase(
            j, catalog=ctx.catalog, categories=_categories(ctx.state), k=ctx.rules.k
        )
    viewed = set(j.recent_views) if j is not None else set()
    candidates += popular_in(
        category, ctx.catalog, ctx.copurchase, ctx.now, k=ctx.rules.k * 2, exclude=viewed
    )
    reason = f"popular in {category}" if category else "popular in the store"
    _recommend(ctx, POPULAR, candidates, category, reason)


def _on_browse(ctx: _Ctx) -> None:
    record = ctx.trigger
    category = record.get("category") if isinstance(record.get("category"), str) else None
    candidates = downsell_after_browse(
        record,
        ctx.catalog,
        min_high=ctx.rules.downsell_min_high,
        k=ctx.rules.k * 2,
        copurchase=ctx.copurchase,
        now=ctx.now,
    )
    if candidates:
        reason = f"viewed high-priced {category} without buying: mid-priced alternatives"
        _recommend(ctx, DOWNSELL, candidates, category, reason)
    target = discount_target(record, ctx.journey, ctx.rules, ctx.catalog)
    _discount(ctx, target)


def _on_cart(ctx: _Ctx) -> None:
    target = discount_target(ctx.trigger, ctx.journey, ctx.rules, ctx.catalog)
    _discount(ctx, target)


def _on_replenishment(ctx: _Ctx) -> None:
    j = ctx.journey
    if j is None:
        return
    candidates = replenishment_due(
        j,
        ctx.now,
        ctx.rules,
        catalog=ctx.catalog,
        categories=_categories(ctx.state),
        learned=reminders.learned_intervals(ctx.state),
    )
    reason = "time to restock products bought before"
    _recommend(ctx, REPLENISHMENT, candidates, None, reason, allow_bought=True)


def _on_recall(ctx: _Ctx) -> None:
    j = ctx.journey
    if j is None:
        return
    candidates = recall_interest(j, ctx.catalog, k=ctx.rules.k * 2)
    visit = ctx.trigger.get("visit")
    reason = f"visit {visit} without a purchase: products of earlier visits"
    _reengage(ctx, RECALL, ctx.rules.recall.offer, candidates, reason)


def _on_lapse(ctx: _Ctx) -> None:
    j = ctx.journey
    if j is None:
        return
    history = ctx.state.get("history") or {}
    again, repurchases = buy_again(history, ctx.copurchase, ctx.now, k=ctx.rules.k * 2)
    favs = j.favourite_categories(1)
    category = favs[0] if favs else None
    popular = popular_in(category, ctx.catalog, ctx.copurchase, ctx.now, k=ctx.rules.k * 2)
    days = (ctx.trigger_time - j.last_seen) / DAY
    reason = f"no visit for {days:.0f} days: products bought before, and popular ones"
    _reengage(
        ctx, WIN_BACK, ctx.rules.win_back.offer, [*again, *popular], reason, replenish=repurchases
    )


def _reengage(
    ctx: _Ctx,
    strategy: str,
    offer: str,
    candidates: list[Candidate],
    reason: str,
    *,
    replenish: frozenset[str] = frozenset(),
) -> None:
    """A recommendation of the candidates, or a discount trigger on the first one kept."""
    kept, _dropped = _filter(ctx, candidates, False, replenish)
    if offer != OFFER_DISCOUNT:
        category = ctx.catalog.category_of(kept[0].product_id) if kept else None
        _recommend(ctx, strategy, candidates, category, reason, replenish=replenish)
        return
    target = None
    if kept:
        top = kept[0]
        item = ctx.catalog.get(top.product_id)
        category = item["category"] if item is not None else None
        price = float(item["price"]) if item is not None and item["price"] is not None else None
        percent = ctx.rules.discount.percent_for(category)
        target = DiscountTarget(
            top.product_id, percent, f"{reason} ({top.reason})", category, price
        )
    _discount(ctx, target, strategy)


# ---------------------------------------------------------------------------------------------
# emitting


def _recommend(
    ctx: _Ctx,
    strategy: str,
    candidates: list[Candidate],
    category: str | None,
    reason: str,
    *,
    allow_bought: bool = False,
    replenish: frozenset[str] = frozenset(),
) -> None:
    rid = record_id(ctx.customer_key, strategy, ctx.trigger_id)
    kept, dropped = _filter(ctx, candidates, allow_bought, replenish)
    if not kept:
        why = max(dropped, key=lambda r: dropped[r]) if dropped else g.NO_CANDIDATES
        ctx.out.append(_suppressed(strategy, why))
        return
    repeat = g.already_sent(ctx.state, rid)
    arm = ctx.arm_of(strategy)
    if not repeat:
        blocked = g.check_caps(ctx.state, strategy, ctx.now, ctx.rules)
        if blocked is not None:
            ctx.out.append(_suppressed(strategy, blocked))
            return
    items = []
    for c in kept[: ctx.rules.k]:
        entry: dict[str, Any] = {"product_id": c.product_id, "score": c.score, "reason": c.reason}
        item = ctx.catalog.get(c.product_id)
        if item is not None:
            if item["title"]:
                entry["title"] = item["title"]
            if item["price"] is not None:
                entry["price"] = item["price"]
        items.append(entry)
    rec = _header(ctx, RECOMMENDATION, rid, strategy, arm)
    rec.update(category=category, items=items, store=_store(ctx), reason=reason)
    ctx.out.append(rec)
    if not repeat and arm != HOLDOUT:
        g.record_sent(ctx.state, ctx.now, strategy, RECOMMENDATION, rid, ctx.rules)


def _discount(ctx: _Ctx, target: DiscountTarget | None, strategy: str = DISCOUNT) -> None:
    if target is None:
        ctx.out.append(_suppressed(strategy, g.NO_CANDIDATES))
        return
    rid = record_id(ctx.customer_key, strategy, ctx.trigger_id)
    repeat = g.already_sent(ctx.state, rid)
    arm = ctx.arm_of(strategy)
    if not repeat:
        blocked = g.check_caps(ctx.state, strategy, ctx.now, ctx.rules) or (
            g.check_discount_cooldown(ctx.state, ctx.now, ctx.rules)
        )
        if blocked is not None:
            ctx.out.append(_suppressed(strategy, blocked))
            return
    item = ctx.catalog.get(target.product_id)
    title = item["title"] if item is not None and item["title"] else None
    price = target.price
    if item is not None and item["price"] is not None:
        price = float(item["price"])
    expires = ctx.trigger_time + ctx.rules.discount.expires_hours * 3600.0
    rec = _header(ctx, DISCOUNT_TRIGGER, rid, strategy, arm)
    rec.update(
        product_id=target.product_id,
        title=title,
        category=target.category,
        price=price,
        percent=target.percent,
        reason=target.reason,
        store=_store(ctx),
        expires_at=format_time(expires),
    )
    ctx.out.append(rec)
    if not repeat and arm != HOLDOUT:
        g.record_sent(ctx.state, ctx.now, strategy, DISCOUNT_TRIGGER, rid, ctx.rules)


def _filter(
    ctx: _Ctx, candidates: list[Candidate], allow_bought: bool, replenish: frozenset[str]
) -> tuple[list[Candidate], dict[str, int]]:
    """Guardrails; products in `replenish` are exempt from the just-bought filter only."""
    unique = list({c.product_id: c for c in reversed(candidates)}.values())[::-1]  # first wins
    bought = _bought(ctx)
    ok: set[str] = set()
    dropped: dict[str, int] = {}
    for exempt in (True, False):
        part = [c for c in unique if (c.product_id in replenish) == exempt]
        kept, why = g.filter_candidates(
            part, ctx.catalog, bought, ctx.now, ctx.rules, allow_bought=allow_bought or exempt
        )
        ok.update(c.product_id for c in kept)
        for reason, n in why.items():
            dropped[reason] = dropped.get(reason, 0) + n
    return [c for c in unique if c.product_id in ok], dropped


def remember_history(rec_state: dict[str, Any], product_ids: list[str], t: float) -> None:
    """Count an order's products in the customer's purchase history (bounded, pure)."""
    history: dict[str, list[float]] = rec_state.setdefault("history", {})
    half_life = HISTORY_HALF_LIFE_DAYS * DAY
    for pid in dict.fromkeys(product_ids):
        entry = history.get(pid)
        if entry is None:
            history[pid] = [1.0, t, 1]
            continue
        weight, last, orders = entry
        if abs(t - last) < ORDER_TIME_TOLERANCE_S:
            continue  # another order of the same visit
        if t > last:
            history[pid] = [weight * 2.0 ** (-(t - last) / half_life) + 1.0, t, orders + 1]
        else:
            history[pid] = [weight + 2.0 ** (-(last - t) / half_life), last, orders + 1]
    if len(history) > MAX_HISTORY:
        ranked = sorted(
            history.items(),
            key=lambda kv: (-kv[1][0] * 2.0 ** (-(t - kv[1][1]) / half_life), -kv[1][1], kv[0]),
        )
        history.clear()
        history.update(ranked[:MAX_HISTORY])


def repurchased(rec_state: dict[str, Any], product_ids: list[str], t: float) -> list[str]:
    """The products of an order at `t` that the customer had ordered before (history)."""
    history = rec_state.get("history") or {}
    return [p for p in product_ids if p in history and history[p][1] < t - ORDER_TIME_TOLERANCE_S]


def _treated(strategy: str) -> str:
    return TREATMENT


def _header(ctx: _Ctx, rtype: str, rid: str, strategy: str, arm: str) -> Output:
    customer_id = ctx.trigger.get("customer_id")
    if not isinstance(customer_id, str):
        key = ctx.customer_key
        customer_id = key[2:] if key.startswith("c:") else None
    return {
        "type": rtype,
        "version": REENGAGE_VERSION if strategy in REENGAGE_STRATEGIES else VERSION,
        "id": rid,
        "customer_key": ctx.customer_key,
        "customer_id": customer_id,
        "occurred_at": format_time(ctx.trigger_time),
        "strategy": strategy,
        "trigger_id": ctx.trigger_id,
        "trigger_type": str(ctx.trigger.get("type")),
        "arm": arm,
    }


def _store(ctx: _Ctx) -> dict[str, Any] | None:
    store = ctx.rules.stores.get(ctx.store_id) if ctx.store_id else None
    return store.to_record() if store is not None else None


def _suppressed(strategy: str, reason: str) -> Output:
    return {"type": "signal", "name": SUPPRESSED, "strategy": strategy, "reason": reason}


def _bought(ctx: _Ctx) -> dict[str, float]:
    bought: dict[str, float] = {}
    if ctx.journey is not None:
        bought.update(ctx.journey.recent_purchases)
    for pid, (t, _cat) in ctx.state.get("bought", {}).items():
        if t > bought.get(pid, float("-inf")):
            bought[pid] = t
    return bought


def _categories(state: dict[str, Any]) -> dict[str, str | None]:
    return {pid: entry[1] for pid, entry in state.get("bought", {}).items()}
