"""The demo scenario's products as a `Catalog`, for the recommendation unit tests."""

from __future__ import annotations

from recommend.catalog import Catalog
from replay.scenario import CATALOG
from schemas.records import CatalogItem, OrderLine

PRODUCTS = {p.product_id: p for p in CATALOG}


def scenario_catalog(occurred_at: float, **stock: int) -> Catalog:
    """Every scenario product, observed at `occurred_at`; `stock` overrides (ids with `_`)."""
    catalog = Catalog()
    for n, p in enumerate(CATALOG):
        catalog.observe_item(
            CatalogItem(
                event_id=f"cat-{n}",
                occurred_at=occurred_at,
                product_id=p.product_id,
                title=p.title,
                category_path=p.path,
                price=p.price,
                stock=stock.get(p.product_id.replace("-", "_"), p.stock),
                attributes=dict(p.attributes),
            )
        )
    return catalog


def order_lines(*pids: str) -> tuple[OrderLine, ...]:
    """One line of quantity 1 at the catalog price per scenario product id."""
    return tuple(
        OrderLine(
            product_id=pid,
            quantity=1,
            unit_price=PRODUCTS[pid].price,
            category=PRODUCTS[pid].category,
        )
        for pid in pids
    )
