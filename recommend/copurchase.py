"""Online "frequently bought together" counts with exponential time decay (pure, in-memory).

Every order adds 1 to the weight of each distinct product in it and 1 to the weight of each
ordered pair of distinct products in it. Weights decay with a half-life: a unit observed at time
`s` is worth `2 ** (-(t - s) / half_life)` at time `t`. Each weight is stored as
`[value, at]` (its worth at time `at`), so adding an observation in or out of time order gives
the same result.

`top(a, k, t)`: for every product `b` bought with `a`, support = decayed pair weight (a, b) and
confidence = support / decayed weight of `a`, both at `t`; pairs below `min_support` or
`min_confidence` are dropped; the score is the confidence; ties: higher support, then product id.

Repurchases: `observe_order(..., repeats=ids)` also adds 1 to the decayed repurchase weight of
each of those products (the customer had bought it in an earlier order); `repeat_share(p, t)` =
repurchase weight / order weight: how much of a product's demand comes back (replenishment
evidence for customers who bought it only once so far).

Memory is bounded: at most `max_pairs_per_product` partners per product and `max_products`
products (the partner / product with the least decayed weight is evicted when a new one comes).

Shared by every worker: `observe_once(order_key, ...)` counts an order the first time its key
(customer key and order id) is seen, so the worker that placed it (at once) and the log every
worker reads (`order_record`, topic `journeystream.copurchase`) count it once; the last
`max_seen_orders` keys are remembered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DAY = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CoPurchaseConfig:
    """Decay and threshold settings."""

    half_life_days: float = 30.0
    min_support: float = 1.0
    min_confidence: float = 0.1
    max_pairs_per_product: int = 50
    max_products: int = 50_000
    max_order_products: int = 50  # larger orders: only the first 50 distinct products pair up
    max_seen_orders: int = 200_000  # order keys remembered against duplicates (oldest dropped)

    def __post_init__(self) -> None:
        """Reject impossible settings."""
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be > 0")
        if self.min_support < 0 or not 0 <= self.min_confidence <= 1:
            raise ValueError("min_support must be >= 0 and min_confidence in 0..1")
        if self.max_pairs_per_product < 1 or self.max_products < 1 or self.max_seen_orders < 1:
            raise ValueError("caps must be >= 1")


@dataclass
class CoPurchase:
    """Decayed product and pair weights from observed orders."""

    config: CoPurchaseConfig = field(default_factory=CoPurchaseConfig)
    items: dict[str, list[float]] = field(default_factory=dict)
    pairs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    repeats: dict[str, list[float]] = field(default_factory=dict)
    seen: dict[str, None] = field(default_factory=dict)  # order keys counted, oldest first

    def observe_once(
        self, order_key: str, product_ids: Iterable[str], t: float, *, repeats: Iterable[str] = ()
    ) -> bool:
        """Count an order unless its key was counted already; True when it was counted now."""
        if order_key in self.seen:
            return False
        self.seen[order_key] = None
        if len(self.seen) > self.config.max_seen_orders:
            del self.seen[next(iter(self.seen))]
        self.observe_order(product_ids, t, repeats=repeats)
        return True

    def _decay(self, value: float, at: float, t: float) -> float:
        return value * math.pow(2.0, -(t - at) / (self.config.half_life_days * DAY))

    def _add(self, cell: list[float] | None, t: float) -> list[float]:
        if cell is None:
            return [1.0, t]
        value, at = cell
        if t >= at:
            return [self._decay(value, at, t) + 1.0, t]
        return [value + self._decay(1.0, t, at), at]

    def weight(self, product_id: str, t: float) -> float:
        """Decayed number of orders containing the product, at time `t`."""
        cell = self.items.get(product_id)
        return 0.0 if cell is None else self._decay(cell[0], cell[1], t)

    def pair_weight(self, a: str, b: str, t: float) -> float:
        """Decayed number of orders containing both products, at time `t`."""
        cell = self.pairs.get(a, {}).get(b)
        return 0.0 if cell is None else self._decay(cell[0], cell[1], t)

    def repeat_share(self, product_id: str, t: float) -> float:
        """Decayed repurchases / decayed orders of a product, at time `t` (0 when never ordered)."""
        base = self.weight(product_id, t)
        cell = self.repeats.get(product_id)
        if base <= 0 or cell is None:
            return 0.0
        return min(self._decay(cell[0], cell[1], t) / base, 1.0)

    def observe_order(
        self, product_ids: Iterable[str], t: float, *, repeats: Iterable[str] = ()
    ) -> None:
        """Count one order (duplicates count once); `repeats`: its products bought before."""
        distinct = list(dict.fromkeys(p for p in product_ids if p))
        for pid in distinct:
            if pid not in self.items and len(self.items) >= self.config.max_products:
                self._evict_product(t)
            self.items[pid] = self._add(self.items.get(pid), t)
        for pid in set(repeats) & set(distinct):
            self.repeats[pid] = self._add(self.repeats.get(pid), t)
        distinct = distinct[: self.config.max_order_products]
        for a in distinct:
            partners = self.pairs.setdefault(a, {})
            for b in distinct:
                if a == b:
                    continue
                if b not in partners and len(partners) >= self.config.max_pairs_per_product:
                    self._prune(partners, t)
                partners[b] = self._add(partners.get(b), t)

    def _prune(self, partners: dict[str, Any], t: float) -> None:
        """Keep the strongest three quarters of a full partner list (one sort, amortised)."""
        keep = max(1, self.config.max_pairs_per_product * 3 // 4)
        ranked = sorted(
            partners, key=lambda p: (-self._decay(partners[p][0], partners[p][1], t), p)
        )  # strongest decayed weight first; ties: id
        for p in ranked[keep:]:
            del partners[p]

    def _evict_product(self, t: float) -> None:
        weakest = min(self.items, key=lambda p: (self.weight(p, t), p))
        del self.items[weakest]
        self.pairs.pop(weakest, None)
        self.repeats.pop(weakest, None)

    def top(self, product_id: str, k: int, t: float) -> list[tuple[str, float]]:
        """The `k` best partners of a product as (product id, confidence), best first."""
        base = self.weight(product_id, t)
        if base <= 0 or k <= 0:
            return []
        ranked: list[tuple[float, float, str]] = []
        for other, (value, at) in self.pairs.get(product_id, {}).items():
            support = self._decay(value, at, t)
            confidence = min(support / base, 1.0)
            if support + 1e-9 < self.config.min_support:
                continue
            if confidence + 1e-9 < self.config.min_confidence:
                continue
            ranked.append((confidence, support, other))
        ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
        return [(other, round(conf, 6)) for conf, _s, other in ranked[:k]]

    def popular(self, product_ids: Iterable[str], k: int, t: float) -> list[tuple[str, float]]:
        """The `k` products among `product_ids` with the highest decayed order weight (> 0)."""
        scored = [(self.weight(p, t), p) for p in product_ids]
        scored = [s for s in scored if s[0] > 0]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [(p, round(w, 6)) for w, p in scored[:k]]

    def to_dict(self) -> dict[str, Any]:
        """orjson-friendly snapshot (the config is not included)."""
        return {
            "items": {p: list(c) for p, c in self.items.items()},
            "pairs": {a: {b: list(c) for b, c in ps.items()} for a, ps in self.pairs.items()},
            "repeats": {p: list(c) for p, c in self.repeats.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: CoPurchaseConfig | None = None) -> CoPurchase:
        """Inverse of `to_dict`."""
        cp = cls(config=config or CoPurchaseConfig())
        cp.items = {str(p): [float(c[0]), float(c[1])] for p, c in data.get("items", {}).items()}
        cp.pairs = {
            str(a): {str(b): [float(c[0]), float(c[1])] for b, c in ps.items()}
            for a, ps in data.get("pairs", {}).items()
        }
        cp.repeats = {
            str(p): [float(c[0]), float(c[1])] for p, c in data.get("repeats", {}).items()
        }
        return cp


def order_key(customer_key: str, order_id: str) -> str:
    """What two copies of one order share: the customer key and the order id."""
    return f"{customer_key}|{order_id}"


@dataclass(frozen=True, slots=True)
class SharedOrder:
    """A `copurchase_order` record as counted: its key, products, time and repeats."""

    key: str
    products: tuple[str, ...]
    at: float
    repeats: tuple[str, ...]


def shared_order(record: Any) -> SharedOrder | None:
    """The order of a `copurchase_order` record (decoded JSON); None when it is not one."""
    if not isinstance(record, dict) or record.get("type") != "copurchase_order":
        return None
    customer_key, order_id = record.get("customer_key"), record.get("order_id")
    products, repeats = record.get("products"), record.get("repeats")
    if not (isinstance(customer_key, str) and isinstance(order_id, str)):
        return None
    if not (isinstance(products, list) and isinstance(repeats, list)):
        return None
    try:
        at = datetime.fromisoformat(str(record.get("occurred_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return SharedOrder(
        order_key(customer_key, order_id),
        tuple(str(p) for p in products),
        at.timestamp(),
        tuple(str(p) for p in repeats),
    )
