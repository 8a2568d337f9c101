"""What a message on the customer agent's topics is, decided in one place (`classify`).

Internal-topic messages are JSON objects `{"type": "internal", "kind": ...}`. One forward format
serves both re-keying by the agent (a producer that did not key by customer) and forwarding by
the core (an anonymous id aliased to a customer): `journey.customer.forward_message`; a re-key
by the agent is marked `"rekey": true` because its event has not passed the late check yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from journey import customer as core
from journey.identity import customer_key, event_from_dict
from recommend import budget
from schemas import contracts
from schemas.records import CartChange, CatalogItem, CustomerEvent, PageView, type_name

TICK, FLUSH, FORGET = "tick", "flush", "forget"

PriceOf = Callable[[str], float | None]
"""A product's catalog price, None when the catalog does not know it."""


@dataclass(frozen=True, slots=True)
class CustomerInput:
    """An event or core message for the customer at `key` (its own key)."""

    key: bytes
    message: Any  # a CustomerEvent, or a core message dict (forward, identity merge, link)
    event: CustomerEvent | None  # the event carried, if any (dedupe, late check)
    event_type: str  # metrics label: the event's type, or "internal" (second hops, core messages)
    late_check: bool  # an event's first application: check it against the late grace


@dataclass(frozen=True, slots=True)
class Rekey:
    """An input event not keyed by its customer: forward it to its key."""

    key: bytes
    body: bytes
    event_type: str
    event: CustomerEvent


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    """A catalog item sent to an event topic: forward it to the catalog topic."""

    product_id: str
    event_type: str = "catalog_item"


@dataclass(frozen=True, slots=True)
class Tick:
    """Fire the partition's due deadlines (all of them when `flush`)."""

    flush: bool


@dataclass(frozen=True, slots=True)
class Forget:
    """Erase the customer at `key` (and, through the internal topic, its merged anonymous ids)."""

    key: bytes


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    """A discount trigger to reserve in the store-day's budget at `key` (`recommend.budget`)."""

    key: bytes
    reservation: budget.Reservation


@dataclass(frozen=True, slots=True)
class BadInput:
    """A message that cannot be processed: dead-letter it with a category and reason."""

    category: str
    reason: str
    event_type: str


Message = CustomerInput | Rekey | CatalogUpdate | Tick | Forget | BudgetRequest | BadInput


def internal_body(kind: str, **fields: Any) -> bytes:
    """Wire form of an internal-topic message."""
    return orjson.dumps({"type": "internal", "kind": kind, **fields})


def forward_body(event: CustomerEvent, from_key: bytes, *, rekey: bool) -> bytes:
    """Wire form of a forward (the core's format; `rekey` when the agent re-keys)."""
    body = core.forward_message(event, from_key.decode(errors="replace"))
    return orjson.dumps({"type": "internal", **body, **({"rekey": True} if rekey else {})})


def classify(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    internal_topic: str,
    now: float,
    max_bytes: int,
    future_tolerance: float,
    price_of: PriceOf | None = None,
) -> Message:
    """Decide what a consumed message is (never raises); `price_of` fills absent prices."""
    key = key or b""
    if topic == internal_topic:
        return _internal(key, value)
    decoded = contracts.decode(value, now, max_bytes=max_bytes, future_tolerance=future_tolerance)
    if isinstance(decoded, contracts.Rejection):
        return BadInput(decoded.category, decoded.message, "unknown")
    event_type = type_name(decoded)
    if isinstance(decoded, CatalogItem):
        return CatalogUpdate(decoded.product_id)
    if price_of is not None:
        decoded = with_catalog_price(decoded, price_of)
    proper = customer_key(decoded).encode()
    if proper != key:
        return Rekey(proper, forward_body(decoded, key, rekey=True), event_type, decoded)
    return CustomerInput(key, decoded, decoded, event_type, late_check=True)


def with_catalog_price(event: CustomerEvent, price_of: PriceOf) -> CustomerEvent:
    """A page view or cart change without a price, with the catalog's when it knows one."""
    if isinstance(event, PageView | CartChange) and event.price is None:
        try:
            price = price_of(event.product_id)
        except Exception:  # a lookup must never stop the stream: the price stays unknown
            return event
        if price is not None and price >= 0:
            return replace(event, price=float(price))
    return event


def _internal(key: bytes, value: bytes | None) -> Message:
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or obj.get("type") != "internal":
        return BadInput("internal_error", "unreadable internal message", "internal")
    kind = obj.get("kind")
    if kind in (TICK, FLUSH):
        return Tick(flush=kind == FLUSH)
    if kind == FORGET:
        return Forget(key)
    if kind == budget.REQUEST:
        reservation = budget.Reservation.from_message(obj)
        if reservation is None or reservation.key.encode() != key:
            return BadInput("internal_error", "malformed discount budget request", "internal")
        return BudgetRequest(key, reservation)
    message = {k: v for k, v in obj.items() if k not in ("type", "rekey")}
    if kind == core.FORWARD:
        event = obj.get("event")
        event = event_from_dict(event) if isinstance(event, dict) else None
        if event is None:
            return BadInput("internal_error", "forward without a customer event", "internal")
        # counted once, where it entered (as forwarded): the second hop is internal
        return CustomerInput(key, message, event, "internal", late_check=bool(obj.get("rekey")))
    return CustomerInput(key, message, None, "internal", late_check=False)
