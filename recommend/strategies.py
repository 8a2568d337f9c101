"""Recommendation strategies: pure functions returning ranked candidates (pure).

Every strategy returns `Candidate(product_id, score, reason)` lists, best first, scores
non-increasing (`buy_again` also returns which of them are repurchases). Strategies skip
products the catalog knows to be out of stock where they pick from a pool; the guardrails
filter again (stock, just bought) before anything is sent.

Scores:
* complements: merchant-rule items score `2 - 0.01 * rank` (always > 1, in rule order), learned
  co-purchase items score their confidence (0..1], so rule items always come first.
* downsell: `max(0, 1 - |price - median| / median)` of the category's catalog median price.
* replenishment: `interval / elapsed` (1.0 exactly when due, lower as it gets stale).
* favourites: `1 / (1 + rank of the product's category among the favourite categories)`.
* popular: decayed order weight / the best one in the pool (1.0 for the most popular); products
  never ordered score 0 and follow, closest to the category median price first.
* buy again: `1 + 0.9 * s / (1 + s)` in (1, 1.9), with `s` = the customer's decayed number of
  orders with the product (half-life `HISTORY_HALF_LIFE_DAYS`) + `POPULARITY_BONUS` x
  ln(1 + the product's decayed store-wide order weight); so after a purchase the merchant's
  rule items (>= 1.9 for the first ten) come first, then products bought again, then learned
  co-purchases (<= 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from journey.stages import CustomerJourney
from recommend.catalog import Catalog
from recommend.copurchase import CoPurchase
from recommend.rules import Rules, Selector

DAY = 86400.0
STALE_FACTOR = 3.0  # a replenishment more than 3 intervals overdue is no longer suggested
HISTORY_HALF_LIFE_DAYS = 365.0  # weight of a customer's past orders of a product
POPULARITY_BONUS = 0.3  # x ln(1 + store-wide decayed orders): breaks ties between own products
MIN_OWN_ORDERS = 2  # a product the customer ordered this many times is a repurchase
MIN_REPEAT_SHARE = 0.1  # ... or, bought once, a product whose demand is this much repurchases
MIN_REPEAT_ORDERS = 3.0  # (with at least this many decayed orders in the store)


class Candidate(NamedTuple):
    """One recommended product with its score and a human-readable reason."""

    product_id: str
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class DiscountTarget:
    """The product a discount should be offered on, and how much."""

    product_id: str
    percent: float
    reason: str
    category: str | None = None
    price: float | None = None


# ---------------------------------------------------------------------------------------------
# complements


def complements_after_purchase(
    order_lines: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    rules: Rules,
    copurchase: CoPurchase,
    now: float,
    *,
    k: int | None = None,
) -> list[Candidate]:
    """Merchant complement rules for the bought products first, then learned co-purchases."""
    k = rules.k if k is None else k
    bought = [str(line["product_id"]) for line in order_lines if line.get("product_id")]
    bought_set = set(bought)
    chosen: dict[str, Candidate] = {}
    rank = 0
    for line in order_lines:
        pid = str(line.get("product_id") or "")
        if not pid:
            continue
        item = catalog.get(pid)
        category = item["category"] if item is not None else line.get("category")
        attributes = item["attributes"] if item is not None else {}
        for rule in rules.complements:
            if not rule.when.matches(pid, category, attributes):
                continue
            for sel in rule.suggest:
                pool = [
                    p
                    for p in _selected(sel, catalog)
                    if p not in bought_set and p not in chosen and catalog.in_stock(p)
                ]
                pool.sort(key=lambda p: _complement_key(p, bought, catalog, copurchase, now))
                for p in pool[: sel.limit]:
                    reason = f"{rule.name} (bought {pid})"
                    chosen[p] = Candidate(p, round(2.0 - 0.01 * rank, 4), reason)
                    rank += 1
    learned: dict[str, tuple[float, str]] = {}
    for pid in bought:
        for other, confidence in copurchase.top(pid, k + len(bought) + len(chosen), now):
            if other in bought_set or other in chosen or not catalog.in_stock(other):
                continue
            if other not in learned or confidence > learned[other][0]:
                learned[other] = (confidence, pid)
    out = list(chosen.values())
    for other, (confidence, pid) in sorted(learned.items(), key=lambda kv: (-kv[1][0], kv[0])):
        out.append(
            Candidate(other, confidence, f"often bought with {pid} (confidence {confidence:.2f})")
        )
    return out[:k]


def _selected(sel: Selector, catalog: Catalog) -> list[str]:
    if sel.product is not None:
        if catalog.get(sel.product) is None:
            return [sel.product] if sel.category is None and not sel.attributes else []
        pool = [sel.product]
    elif sel.category is not None:
        pool = catalog.products_in(sel.category)
    else:
        pool = list(catalog.items)
    out = []
    for p in pool:
        item = catalog.items[p]
        if sel.matches(p, item["category"], item["attributes"]):
            out.append(p)
    return out


def _complement_key(
    p: str, bought: list[str], catalog: Catalog, copurchase: CoPurchase, now: float
) -> tuple[float, float, float, str]:
    affinity = sum(copurchase.pair_weight(b, p, now) for b in bought)
    return (-affinity, -copurchase.weight(p, now), _median_distance(p, catalog), p)


def _median_distance(p: str, catalog: Catalog) -> float:
    item = catalog.get(p)
    if item is None or item["price"] is None:
        return float("inf")
    median = catalog.tiers.median(item["category"])
    return 0.0 if median is None else abs(float(item["price"]) - median)


# ---------------------------------------------------------------------------------------------
# downsell


def downsell_after_browse(
    browse_record: Mapping[str, Any],
    catalog: Catalog,
    *,
    min_high: int = 3,
    k: int = 5,
    copurchase: CoPurchase | None = None,
    now: float = 0.0,
) -> list[Candidate]:
    """>= `min_high` high-priced products viewed in a category -> its best mid-priced in-stock ones.

    "Best" = price closest to the category's median catalog price (ties: more decayed orders
    when `copurchase` is given, then product id). Viewed products are never suggested.
    """
    category = str(browse_record.get("category") or "")
    products = list(browse_record.get("products") or ())
    viewed = {str(p["product_id"]) for p in products}
    high = 0
    for p in products:
        tier = p.get("price_tier")
        price = p.get("price")
        if tier is None and price is not None:  # an unknown price has no tier
            tier = catalog.tiers.tier_of(category, float(price))
        high += tier == "high"
    median = catalog.tiers.median(category)
    if high < min_high or median is None or median <= 0:
        return []
    pool: list[tuple[float, float, str, float]] = []
    for pid in catalog.products_in(category):
        item = catalog.items[pid]
        price = item["price"]
        if pid in viewed or item["category"] != category or price is None:
            continue
        if not catalog.in_stock(pid) or catalog.tiers.tier_of(category, price) != "mid":
            continue
        popularity = copurchase.weight(pid, now) if copurchase is not None else 0.0
        pool.append((abs(price - median), -popularity, pid, price))
    pool.sort()
    return [
        Candidate(
            pid,
            round(max(0.0, 1.0 - dist / median), 4),
            f"mid-priced {category} alternative after {high} high-priced views "
            f"(price {price:g}, category median {median:g})",
        )
        for dist, _pop, pid, price in pool[:k]
    ]


# ---------------------------------------------------------------------------------------------
# discounts


def discount_target(
    abandonment_record: Mapping[str, Any],
    journey: CustomerJourney | None,
    rules: Rules,
    catalog: Catalog | None = None,
) -> DiscountTarget | None:
    """The highest-intent product of an abandonment, with the policy's percent for its category.

    Cart: the line with the highest quantity x price (ties: most recently carted per the
    journey, then product id). Browse: a product also in the journey's cart first, then the most
    recently viewed (journey view time, else the record's order, most recent last). The journey
    keeps no per-product view counts, so recency stands for intent. Known out-of-stock products
    are skipped.
    """
    rtype = abandonment_record.get("type")
    cart = journey.cart if journey is not None else {}
    views = journey.recent_views if journey is not None else {}
    best: tuple[tuple[float, ...], str, str | None, float | None, str] | None = None
    if rtype == "cart_abandoned":
        for n, line in enumerate(abandonment_record.get("lines") or ()):
            pid = str(line["product_id"])
            if catalog is not None and not catalog.in_stock(pid):
                continue
            price = line.get("price")
            qty = int(line.get("quantity") or 1)
            value = qty * float(price) if price is not None else 0.0
            carted_at = float(cart[pid][3]) if pid in cart else float("-inf")
            key = (value, carted_at, float(-n))
            reason = f"highest-value line of the abandoned cart ({qty} x {price})"
            if best is None or key > best[0]:
                best = (key, pid, line.get("category"), price, reason)
    elif rtype == "browse_abandoned":
        category = abandonment_record.get("category")
        for n, p in enumerate(abandonment_record.get("products") or ()):
            pid = str(p["product_id"])
            if catalog is not None and not catalog.in_stock(pid):
                continue
            in_cart = 1.0 if pid in cart else 0.0
            seen_at = float(views[pid][2]) if pid in views else float("-inf")
            key = (in_cart, seen_at, float(n))
            reason = "in the cart after browsing" if in_cart else "most recently viewed product"
            if best is None or key > best[0]:
                best = (key, pid, category, p.get("price"), f"{reason} of the abandoned browse")
    if best is None:
        return None
    _key, pid, category, price, reason = best
    if catalog is not None:
        item = catalog.get(pid)
        if item is not None:
            category = item["category"] or category
    return DiscountTarget(
        pid,
        rules.discount.percent_for(category),
        reason,
        category,
        float(price) if price is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# replenishment, favourites, popular


def replenishment_due(
    journey: CustomerJourney,
    now: float,
    rules: Rules,
    *,
    catalog: Catalog | None = None,
    categories: Mapping[str, str | None] | None = None,
    learned: Mapping[str, float] | None = None,
) -> list[Candidate]:
    """Bought products whose interval has passed (and not 3 intervals ago).

    The interval is the category's in the rules file, else the customer's own reorder gap of
    the product (`learned`).
    """
    out = []
    for pid, bought_at in journey.recent_purchases.items():
        category = _category(pid, catalog, categories)
        interval = rules.replenish_interval_s(category)
        if interval is None and learned and pid in learned:
            interval = learned[pid]
        if interval is None or interval <= 0:
            continue
        elapsed = now - bought_at
        if elapsed < interval or elapsed > STALE_FACTOR * interval:
            continue
        lasts = category if rules.replenish_interval_s(category) is not None else "it"
        reason = (
            f"bought {elapsed / DAY:.0f} days ago; {lasts} lasts about {interval / DAY:.3g} days"
        )
        out.append(Candidate(pid, round(interval / elapsed, 4), reason))
    out.sort(key=lambda c: (-c.score, c.product_id))
    return out[: rules.k]


def favourites_repurchase(
    journey: CustomerJourney,
    *,
    catalog: Catalog | None = None,
    categories: Mapping[str, str | None] | None = None,
    k: int = 5,
) -> list[Candidate]:
    """Recently bought products in the customer's favourite categories (most recent first)."""
    favourites = journey.favourite_categories(5)
    scored = []
    for pid, bought_at in journey.recent_purchases.items():
        category = _category(pid, catalog, categories)
        if category not in favourites:
            continue
        rank = favourites.index(category)
        scored.append((rank, -bought_at, pid, category))
    scored.sort()
    return [
        Candidate(pid, round(1.0 / (1 + rank), 4), f"buy again from favourite category {cat}")
        for rank, _t, pid, cat in scored[:k]
    ]


def popular_in(
    category: str | None,
    catalog: Catalog,
    copurchase: CoPurchase,
    now: float,
    *,
    k: int = 5,
    exclude: Iterable[str] = (),
) -> list[Candidate]:
    """Cold start: the most ordered in-stock products of a category (None: the whole catalog)."""
    skip = set(exclude)
    pool = catalog.products_in(category) if category else list(catalog.items)
    pool = [p for p in pool if p not in skip and catalog.in_stock(p)]
    weights = {p: copurchase.weight(p, now) for p in pool}
    top = max(weights.values(), default=0.0)
    ranked = sorted(pool, key=lambda p: (-weights[p], _median_distance(p, catalog), p))
    where = category or "the store"
    out = []
    for p in ranked[:k]:
        w = weights[p]
        if w > 0:
            out.append(Candidate(p, round(w / top, 4), f"popular in {where}"))
        else:
            out.append(Candidate(p, 0.0, f"typical price in {where}"))
    return out


def buy_again(
    history: Mapping[str, Sequence[float]],
    copurchase: CoPurchase,
    now: float,
    *,
    k: int = 5,
) -> tuple[list[Candidate], frozenset[str]]:
    """The customer's own past products, most likely to be bought next first; and the repurchases.

    `history`: product -> [decayed orders at `last`, last order time, orders]. Repurchases
    (replenishment, the only ones the just-bought filter lets through): ordered at least
    `MIN_OWN_ORDERS` times by the customer, or products the store sees bought again (repeat share
    >= `MIN_REPEAT_SHARE` of >= `MIN_REPEAT_ORDERS` decayed orders). The others are candidates
    too, subject to the just-bought filter (bought long enough ago).
    """
    scored: list[tuple[float, str, str]] = []
    repurchases: set[str] = set()
    for pid, (weight, last, orders) in history.items():
        repeat = copurchase.repeat_share(pid, now)
        if orders >= MIN_OWN_ORDERS:
            reason = f"bought again: in {orders:g} of your orders"
            repurchases.add(pid)
        elif repeat >= MIN_REPEAT_SHARE and copurchase.weight(pid, now) >= MIN_REPEAT_ORDERS:
            reason = f"often bought again ({repeat:.0%} of its orders are repurchases)"
            repurchases.add(pid)
        else:
            reason = f"you bought it {max(0.0, now - last) / DAY:.0f} days ago"
        own = weight * math.pow(2.0, -(now - last) / (HISTORY_HALF_LIFE_DAYS * DAY))
        s = own + POPULARITY_BONUS * math.log1p(copurchase.weight(pid, now))
        scored.append((round(1.0 + 0.9 * s / (1.0 + s), 6), pid, reason))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [Candidate(pid, score, reason) for score, pid, reason in scored[:k]], frozenset(
        repurchases
    )


def _category(
    pid: str, catalog: Catalog | None, categories: Mapping[str, str | None] | None
) -> str | None:
    if categories is not None and categories.get(pid):
        return categories[pid]
    return catalog.category_of(pid) if catalog is not None else None


# ---------------------------------------------------------------------------------------------
# re-engagement


def recall_interest(journey: CustomerJourney, catalog: Catalog, *, k: int = 5) -> list[Candidate]:
    """The products a visitor showed interest in on earlier visits, without buying them.

    Cart lines first, then favourites, then viewed products, each group most recent first;
    what the current visit (from `session_start`) touched is left out, and so are products
    bought and products the catalog knows to be out of stock. Score `1 / (1 + rank)`.
    """
    before = journey.session_start
    bought = journey.recent_purchases
    groups: list[tuple[str, list[tuple[float, str]]]] = [
        ("left in your cart", [(line.at, pid) for pid, line in journey.cart.items()]),
        ("in your favourites", [(v[1], pid) for pid, v in journey.favourites.items()]),
        ("viewed on an earlier visit", [(v[2], pid) for pid, v in journey.recent_views.items()]),
    ]
    chosen: dict[str, str] = {}
    for reason, entries in groups:
        for t, pid in sorted(entries, key=lambda e: (-e[0], e[1])):
            if t >= before or pid in chosen or pid in bought or not catalog.in_stock(pid):
                continue
            chosen[pid] = reason
    return [
        Candidate(pid, round(1.0 / (1 + rank), 4), reason)
        for rank, (pid, reason) in enumerate(list(chosen.items())[:k])
    ]
