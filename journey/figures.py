"""The store's customer-operations view per day, week or month, from customers' activity (pure).

Counted from each customer's `activity` days (`journey.activity`), so the figures are a function
of the customer states alone: the same whatever the number of workers, after a restart or a
restore, and rebuilt by a replay. Per period:

* per group (the customer's visitor type at their first activity in the period): visitors,
  buyers (of those visitors, the ones who placed an order in the period), conversion rate,
  orders, revenue, average order value; `all` sums the groups;
* orders by purchase path (the visitor type at each order) and the repurchase share of orders;
* identified visitors (customer id known) and their share;
* return visits of never-purchased customers;
* recall of non-purchased customers: of those who were active before the period and had never
  bought by its start (`eligible`), the ones active in it (`recalled`), the rate, and how many
  of them bought in it;
* repurchase rate: customers with two or more orders in the period over those with one or more;
* abandonments fired (cart and browse), per group and in all, the ones of them recovered, and the
  recovery rate, from the customer's fired-abandonment markers (`journey.abandonment.Fired`).

Weeks are ISO weeks (Monday first); all dates are in the store's time zone, as recorded.

Abandonments. A customer given with its markers (`(key, days, fired)`, `fired` as stored:
`AbandonmentState.to_dict()["fired"]`) has each marker counted in the period of its due time's
day in `timezone`, in the customer's group in that period (the visitor type at their first
activity in it; when they had none, the type of their last active day before the due day). A
marker does not say when it was recovered, so a recovery is counted with its abandonment, in the
abandonment's period: "recovered" is how many of the period's abandonments have been recovered
so far, and the rate of a recent period rises while its recovery window is open. A marker dated
before the customer's oldest kept activity day is not counted (nor is a customer without
activity). The markers are bounded (`AbandonmentConfig.max_fired`, 20 per customer key): a
customer's older abandonments drop out when newer ones fire, and with them their periods'
counts.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from journey.activity import ORDERS, VISITOR, day_of
from journey.tally import KINDS, Tally

PERIODS = ("day", "week", "month")
__all__ = ["KINDS", "PERIODS", "CurrentPeriods", "operations_view", "period_bounds", "period_of"]

# (customer key, activity days) or (customer key, activity days, stored fired markers)
Customer = tuple[str, Mapping[str, list[Any]]] | tuple[str, Mapping[str, list[Any]], Sequence[Any]]


@lru_cache(maxsize=16384)
def period_of(day: str, period: str) -> str:
    """The key of the period a day (ISO date) falls in."""
    if period == "day":
        return day
    if period == "month":
        return day[:7]
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def period_bounds(key: str, period: str) -> tuple[str, str]:
    """First and last day (ISO dates) of a period key."""
    if period == "day":
        return key, key
    if period == "month":
        first = date.fromisoformat(f"{key}-01")
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return first.isoformat(), (nxt - timedelta(days=1)).isoformat()
    year, week = key.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1)
    return monday.isoformat(), (monday + timedelta(days=6)).isoformat()


def operations_view(
    customers: Iterable[Customer],
    period: str = "day",
    *,
    start: str | None = None,
    end: str | None = None,
    timezone: str = "UTC",
) -> list[dict[str, Any]]:
    """The figures of every period with activity or an abandonment, oldest first.

    `start`/`end`: ISO dates; `timezone`: the store's, for the abandonments' due times.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    tallies: dict[str, Tally] = {}
    spans: list[tuple[str, str | None]] = []  # (first active day, first day with an order)

    def tally(pkey: str) -> Tally:
        found = tallies.get(pkey)
        if found is None:
            found = tallies[pkey] = Tally()
        return found

    for key, days, *rest in customers:
        if not days:
            continue
        ordered = sorted(days.items())
        spans.append((ordered[0][0], first_order_day(ordered)))
        marks = list(abandonments(rest[0] if rest else (), timezone))
        count(key, ordered, marks, period, tally)
    keys = sorted(tallies)
    starts = [period_bounds(k, period)[0] for k in keys]
    eligible = [0] * (len(keys) + 1)
    for first_day, first_order in spans:  # active before the start, no order before it
        lo = bisect_right(starts, first_day)
        hi = len(keys) if first_order is None else bisect_right(starts, first_order)
        if lo < hi:
            eligible[lo] += 1
            eligible[hi] -= 1
    out = []
    running = 0
    for i, pkey in enumerate(keys):
        running += eligible[i]
        first, last = period_bounds(pkey, period)
        if (start is not None and last < start) or (end is not None and first > end):
            continue
        out.append(tallies[pkey].figures(pkey, first, last, running))
    return out


class CurrentPeriods:
    """The figures of the day, ISO week and month holding `day`, added customer by customer.

    The figures `operations_view` gives for these three periods (None for one without activity
    or abandonment), counted without keeping the customers: the gauges scan the local states in
    slices (`streams/gauges.py`).
    """

    def __init__(self, day: str, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self.keys = {p: period_of(day, p) for p in PERIODS}
        self.bounds = {p: period_bounds(k, p) for p, k in self.keys.items()}
        self.tallies: dict[str, Tally] = {}
        self.eligible = dict.fromkeys(PERIODS, 0)

    def add(self, key: str, days: Mapping[str, list[Any]], fired: Iterable[Any] = ()) -> None:
        """One customer: activity days and stored fired markers, as `operations_view` takes."""
        if not days:
            return
        ordered = sorted(days.items())
        first_day, first_order = ordered[0][0], first_order_day(ordered)
        marks = list(abandonments(fired, self.timezone))
        for period, pkey in self.keys.items():
            start, last = self.bounds[period]
            if first_day < start and (first_order is None or first_order >= start):
                self.eligible[period] += 1  # active before the start, no order before it

            def tally(k: str, period: str = period, pkey: str = pkey) -> Tally | None:
                if k != pkey:
                    return None
                found = self.tallies.get(period)
                if found is None:
                    found = self.tallies[period] = Tally()
                return found

            count(key, ordered, marks, period, tally, within=(start, last))

    def figures(self) -> dict[str, dict[str, Any] | None]:
        """Per period kind, the current period's figures (None: nothing in it)."""
        out: dict[str, dict[str, Any] | None] = {}
        for period, pkey in self.keys.items():
            t = self.tallies.get(period)
            first, last = self.bounds[period]
            out[period] = None if t is None else t.figures(pkey, first, last, self.eligible[period])
        return out


def first_order_day(ordered: list[tuple[str, list[Any]]]) -> str | None:
    """The first day with an order of a customer's days in date order."""
    return next((d for d, e in ordered if e[ORDERS] > 0), None)


Abandoned = tuple[str, str, str, bool]  # (period key, group, kind, recovered)


def shares(
    ordered: list[tuple[str, list[Any]]],
    marks: Iterable[tuple[str, str, bool]],
    period: str,
    within: tuple[str, str] | None = None,
) -> tuple[dict[str, list[list[Any]]], list[Abandoned]]:
    """A customer's days (in date order) per period key, and its counted abandonments.

    `marks` are the customer's `abandonments`; `within`: only the days and abandonments in these
    dates (ISO, inclusive) are counted.
    """
    by_period: dict[str, list[list[Any]]] = {}
    for day, entry in ordered:
        if within is None or within[0] <= day <= within[1]:
            by_period.setdefault(period_of(day, period), []).append(entry)
    counted: list[Abandoned] = []
    for day, kind, recovered in marks:
        if day < ordered[0][0]:
            continue  # before the oldest kept activity day: outside the kept history
        if within is not None and not within[0] <= day <= within[1]:
            continue
        pkey = period_of(day, period)
        if pkey in by_period:
            group = by_period[pkey][0][VISITOR]
        else:  # no activity in the period: the type of the last active day before it
            before = bisect_right([d for d, _ in ordered], day) - 1
            group = ordered[before][1][VISITOR]
        counted.append((pkey, group, kind, recovered))
    return by_period, counted


def count(
    key: str,
    ordered: list[tuple[str, list[Any]]],
    marks: Iterable[tuple[str, str, bool]],
    period: str,
    tally: Callable[[str], Tally | None],
    within: tuple[str, str] | None = None,
) -> None:
    """Add a customer's `shares` to the tallies (`tally(period key)`, None: left out)."""
    by_period, counted = shares(ordered, marks, period, within)
    for pkey, entries in by_period.items():
        t = tally(pkey)
        if t is not None:
            t.add(key, entries)
    for pkey, group, kind, recovered in counted:
        t = tally(pkey)
        if t is not None:
            t.abandon(group, kind, recovered)


def abandonments(fired: Iterable[Any], timezone: str) -> Iterator[tuple[str, str, bool]]:
    """(day of the due time in `timezone`, kind, recovered) of stored fired markers.

    A marker is `[id, kind, due, recovered, ...]` (`AbandonmentState.to_dict`); one of another
    shape, kind or an unusable due time is skipped.
    """
    for marker in fired or ():
        if not isinstance(marker, list | tuple) or len(marker) < 4:
            continue
        _, kind, due, recovered = marker[:4]
        if kind not in KINDS or not isinstance(due, int | float) or not math.isfinite(due):
            continue
        try:
            day = day_of(float(due), timezone)
        except (OverflowError, OSError, ValueError):
            continue
        yield day, kind, bool(recovered)
