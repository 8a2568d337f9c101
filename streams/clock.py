"""The processing clock: event time when replaying, event time plus wall-clock progress live.

Live, wall time is also a floor: a partition with no event since the worker started (after a
restart) still fires its restored deadlines on time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Monotonic processing time; `observe` event times, read `now()`."""

    mode: str = "live"
    wall: Callable[[], float] = time.time
    _event_time: float = field(default=0.0, init=False)
    _wall_at_event: float = field(default=0.0, init=False)

    def observe(self, event_time: float) -> float:
        """Advance with an event's time (never backwards); return now()."""
        if event_time > self.now():
            self._event_time = event_time
            self._wall_at_event = self.wall()
        return self.now()

    def advance_to(self, t: float) -> None:
        """Move event time forward to `t` (replay flush)."""
        if t > self._event_time:
            self._event_time = t
            self._wall_at_event = self.wall()

    @property
    def event_time(self) -> float:
        """The latest event time seen (0 before any)."""
        return self._event_time

    def now(self) -> float:
        """Current processing time."""
        if self.mode == "event":
            return self._event_time
        wall = self.wall()
        if not self._wall_at_event:
            return wall
        return max(wall, self._event_time + max(0.0, wall - self._wall_at_event))
