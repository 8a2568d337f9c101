"""Price tiers per category from the catalog, falling back to prices seen in events (pure)."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from typing import Any

from schemas.records import CatalogItem

LOW_BELOW_MEDIAN = 0.4  # price < 0.4 x the category's median product price: "low"
HIGH_ABOVE_MEDIAN = 1.25  # price > 1.25 x the median: "high"; between: "mid"
MIN_PRODUCTS = 3  # fewer distinct products in a category: tier unknown
MAX_PRODUCTS_PER_CATEGORY = 5000


@dataclass
class PriceTiers:
    """Each category's distinct product prices; catalog prices override prices seen in events."""

    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    from_catalog: set[tuple[str, str]] = field(default_factory=set)
    _sorted: dict[str, list[float]] = field(default_factory=dict)

    def observe(self, category: str, product_id: str, price: float, *, catalog: bool) -> None:
        """Record a product's price (event prices never replace catalog prices)."""
        if price <= 0 or not category:
            return
        products = self.prices.setdefault(category, {})
        ident = (category, product_id)
        if not catalog and ident in self.from_catalog:
            return
        if products.get(product_id) == price:
            return
        if product_id not in products and len(products) >= MAX_PRODUCTS_PER_CATEGORY:
            return
        products[product_id] = price
        if catalog:
            self.from_catalog.add(ident)
        self._sorted.pop(category, None)

    def median(self, category: str) -> float | None:
        """Median product price of a category (None with too few products)."""
        values = self._sorted.get(category)
        if values is None:
            values = []
            for price in self.prices.get(category, {}).values():
                insort(values, price)
            self._sorted[category] = values
        if len(values) < MIN_PRODUCTS:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def tier_of(self, category: str, price: float) -> str | None:
        """ "low", "mid" or "high" for a price in its category; None when unknown."""
        median = self.median(category)
        if median is None:
            return None
        if price > HIGH_ABOVE_MEDIAN * median:
            return "high"
        if price < LOW_BELOW_MEDIAN * median:
            return "low"
        return "mid"


MAX_ITEMS = 200_000  # catalog items kept in memory; further new products are ignored


@dataclass
class Catalog:
    """In-memory catalog: product_id -> {title, category, price, stock, attributes}, plus tiers.

    `stock` is None when unknown (treated as in stock). Catalog prices feed `tiers`.
    """

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    tiers: PriceTiers = field(default_factory=PriceTiers)
    _by_category: dict[str, dict[str, None]] = field(default_factory=dict)

    def observe_item(self, item: CatalogItem) -> None:
        """Insert or replace one catalog item (its price also feeds the price tiers)."""
        self.put(
            item.product_id,
            title=item.title,
            category=item.category,
            price=item.price,
            stock=item.stock,
            attributes=dict(item.attributes),
        )

    def put(
        self,
        product_id: str,
        *,
        title: str = "",
        category: str = "",
        price: float | None = None,
        stock: int | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Insert or replace one product from plain values."""
        old = self.items.get(product_id)
        if old is None and len(self.items) >= MAX_ITEMS:
            return
        if old is not None and old["category"] != category:
            self._by_category.get(old["category"], {}).pop(product_id, None)
        self.items[product_id] = {
            "title": title,
            "category": category,
            "price": price,
            "stock": stock,
            "attributes": dict(attributes or {}),
        }
        self._by_category.setdefault(category, {})[product_id] = None
        if price is not None and category:
            self.tiers.observe(category, product_id, price, catalog=True)

    def get(self, product_id: str) -> dict[str, Any] | None:
        """The item of a product, or None when unknown."""
        return self.items.get(product_id)

    def price_of(self, product_id: str) -> float | None:
        """The catalog price of a known product (None when unknown or without a price)."""
        item = self.items.get(product_id)
        return None if item is None or item["price"] is None else float(item["price"])

    def category_of(self, product_id: str) -> str | None:
        """The category of a known product."""
        item = self.items.get(product_id)
        return item["category"] if item is not None else None

    def in_stock(self, product_id: str) -> bool:
        """False only when the catalog knows the product and its stock is <= 0."""
        item = self.items.get(product_id)
        if item is None or item["stock"] is None:
            return True
        return bool(item["stock"] > 0)

    def products_in(self, category: str) -> list[str]:
        """Products of a category or of its sub-categories (`baby` covers `baby/formula`)."""
        out: list[str] = []
        prefix = category + "/"
        for cat, products in self._by_category.items():
            if cat == category or cat.startswith(prefix):
                out.extend(products)
        return out

    def matches(
        self, product_id: str, category: str | None, attributes: dict[str, Any] | None
    ) -> bool:
        """Whether a known product is in `category` (or below it) with all `attributes`."""
        item = self.items.get(product_id)
        if item is None:
            return False
        return item_matches(item["category"], item["attributes"], category, attributes)


def category_covers(parent: str, category: str) -> bool:
    """Whether `category` is `parent` or one of its sub-categories."""
    return category == parent or category.startswith(parent + "/")


def item_matches(
    category: str,
    attributes: dict[str, Any],
    want_category: str | None,
    want_attributes: dict[str, Any] | None,
) -> bool:
    """Category (prefix by path segment) and attribute equality check."""
    if want_category is not None and not category_covers(want_category, category):
        return False
    for key, value in (want_attributes or {}).items():
        if key not in attributes or attributes[key] != value:
            return False
    return True
