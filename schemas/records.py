"""Typed domain events: what the wire contracts decode into (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

CartAction = Literal["add", "remove", "set_quantity"]
OrderAction = Literal["placed", "cancelled"]
LinkReason = Literal["login", "signup"]
ViewAction = Literal["view", "favourite"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Fields every customer event carries; `occurred_at` is epoch seconds (UTC)."""

    event_id: str
    occurred_at: float
    anonymous_id: str | None = None
    customer_id: str | None = None
    channel: str | None = None
    store_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PageView(Envelope):
    """A product page viewed, or (`action` "favourite") the product added to the favourites."""

    product_id: str
    category: str
    price: float | None = None
    brand: str | None = None
    title: str | None = None
    action: ViewAction = "view"

    @property
    def is_favourite(self) -> bool:
        """Whether the event is a favourite (a seeding signal, not a view)."""
        return self.action == "favourite"


@dataclass(frozen=True, slots=True, kw_only=True)
class CartChange(Envelope):
    """A cart line added, removed, or its quantity set (quantity 0 removes it)."""

    action: CartAction
    product_id: str
    quantity: int
    price: float | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLine:
    """One line of an order."""

    product_id: str
    quantity: int
    unit_price: float
    category: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Order(Envelope):
    """An order placed or cancelled."""

    action: OrderAction
    order_id: str
    lines: tuple[OrderLine, ...]
    total: float
    currency: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogItem:
    """A catalog item's current facts (not a customer event: keyed by product)."""

    event_id: str
    occurred_at: float
    product_id: str
    title: str
    category_path: tuple[str, ...]
    price: float
    stock: int
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str:
        """The category key used in page views: the path joined by '/'."""
        return "/".join(self.category_path)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityLink(Envelope):
    """An anonymous id linked to a customer id (login or sign-up)."""

    reason: LinkReason = "login"


CustomerEvent: TypeAlias = PageView | CartChange | Order | IdentityLink
Event: TypeAlias = CustomerEvent | CatalogItem

EVENT_TYPES: dict[str, type] = {
    "page_view": PageView,
    "cart": CartChange,
    "order": Order,
    "catalog_item": CatalogItem,
    "identity_link": IdentityLink,
}
TYPE_NAMES: dict[type, str] = {cls: name for name, cls in EVENT_TYPES.items()}


def type_name(event: Event) -> str:
    """The wire `type` of a decoded event."""
    return TYPE_NAMES[type(event)]
