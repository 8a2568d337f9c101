"""Per owned partition, the operations view and the `/segments` counts, kept as states are stored.

Derived state only: a partition's `RunningView` (`journey.running`) and `RunningSegments`
(`journey.running_segments`) are counted from its local states when its restore is complete
(`streams.tables.customers.on_restored`; in slices, in the background: `Watcher`), follow
every batch the state layer stores (`CustomerStore.on_stored`: each changed key's share taken
back as the agent loaded it and added as the agent wrote it, both from the decoded states it
holds, so nothing is decoded again; a key the count has not reached yet is left to the count),
and are dropped when the partition is claimed again or revoked. After a restart they are
counted again from the restored states, so they hold what a scan would.

Cost: a count decodes each state of the partition once (some 35 µs a state on the bench
machine, BENCHMARKS.md); a stored batch takes each written key's share from the states the
agent decoded and encoded anyway (`share_of`). A request reads the sums only (`view`,
`current`, `segments_view`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from journey.config import JourneyConfig
from journey.figures import PERIODS, period_bounds, period_of
from journey.running import RunningView, total
from journey.running_segments import RunningSegments, Segmented
from journey.running_segments import view as segment_view
from recommend.experiments import TrialShare, TrialTotals, trial_share
from streams import compat, kpis
from streams.app import app, settings
from streams.tables import catalog as catalog_state
from streams.tables import customers as table
from streams.tables.state import RESERVED

log = logging.getLogger(__name__)
SLICE = 200  # states counted between two yields to the event loop (some 5-15 ms)
READY_WAIT_S = 30.0  # a count starts once the worker is ready (or after this long)

Share = tuple[tuple[Any, Any] | None, Segmented | None, TrialShare]


class Running:
    """The owned partitions' running views and segment counts."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.views: dict[int, RunningView] = {}
        self.segments: dict[int, RunningSegments] = {}
        self.trials: dict[int, TrialTotals] = {}  # test and learn, customers per strategy/arm
        # partitions being counted -> the last key counted (None: none yet); keys after it are
        # read by the count with their latest stored value
        self.counting: dict[int, bytes | None] = {}

    def build(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Count a partition's stored states in one go, replacing what it had."""
        self.start(partition)
        self.count(partition, items)
        self.counting.pop(partition, None)

    def start(self, partition: int) -> RunningView:
        """Begin counting a partition from nothing (its states are then given in key order)."""
        view = self.views[partition] = RunningView(self.timezone)
        self.segments[partition] = RunningSegments()
        self.trials[partition] = TrialTotals()
        self.counting[partition] = None
        return view

    def count(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Add stored states (key, value), in key order after the last ones counted."""
        view, segments = self.views[partition], self.segments[partition]
        trials = self.trials[partition]
        for key, raw in items:
            customer, journey, tried = share(raw)
            if customer is not None:
                view.add(key.decode(), *customer)
            segments.add(journey)
            trials.change((), tried)
            self.counting[partition] = key

    def stored(self, partition: int, changes: Mapping[bytes, tuple[Share, Share]]) -> None:
        """A batch stored in a partition: each key's (old, new) share taken back and added."""
        view, segments = self.views.get(partition), self.segments.get(partition)
        trials = self.trials.get(partition)
        if view is None or segments is None or trials is None:
            return  # not counted (being restored): the count will read the stored states
        counting = partition in self.counting
        last = self.counting.get(partition)
        for key, (before, after) in changes.items():
            if before == after or (counting and (last is None or key > last)):
                continue  # unchanged, or not counted yet: the count reads the stored value
            (was, was_journey, was_tried), (now, now_journey, now_tried) = before, after
            if was != now:
                view.change(key.decode(), was, now)
            if was_tried != now_tried:
                trials.change(was_tried, now_tried)
            if was_journey != now_journey:
                segments.remove(was_journey)
                segments.add(now_journey)

    def gone(self, partitions: Iterable[int]) -> None:
        """Forget partitions (claimed again, or revoked)."""
        for p in partitions:
            self.views.pop(p, None)
            self.segments.pop(p, None)
            self.trials.pop(p, None)
            self.counting.pop(p, None)

    def partitions(self) -> list[int]:
        """The partitions counted (and being counted)."""
        return sorted(self.views)

    def view(
        self,
        periods: Iterable[str] = PERIODS,
        *,
        start: str | None = None,
        end: str | None = None,
        others: Iterable[RunningView] = (),
    ) -> dict[str, Any]:
        """What `streams.kpis.view` gives for the owned partitions' states (and `others`)."""
        views = [*self.views.values(), *others]
        return {
            "timezone": self.timezone,
            **{p: total(views, p, start=start, end=end) for p in periods},
        }

    def export(
        self, periods: Iterable[str] = PERIODS, *, start: str | None = None, end: str | None = None
    ) -> list[dict[str, Any]]:
        """Each owned partition's counts for these periods (`RunningView.export`)."""
        return [v.export(periods, start=start, end=end) for v in self.views.values()]

    def trial_cells(self) -> dict[str, list[int]]:
        """Customers decided, converted and revenue cents per "strategy|arm", all partitions."""
        out: dict[str, list[int]] = {}
        for totals in self.trials.values():
            for (strategy, arm), cell in totals.cells.items():
                mine = out.setdefault(f"{strategy}|{arm}", [0, 0, 0])
                for i, n in enumerate(cell):
                    mine[i] += n
        return out

    def variant_counts(self, strategy: str) -> dict[str, tuple[int, int]]:
        """A strategy's customers decided and converted per arm here (its bandit's counts)."""
        out: dict[str, tuple[int, int]] = {}
        for totals in self.trials.values():
            for (name, arm), (decided, converted, _cents) in totals.cells.items():
                if name == strategy:
                    d, c = out.get(arm, (0, 0))
                    out[arm] = (d + decided, c + converted)
        return out

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
    """A stored state's (activity days, fired markers), counted journey fields and trials."""
    return share_of(None if raw is None else orjson.loads(raw))


def share_of(state: Any) -> Share:
    """`share` of a decoded state (`CustomerState.to_dict()` form; None: no state)."""
    if not isinstance(state, dict):
        return None, None, ()
    journey = state.get("journey")
    tried = trial_share(state.get("recommend"))
    return kpis.customer_of(state), Segmented.of(journey) if journey else None, tried


class Watcher:
    """Keeps `running` current: told by the customer table and its store (a failure recounts).

    A partition whose restore completed is counted once the worker is ready (its start is not
    held up), in slices of SLICE states with a yield to the event loop between two (events
    keep being processed); `settled` waits for the counts in progress.
    """

    def __init__(self, running: Running) -> None:
        self.running = running
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def ready(self, partition: int) -> None:
        """A partition's restore is complete: count its states."""
        view = self.running.start(partition)
        self.tasks[partition] = asyncio.get_running_loop().create_task(self._count(partition, view))

    async def _count(self, partition: int, view: RunningView) -> None:
        """Count a partition's stored states slice by slice; stop if it is forgotten."""
        started = time.perf_counter()
        try:
            waited = 0.0
            while not compat.worker_ready(app) and waited < READY_WAIT_S:
                await asyncio.sleep(0.2)  # let the restore and the rest of the start finish first
                waited += 0.2
            while self.running.views.get(partition) is view:
                after = self.running.counting.get(partition)
                rows = read_slice(partition, after, SLICE)
                self.running.count(partition, rows)
                if len(rows) < SLICE:
                    self.running.counting.pop(partition, None)
                    log.info(
                        "running view of partition %d counted in %.2f s",
                        partition,
                        time.perf_counter() - started,
                    )
                    return
                await asyncio.sleep(0)  # let the agent, the heartbeats and the web server run
        except Exception:
            log.exception("running view of partition %d: count failed, left out", partition)
            if self.running.views.get(partition) is view:
                self.running.gone([partition])

    async def settled(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the counts in progress; True when none is left."""
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return not self.running.counting

    def gone(self, partitions: Iterable[int]) -> None:
        """Partitions claimed again or revoked."""
        self.running.gone(partitions)

    def stored(self, partition: int, changes: Mapping[bytes, tuple[Share, Share]]) -> None:
        """A batch stored; never raises into the write path (a failure recounts the partition)."""
        try:
            self.running.stored(partition, changes)
        except Exception:
            log.exception("running view of partition %d: update failed, recounting", partition)
            self.ready(partition)


def changes_of(
    old: Mapping[bytes, bytes | None], new: Mapping[bytes, bytes | None]
) -> dict[bytes, tuple[Share, Share]]:
    """`Running.stored`'s changes from stored values before and after (tests, `make kpibench`)."""
    return {key: (share(old.get(key)), share(raw)) for key, raw in new.items()}


def read_slice(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
    """Up to `limit` customer (key, value) pairs of a partition after key `after`, in key order."""
    rows: list[tuple[bytes, bytes]] = []
    for key, value in table.store.db_for(partition).items(from_key=after):
        if not isinstance(key, bytes) or key.startswith(RESERVED) or key == after:
            continue
        rows.append((key, value))
        if len(rows) == limit:
            break
    return rows


running = Running(settings.store_timezone)
# a bandit strategy draws from the trials of this worker's customers (a sample of the store)
catalog_state.recommender.variant_counts = running.variant_counts
watcher = Watcher(running)
table.watchers.append(watcher)
table.store.on_stored = watcher.stored
table.summarize = share_of
