"""One ID: customer keys, per-key identity state and the pure steps of the link/merge protocol.

Keys: `c:<customer_id>` for an event with a customer id, else `a:<anonymous_id>`; an
`identity_link` is keyed by its anonymous side. The protocol (docs/ARCHITECTURE.md, "One ID"):

1. a link (an `identity_link`, or a `link_request` sent by `c:<cust>` for an event carrying both
   ids whose anonymous id it has not merged nor asked for) is delivered to `a:<anon>`;
2. at `a:<anon>` (`on_link`): not aliased -> alias to `c:<cust>` (the caller sends the anonymous
   snapshot in an `identity_merge`); aliased to the same customer -> no-op; aliased to another
   customer -> conflict, ignored (two customers are never merged);
3. at `c:<cust>` (`on_merge`): a snapshot is merged once per anonymous id, and only while fewer
   than `anonymous_id_cap` anonymous ids were merged;
4. later events at an aliased `a:<anon>` are forwarded to `c:<cust>` (`forward_target`).

Blocked id values are removed upstream by `schemas.contracts.decode`; this module trusts ids.
`event_to_dict` / `event_from_dict` give a JSON-friendly form of events for internal messages:
the record's field names plus `type`, with `occurred_at` as epoch seconds and order lines as
objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from journey.config import JourneyConfig
from schemas.records import (
    EVENT_TYPES,
    CartChange,
    CustomerEvent,
    IdentityLink,
    Order,
    OrderLine,
    PageView,
    type_name,
)

CUSTOMER_PREFIX = "c:"
ANONYMOUS_PREFIX = "a:"
CUSTOMER_EVENT_TYPES = (PageView, CartChange, Order, IdentityLink)

LinkOutcome = Literal["aliased", "same", "conflict"]
MergeOutcome = Literal["merged", "already", "cap"]


def customer_key(event: CustomerEvent) -> str:
    """The customer key an event belongs to (raises ValueError for an event with no id)."""
    if type(event) is IdentityLink and event.anonymous_id is not None:
        return ANONYMOUS_PREFIX + event.anonymous_id
    if event.customer_id is not None:
        return CUSTOMER_PREFIX + event.customer_id
    if event.anonymous_id is not None:
        return ANONYMOUS_PREFIX + event.anonymous_id
    raise ValueError(f"event {event.event_id!r} has no usable id")


def is_customer_key(key: str) -> bool:
    """Whether a key is a customer (`c:`) key."""
    return key.startswith(CUSTOMER_PREFIX)


def is_anonymous_key(key: str) -> bool:
    """Whether a key is an anonymous (`a:`) key."""
    return key.startswith(ANONYMOUS_PREFIX)


@dataclass(slots=True)
class IdentityState:
    """Identity facts of one key: an anonymous key's alias; a customer key's merges and requests."""

    alias_of: str | None = None
    merged: list[str] = field(default_factory=list)
    link_requested: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain, orjson-friendly form."""
        return {
            "alias_of": self.alias_of,
            "merged": list(self.merged),
            "link_requested": list(self.link_requested),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IdentityState:
        """Inverse of `to_dict` (None or {} gives an empty state)."""
        if not data:
            return cls()
        return cls(
            alias_of=data.get("alias_of"),
            merged=list(data.get("merged") or ()),
            link_requested=list(data.get("link_requested") or ()),
        )


def forward_target(identity: IdentityState) -> str | None:
    """Step 4: where events of this (anonymous) key go instead, if it is aliased."""
    return identity.alias_of


def on_link(identity: IdentityState, target: str) -> LinkOutcome:
    """Step 2 at `a:<anon>`: alias it to customer key `target` unless already aliased."""
    if identity.alias_of is None:
        identity.alias_of = target
        return "aliased"
    return "same" if identity.alias_of == target else "conflict"


def wants_link(identity: IdentityState, anonymous_id: str, config: JourneyConfig) -> bool:
    """Step 1 at `c:<cust>`: should an event with this anonymous id trigger a link request?

    True (and the request is noted) when the id is neither merged nor already requested and the
    customer is under the cap; the requested list is bounded by `link_requests_cap`.
    """
    if anonymous_id in identity.merged or anonymous_id in identity.link_requested:
        return False
    if len(identity.merged) >= config.anonymous_id_cap:
        return False
    identity.link_requested.append(anonymous_id)
    if len(identity.link_requested) > config.link_requests_cap:
        del identity.link_requested[0]
    return True


def on_merge(identity: IdentityState, anonymous_id: str, config: JourneyConfig) -> MergeOutcome:
    """Step 3 at `c:<cust>`: accept (and note) an anonymous id's snapshot once, under the cap."""
    if anonymous_id in identity.merged:
        return "already"
    if len(identity.merged) >= config.anonymous_id_cap:
        return "cap"
    identity.merged.append(anonymous_id)
    if anonymous_id in identity.link_requested:
        identity.link_requested.remove(anonymous_id)
    return "merged"


def event_to_dict(event: CustomerEvent) -> dict[str, Any]:
    """JSON-friendly dict of an event: `type` plus its fields (order lines as objects)."""
    out: dict[str, Any] = {"type": type_name(event)}
    for f in fields(event):
        out[f.name] = getattr(event, f.name)
    if type(event) is Order:
        out["lines"] = [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "category": line.category,
            }
            for line in event.lines
        ]
    return out


def event_from_dict(data: dict[str, Any]) -> CustomerEvent | None:
    """Inverse of `event_to_dict`; None when the dict is not a customer event."""
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls not in CUSTOMER_EVENT_TYPES:
        return None
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    try:
        if cls is Order:
            kwargs["lines"] = tuple(OrderLine(**line) for line in kwargs.get("lines", ()))
        event: CustomerEvent = cls(**kwargs)
    except (TypeError, ValueError):
        return None
    return event
