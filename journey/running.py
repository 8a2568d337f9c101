"""The operations view kept current as customers change: add, take back, read (pure).

`RunningView` holds, for every period kind, each period's `Tally` and, for the recall counts,
how many customers were first active and first ordered on each day: a customer's share of the
view is additive, so a changed customer is taken back with its old activity and added with its
new one. `figures` gives what `journey.figures.operations_view` gives for the customers held,
without looking at them; `total` sums the views of several partitions.

Recall: eligible(P) = customers first active before start(P) minus those whose first order is
before start(P) (a first order is never before the first activity).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any

from journey.figures import PERIODS, abandonments, first_order_day, period_bounds, shares
from journey.tally import Tally

Held = tuple[Mapping[str, list[Any]], Iterable[Any]]  # a customer's (days, fired markers)


class RunningView:
    """The figures of every period kind over the customers added and not taken back."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self.tallies: dict[str, dict[str, Tally]] = {p: {} for p in PERIODS}
        self.first_days: dict[str, int] = {}  # day -> customers first active on it
        self.first_orders: dict[str, int] = {}  # day -> customers whose first order was on it
        self.customers = 0  # customers with activity

    def add(self, key: str, days: Mapping[str, list[Any]], fired: Iterable[Any] = ()) -> None:
        """A customer (as `operations_view` takes it)."""
        self.change(key, None, (days, fired))

    def remove(self, key: str, days: Mapping[str, list[Any]], fired: Iterable[Any] = ()) -> None:
        """Take back a customer added with these very days and markers."""
        self.change(key, (days, fired), None)

    def change(self, key: str, old: Held | None, new: Held | None) -> None:
        """A customer's (days, fired markers) went from `old` to `new` (None: not held).

        Only the periods whose share changed are touched: the old share taken back, the new
        one added.
        """
        was, now = self._shares(old), self._shares(new)
        if was[0] != now[0]:  # (first active day, first order day)
            for (first_day, first_order), sign in ((was[0], -1), (now[0], 1)):
                if first_day is not None:
                    self.customers += sign
                    _bump(self.first_days, first_day, sign)
                if first_order is not None:
                    _bump(self.first_orders, first_order, sign)
        for period in PERIODS:
            tallies = self.tallies[period]
            (old_days, old_marks), (new_days, new_marks) = was[1][period], now[1][period]
            touched = set()
            for days, other, sign in ((old_days, new_days, -1), (new_days, old_days, 1)):
                for pkey, entries in days.items():
                    if other.get(pkey) != entries:
                        _tally(tallies, pkey).add(key, entries, sign)
                        touched.add(pkey)
            if old_marks != new_marks:
                gone, came = Counter(old_marks), Counter(new_marks)
                for marks, sign in ((gone - came, -1), (came - gone, 1)):
                    for pkey, group, kind, recovered in marks.elements():
                        _tally(tallies, pkey).abandon(group, kind, recovered, sign)
                        touched.add(pkey)
            for pkey in touched:
                if tallies[pkey].members == 0:
                    del tallies[pkey]  # nobody left in the period: it is not listed

    def _shares(self, held: Held | None) -> tuple[tuple[str | None, str | None], dict[str, Any]]:
        """(first active day, first order day) and, per period kind, `figures.shares`."""
        if held is None or not held[0]:
            return (None, None), dict.fromkeys(PERIODS, ({}, []))
        ordered = sorted(held[0].items())
        marks = list(abandonments(held[1], self.timezone))
        return (ordered[0][0], first_order_day(ordered)), {
            p: shares(ordered, marks, p) for p in PERIODS
        }

    def figures(
        self, period: str = "day", *, start: str | None = None, end: str | None = None
    ) -> list[dict[str, Any]]:
        """What `operations_view` gives for the customers held (`start`/`end`: ISO dates)."""
        return total([self], period, start=start, end=end)

    def export(
        self, periods: Iterable[str] = PERIODS, *, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """The counts `total` needs for these periods and dates, as JSON (`from_export`)."""
        tallies: dict[str, dict[str, Any]] = {}
        for period in periods:
            kept = tallies[period] = {}
            for pkey, tally in self.tallies[period].items():
                first, last = period_bounds(pkey, period)
                if (start is None or last >= start) and (end is None or first <= end):
                    kept[pkey] = tally.to_list()
        return {
            "timezone": self.timezone,
            "tallies": tallies,
            "first_days": self.first_days,
            "first_orders": self.first_orders,
            "customers": self.customers,
        }

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> RunningView:
        """A view holding another worker's exported counts (ValueError when malformed)."""
        view = cls(str(data["timezone"]))
        for period, tallies in data["tallies"].items():
            if period not in PERIODS:
                raise ValueError(f"unknown period {period!r}")
            view.tallies[period] = {str(k): Tally.from_list(v) for k, v in tallies.items()}
        view.first_days = {str(d): int(n) for d, n in data["first_days"].items()}
        view.first_orders = {str(d): int(n) for d, n in data["first_orders"].items()}
        view.customers = int(data["customers"])
        return view


def total(
    views: Iterable[RunningView],
    period: str = "day",
    *,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """The figures of several views (disjoint customers: a worker's partitions) as one."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    views = list(views)
    merged: dict[str, Tally] = {}
    for view in views:
        for pkey, tally in view.tallies[period].items():
            first, last = period_bounds(pkey, period)
            if (start is not None and last < start) or (end is not None and first > end):
                continue
            found = merged.get(pkey)
            if found is None:
                found = merged[pkey] = Tally()
            found.absorb(tally)
    keys = sorted(merged)
    starts = [period_bounds(k, period)[0] for k in keys]
    eligible = [
        a - o
        for a, o in zip(
            _before(starts, [v.first_days for v in views]),
            _before(starts, [v.first_orders for v in views]),
            strict=True,
        )
    ]
    return [
        merged[k].figures(k, s, period_bounds(k, period)[1], n)
        for k, s, n in zip(keys, starts, eligible, strict=True)
    ]


def _before(starts: list[str], counts: list[dict[str, int]]) -> list[int]:
    """For each start day (ascending), the sum of the counts of the days before it."""
    per_day: dict[str, int] = {}
    for c in counts:
        for day, n in c.items():
            per_day[day] = per_day.get(day, 0) + n
    days = sorted(per_day)
    running = [0, *accumulate(per_day[d] for d in days)]
    return [running[bisect_left(days, s)] for s in starts]


def _tally(tallies: dict[str, Tally], pkey: str) -> Tally:
    """A period's tally, made when missing."""
    found = tallies.get(pkey)
    if found is None:
        found = tallies[pkey] = Tally()
    return found


def _bump(counts: dict[str, int], day: str, sign: int) -> None:
    """Add `sign` to a day's count, dropping it at zero."""
    n = counts.get(day, 0) + sign
    if n:
        counts[day] = n
    else:
        counts.pop(day, None)
