"""Bounded, time-bucketed memory of event ids already applied for one customer key.

Ids are grouped in buckets of one hour of *event* time (`occurred_at // 3600`). The newest bucket
seen sets the window: buckets more than `ceil(dedupe_window_s / 3600)` hours behind it are
dropped. The total number of ids is capped at `dedupe_max_ids`; over the cap the oldest buckets
go first (and, if one bucket alone is over the cap, its oldest ids).

`seen_before` looks an id up in every bucket (so a re-sent event with a re-stamped time is still
caught) and records it when new. An event older than the window behind the newest bucket cannot
be remembered: it is reported as not seen and is not recorded (it is applied; dropping it would
lose data, and re-delivery that late is outside the at-least-once window we defend against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from journey.config import JourneyConfig

BUCKET_S = 3600


@dataclass(slots=True)
class SeenEvents:
    """Event ids by hour bucket of occurred_at; `total` ids; `newest` bucket hour (None: empty)."""

    buckets: dict[int, dict[str, None]] = field(default_factory=dict)
    total: int = 0
    newest: int | None = None

    def __contains__(self, event_id: object) -> bool:
        """Whether the id is remembered in any bucket."""
        return any(event_id in ids for ids in self.buckets.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain, orjson-friendly form: buckets as `[[hour, [ids...]], ...]` oldest first."""
        return {
            "newest": self.newest,
            "buckets": [[h, list(self.buckets[h])] for h in sorted(self.buckets)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SeenEvents:
        """Inverse of `to_dict` (None or {} gives an empty memory)."""
        seen = cls()
        if not data:
            return seen
        for hour, ids in data.get("buckets", ()):
            bucket = dict.fromkeys(ids)
            seen.buckets[int(hour)] = bucket
            seen.total += len(bucket)
        newest = data.get("newest")
        seen.newest = int(newest) if newest is not None else max(seen.buckets, default=None)
        return seen


def window_hours(config: JourneyConfig) -> int:
    """How many whole hour buckets behind the newest one are kept."""
    return math.ceil(config.dedupe_window_s / BUCKET_S)


def seen_before(seen: SeenEvents, event_id: str, occurred_at: float, config: JourneyConfig) -> bool:
    """True if the id was already recorded; otherwise record it (when inside the window)."""
    hour = int(occurred_at // BUCKET_S)
    buckets = seen.buckets
    own = buckets.get(hour)
    if own is not None and event_id in own:
        return True
    for ids in buckets.values():
        if event_id in ids:
            return True
    _record(seen, event_id, hour, config)
    return False


def absorb(target: SeenEvents, source: SeenEvents, config: JourneyConfig) -> SeenEvents:
    """Add every id of `source` to `target` (window and cap still apply); returns `target`."""
    for hour in sorted(source.buckets):
        for event_id in source.buckets[hour]:
            if event_id not in target:
                _record(target, event_id, hour, config)
    return target


def _record(seen: SeenEvents, event_id: str, hour: int, config: JourneyConfig) -> None:
    keep_h = window_hours(config)
    newest = seen.newest
    if newest is not None and hour < newest - keep_h:
        return
    bucket = seen.buckets.get(hour)
    if bucket is None:
        bucket = seen.buckets[hour] = {}
    bucket[event_id] = None
    seen.total += 1
    if newest is None or hour > newest:
        seen.newest = hour
        for old in [h for h in seen.buckets if h < hour - keep_h]:
            seen.total -= len(seen.buckets.pop(old))
    cap = config.dedupe_max_ids
    while seen.total > cap:
        if len(seen.buckets) > 1:
            seen.total -= len(seen.buckets.pop(min(seen.buckets)))
        else:
            only = next(iter(seen.buckets.values()))
            del only[next(iter(only))]
            seen.total -= 1
