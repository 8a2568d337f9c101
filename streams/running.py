"""Per owned partition, the operations view and the `/segments` counts, kept as states are stored.

Derived state only: a partition's `RunningView` (`journey.running`) and `RunningSegments`
(`journey.running_segments`) are built by one pass over its local states when its restore is
complete (`streams.tables.customers.on_restored`), follow every batch the state layer stores
(`CustomerStore.on_stored`: each changed key taken back with its old stored value and added
with its new one), and are dropped when the partition is claimed again or revoked. After a
restart they are rebuilt from the restored states, so they hold what a scan would count.

Cost: a build decodes each state of the partition once, in the event loop, before the
partition is processed; a stored batch decodes each written key's old and new value. A
request reads the sums only (`view`, `current`, `segments_view`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from journey.config import JourneyConfig
from journey.figures import PERIODS, period_bounds, period_of
from journey.running import RunningView, total
from journey.running_segments import RunningSegments, Segmented
from journey.running_segments import view as segment_view
from streams import kpis
from streams.app import settings
from streams.tables import customers as table

log = logging.getLogger(__name__)

Share = tuple[tuple[Any, Any] | None, Segmented | None]


class Running:
    """The owned partitions' running views and segment counts."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.views: dict[int, RunningView] = {}
        self.segments: dict[int, RunningSegments] = {}

    def build(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Count a partition's stored states (one pass), replacing what it had."""
        view, segments = RunningView(self.timezone), RunningSegments()
        for key, raw in items:
            customer, journey = share(raw)
            if customer is not None:
                view.add(key.decode(), *customer)
            segments.add(journey)
        self.views[partition], self.segments[partition] = view, segments

    def stored(
        self,
        partition: int,
        old: Mapping[bytes, bytes | None],
        new: Mapping[bytes, bytes | None],
    ) -> None:
        """A batch stored in a partition: each key taken back as it was, added as it is."""
        view, segments = self.views.get(partition), self.segments.get(partition)
        if view is None or segments is None:
            return  # not built (being restored): the build will read the stored states
        for key, raw in new.items():
            before = old.get(key)
            if before == raw:
                continue
            (was, was_journey), (now, now_journey) = share(before), share(raw)
            if was != now:
                view.change(key.decode(), was, now)
            if was_journey != now_journey:
                segments.remove(was_journey)
                segments.add(now_journey)

    def gone(self, partitions: Iterable[int]) -> None:
        """Forget partitions (claimed again, or revoked)."""
        for p in partitions:
            self.views.pop(p, None)
            self.segments.pop(p, None)

    def partitions(self) -> list[int]:
        """The partitions counted."""
        return sorted(self.views)

    def view(
        self, periods: Iterable[str] = PERIODS, *, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """What `streams.kpis.view` gives for the owned partitions' states, without reading them."""
        views = list(self.views.values())
        return {
            "timezone": self.timezone,
            **{p: total(views, p, start=start, end=end) for p in periods},
        }

    def current(self, day: str) -> dict[str, dict[str, Any] | None]:
        """The figures of the day, ISO week and month holding `day` (as `streams.kpis.current`)."""
        out: dict[str, dict[str, Any] | None] = {}
        for period in PERIODS:
            first, last = period_bounds(period_of(day, period), period)
            found = total(self.views.values(), period, start=first, end=last)
            out[period] = found[0] if found else None
        return out

    def segments_view(
        self, now: float, orders_by_path: Mapping[str, float], config: JourneyConfig
    ) -> dict[str, Any]:
        """What `journey.kpis.operations_view` gives for the owned partitions' journeys at `now`."""
        return segment_view(self.segments.values(), now, orders_by_path, config)


def share(raw: bytes | None) -> Share:
    """A stored state's (activity days, fired markers) and counted journey fields, or None."""
    if raw is None:
        return None, None
    state = orjson.loads(raw)
    if not isinstance(state, dict):
        return None, None
    journey = state.get("journey")
    return kpis.customer_of(state), Segmented.of(journey) if journey else None


class Watcher:
    """Keeps `running` current: told by the customer table and its store (a failure rebuilds)."""

    def __init__(self, running: Running) -> None:
        self.running = running

    def ready(self, partition: int) -> None:
        """A partition's restore is complete: count its states."""
        self.running.build(partition, table.store.items(partition))

    def gone(self, partitions: Iterable[int]) -> None:
        """Partitions claimed again or revoked."""
        self.running.gone(partitions)

    def stored(
        self,
        partition: int,
        old: Mapping[bytes, bytes | None],
        new: Mapping[bytes, bytes | None],
    ) -> None:
        """A batch stored; never raises into the write path (a failure recounts the partition)."""
        try:
            self.running.stored(partition, old, new)
        except Exception:
            log.exception("running view of partition %d: update failed, recounting", partition)
            try:
                self.ready(partition)
            except Exception:
                log.exception("running view of partition %d: recount failed, left out", partition)
                self.running.gone([partition])


running = Running(settings.store_timezone)
watcher = Watcher(running)
table.watchers.append(watcher)
table.store.on_stored = watcher.stored
