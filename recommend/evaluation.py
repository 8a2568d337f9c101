"""Offline quality of post-order recommendations: hit rate @k against the next order (pure).

The unit of evaluation is a *basket*: the placed orders of one customer with the same
`occurred_at` (an invoice split in two at the same minute is one visit). Baskets are processed
strictly in time order (ties: the order they were given in); a predictor sees a basket
(`observe`) and then recommends (`recommend`) with only what it has observed so far.

For each basket of an identified customer that has a next basket of the same customer:
* covered when the recommendation has at least one item;
* a hit when any of its first `k` items is in the next basket.
`hit_rate` = hits / covered, `hit_rate_all` = hits / eligible (no recommendation = a miss),
`coverage` = covered / eligible.

Baselines (all online, in time order, `k` = 5):
* `GlobalPopularity`: products in the most baskets so far (any customer, guests included),
  optionally excluding the products of the just-placed basket;
* `CoPurchaseCounts`: products most often in the same earlier basket as the just-placed
  basket's products (sum of pair counts; the basket's own products excluded);
* `OwnHistory`: the customer's own products so far (the just-placed basket included), by number
  of baskets (`by="frequency"`, ties: most recent) or by last purchase (`by="recency"`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Online Retail stock codes that are fees or bookkeeping, not merchandise
NON_MERCHANDISE = frozenset(
    {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "CRUK", "PADS", "AMAZONFEE", "BANK CHARGES"}
)
K = 5


@dataclass(frozen=True, slots=True)
class Basket:
    """One visit: the placed orders of one customer at one time, as distinct products."""

    customer_id: str | None  # None: a guest order (never evaluated, but observed)
    at: float
    order_ids: tuple[str, ...]  # in processing order
    products: tuple[str, ...]  # distinct, first-seen order


def baskets_from_orders(
    orders: Iterable[Mapping[str, Any]],
    *,
    time_of: Callable[[Mapping[str, Any]], float],
    exclude: frozenset[str] = NON_MERCHANDISE,
) -> list[Basket]:
    """Placed orders (wire dicts, in processing order) -> baskets in time order.

    Cancelled orders are dropped; orders of one customer with the same time are merged; guest
    orders (no `customer_id`) stay one basket each; excluded product ids are removed and
    baskets left empty are dropped.
    """
    merged: dict[tuple[str, float], tuple[list[str], dict[str, None]]] = {}
    guests: list[tuple[float, int, Basket]] = []
    first_seen: dict[tuple[str, float], int] = {}
    for n, order in enumerate(orders):
        if order.get("type") != "order" or order.get("action") != "placed":
            continue
        products = [
            str(line["product_id"])
            for line in order.get("lines") or ()
            if line.get("product_id") and str(line["product_id"]) not in exclude
        ]
        at = time_of(order)
        order_id = str(order.get("order_id"))
        customer = order.get("customer_id")
        if not customer:
            if products:
                distinct = tuple(dict.fromkeys(products))
                guests.append((at, n, Basket(None, at, (order_id,), distinct)))
            continue
        key = (str(customer), at)
        ids, seen = merged.setdefault(key, ([], {}))
        first_seen.setdefault(key, n)
        ids.append(order_id)
        seen.update(dict.fromkeys(products))
    out: list[tuple[float, int, Basket]] = list(guests)
    for (customer, at), (ids, seen) in merged.items():
        if seen:
            out.append(
                (at, first_seen[(customer, at)], Basket(customer, at, tuple(ids), tuple(seen)))
            )
    out.sort(key=lambda x: (x[0], x[1]))
    return [b for _at, _n, b in out]


class Predictor(Protocol):
    """An online recommender: observe a basket, then recommend after it."""

    def observe(self, basket: Basket) -> None:
        """Learn from one basket (called before `recommend` for that basket)."""

    def recommend(self, basket: Basket, k: int) -> list[str]:
        """Up to `k` products to recommend right after `basket`."""


@dataclass
class HitRate:
    """Hit rate @k of one method on one sequence of baskets."""

    eligible: int = 0  # identified baskets with a next basket of the same customer
    covered: int = 0  # ... that got at least one recommended item
    hits: int = 0  # ... whose recommended items include a product of the next basket

    @property
    def hit_rate(self) -> float:
        """Hits / covered baskets."""
        return self.hits / self.covered if self.covered else 0.0

    @property
    def hit_rate_all(self) -> float:
        """Hits / eligible baskets (no recommendation counts as a miss)."""
        return self.hits / self.eligible if self.eligible else 0.0

    @property
    def coverage(self) -> float:
        """Covered / eligible baskets."""
        return self.covered / self.eligible if self.eligible else 0.0


def next_baskets(baskets: Sequence[Basket]) -> dict[int, Basket]:
    """Index of each identified basket -> the same customer's next basket (when there is one)."""
    out: dict[int, Basket] = {}
    last: dict[str, int] = {}
    for i, b in enumerate(baskets):
        if b.customer_id is None:
            continue
        prev = last.get(b.customer_id)
        if prev is not None:
            out[prev] = b
        last[b.customer_id] = i
    return out


def score(
    baskets: Sequence[Basket], recommended: Mapping[int, Sequence[str]], k: int = K
) -> HitRate:
    """Hit rate of recommendations given per basket index (missing index: no recommendation)."""
    result = HitRate()
    for i, target in next_baskets(baskets).items():
        result.eligible += 1
        items = list(recommended.get(i, ()))[:k]
        if not items:
            continue
        result.covered += 1
        if set(items) & set(target.products):
            result.hits += 1
    return result


def run(baskets: Sequence[Basket], predictor: Predictor, k: int = K) -> HitRate:
    """Feed the baskets in order to an online predictor and score its recommendations."""
    wanted = next_baskets(baskets)
    recommended: dict[int, list[str]] = {}
    for i, b in enumerate(baskets):
        predictor.observe(b)
        if i in wanted:
            recommended[i] = predictor.recommend(b, k)
    return score(baskets, recommended, k)


def _top(scores: Mapping[str, float], k: int, skip: Iterable[str] = ()) -> list[str]:
    """The `k` best-scored products not in `skip` (ties: product id)."""
    excluded = set(skip)
    best = heapq.nsmallest(
        k + len(excluded), ((-s, p) for p, s in scores.items() if s > 0)
    )  # a few spares: skipped ones are in there at most once each
    return [p for _s, p in best if p not in excluded][:k]


@dataclass
class GlobalPopularity:
    """The products in the most baskets so far (guests included)."""

    exclude_just_bought: bool = True
    counts: dict[str, float] = field(default_factory=dict)

    def observe(self, basket: Basket) -> None:
        """Count the basket's products."""
        for p in basket.products:
            self.counts[p] = self.counts.get(p, 0) + 1

    def recommend(self, basket: Basket, k: int) -> list[str]:
        """Top `k` by basket count (optionally without the basket's own products)."""
        return _top(self.counts, k, basket.products if self.exclude_just_bought else ())


@dataclass
class CoPurchaseCounts:
    """Products most often bought in the same earlier basket as the just-placed products."""

    pairs: dict[str, Counter[str]] = field(default_factory=dict)

    def recommend(self, basket: Basket, k: int) -> list[str]:
        """Top `k` by summed pair counts, the basket's own products excluded.

        Called after `observe` of the same basket, the counts include its own pairs, but those
        only raise its own (excluded) products: the result is that of earlier baskets alone.
        """
        scores: dict[str, float] = {}
        for p in basket.products:
            for other, n in self.pairs.get(p, {}).items():
                scores[other] = scores.get(other, 0) + n
        return _top(scores, k, basket.products)

    def observe(self, basket: Basket) -> None:
        """Count every pair of products of the basket (a product with itself too: never used)."""
        for a in basket.products:
            partners = self.pairs.get(a)
            if partners is None:
                partners = self.pairs[a] = Counter()
            partners.update(basket.products)


@dataclass
class OwnHistory:
    """The customer's own products so far, by frequency (ties: recency) or by recency."""

    by: str = "frequency"
    history: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)

    def observe(self, basket: Basket) -> None:
        """Remember the basket's products for its customer."""
        if basket.customer_id is None:
            return
        own = self.history.setdefault(basket.customer_id, {})
        for p in basket.products:
            n, _last = own.get(p, (0, 0.0))
            own[p] = (n + 1, basket.at)

    def recommend(self, basket: Basket, k: int) -> list[str]:
        """Top `k` of the customer's products."""
        own = self.history.get(basket.customer_id or "", {})
        if self.by == "recency":
            ranked = sorted(own.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
        else:
            ranked = sorted(own.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        return [p for p, _v in ranked[:k]]
