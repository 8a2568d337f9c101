"""Journey core: stages, segments, purchase paths, bounded profile, One ID and dedupe (pure).

Entry point per customer key: `journey.customer.apply(state, message, now, config, key=...)`.
The parts: `journey.stages` (the journey itself: `TRANSITIONS`, `apply`, `merge`,
`segment_at`), `journey.cart` (the customer's one cart, kept in the journey and read by the
abandonment core), `journey.identity` (customer keys and the One ID protocol steps) and
`journey.dedupe` (bounded memory of applied event ids); `journey.abandonment` is its own core.
Only stdlib and `schemas.records`.
"""

from journey.cart import Cart, CartLine
from journey.config import DEFAULT_CONFIG, JourneyConfig
from journey.customer import CustomerState
from journey.customer import apply as apply_message
from journey.dedupe import SeenEvents, seen_before
from journey.identity import IdentityState, customer_key, event_from_dict, event_to_dict
from journey.stages import (
    PATHS,
    SEGMENTS,
    STAGES,
    TRANSITIONS,
    TRIGGERS,
    CustomerJourney,
    merge,
    next_stage,
    profile,
    segment_at,
)
from journey.stages import apply as apply_event

__all__ = [
    "DEFAULT_CONFIG",
    "PATHS",
    "SEGMENTS",
    "STAGES",
    "TRANSITIONS",
    "TRIGGERS",
    "Cart",
    "CartLine",
    "CustomerJourney",
    "CustomerState",
    "IdentityState",
    "JourneyConfig",
    "SeenEvents",
    "apply_event",
    "apply_message",
    "customer_key",
    "event_from_dict",
    "event_to_dict",
    "merge",
    "next_stage",
    "profile",
    "seen_before",
    "segment_at",
]
