"""Tunables of the journey core: sessions, stages, segments, One ID, dedupe and state bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from journey.abandonment import AbandonmentConfig

NEW_PARENT_KEYWORDS = ("baby", "infant", "maternity", "diaper", "formula", "stroller")


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyConfig:
    """Every threshold and bound of the journey core (times in seconds, money in order currency)."""

    # abandonment rules (cart delay, browse threshold, recovery window)
    abandonment: AbandonmentConfig = field(default_factory=AbandonmentConfig)
    # sessions and stages
    session_gap_s: float = 1800
    seed_category_views: int = 3
    # segments
    lapsed_after_s: float = 90 * 86400
    # the operations view: the store's time zone (day, week and month boundaries) and how many
    # of a customer's most recent active days are kept (journey.activity)
    timezone: str = "UTC"
    activity_days: int = 400
    # an event earlier than `last_seen - out_of_order_grace_s` is "out of order"
    out_of_order_grace_s: float = 0.0
    # late events within this much event time of the customer's newest event are re-sequenced:
    # the journey is rebuilt as if they had arrived in order (at most `reorder_max_events` kept)
    reorder_window_s: float = 3600.0
    reorder_max_events: int = 32
    # One ID
    anonymous_id_cap: int = 5
    link_requests_cap: int = 20
    # dedupe
    dedupe_window_s: float = 86400
    dedupe_max_ids: int = 1000
    # profile tags and price band (average unit price of the customer's orders)
    high_value_spend: float = 1000.0
    price_band_low: float = 25.0
    price_band_high: float = 100.0
    new_parent_keywords: tuple[str, ...] = NEW_PARENT_KEYWORDS
    favourite_categories: int = 5
    # state bounds
    max_categories: int = 50
    max_session_categories: int = 50
    max_recent_views: int = 50
    max_cart_lines: int = 100
    max_recent_orders: int = 50
    max_recent_purchases: int = 50
    max_purchase_categories: int = 50
    max_text_len: int = 200

    def __post_init__(self) -> None:
        """Reject settings that would break the rules or the state bounds."""
        if self.session_gap_s <= 0 or self.lapsed_after_s <= 0 or self.dedupe_window_s <= 0:
            raise ValueError("session_gap_s, lapsed_after_s and dedupe_window_s must be positive")
        if self.out_of_order_grace_s < 0 or self.reorder_window_s < 0:
            raise ValueError("out_of_order_grace_s and reorder_window_s must be >= 0")
        if self.price_band_low > self.price_band_high:
            raise ValueError("price_band_low must be <= price_band_high")
        if self.max_text_len < 32:
            raise ValueError("max_text_len must be >= 32")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        for name in (
            "seed_category_views",
            "anonymous_id_cap",
            "link_requests_cap",
            "dedupe_max_ids",
            "favourite_categories",
            "max_categories",
            "max_session_categories",
            "max_recent_views",
            "max_cart_lines",
            "max_recent_orders",
            "max_recent_purchases",
            "max_purchase_categories",
            "reorder_max_events",
            "activity_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


DEFAULT_CONFIG = JourneyConfig()
