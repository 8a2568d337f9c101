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
from typing import Any

from journey.abandonment import BROWSE, CART
from journey.activity import BY_PATH, GROUPS, ORDERS, PATHS, RETURNS, REVENUE, VISITOR, day_of

PERIODS = ("day", "week", "month")
KINDS = (CART, BROWSE)

# (customer key, activity days) or (customer key, activity days, stored fired markers)
Customer = tuple[str, Mapping[str, list[Any]]] | tuple[str, Mapping[str, list[Any]], Sequence[Any]]


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
    tallies: dict[str, _Tally] = {}
    spans: list[tuple[str, str | None]] = []  # (first active day, first day with an order)

    def tally(pkey: str) -> _Tally:
        found = tallies.get(pkey)
        if found is None:
            found = tallies[pkey] = _Tally()
        return found

    for key, days, *rest in customers:
        if not days:
            continue
        ordered = sorted(days.items())
        spans.append((ordered[0][0], _first_order(ordered)))
        _count(key, ordered, rest[0] if rest else (), period, timezone, tally)
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
        self.tallies: dict[str, _Tally] = {}
        self.eligible = dict.fromkeys(PERIODS, 0)

    def add(self, key: str, days: Mapping[str, list[Any]], fired: Iterable[Any] = ()) -> None:
        """One customer: activity days and stored fired markers, as `operations_view` takes."""
        if not days:
            return
        ordered = sorted(days.items())
        first_day, first_order = ordered[0][0], _first_order(ordered)
        for period, pkey in self.keys.items():
            start, last = self.bounds[period]
            if first_day < start and (first_order is None or first_order >= start):
                self.eligible[period] += 1  # active before the start, no order before it

            def tally(k: str, period: str = period, pkey: str = pkey) -> _Tally | None:
                if k != pkey:
                    return None
                found = self.tallies.get(period)
                if found is None:
                    found = self.tallies[period] = _Tally()
                return found

            _count(key, ordered, fired, period, self.timezone, tally, within=(start, last))

    def figures(self) -> dict[str, dict[str, Any] | None]:
        """Per period kind, the current period's figures (None: nothing in it)."""
        out: dict[str, dict[str, Any] | None] = {}
        for period, pkey in self.keys.items():
            t = self.tallies.get(period)
            first, last = self.bounds[period]
            out[period] = None if t is None else t.figures(pkey, first, last, self.eligible[period])
        return out


def _first_order(ordered: list[tuple[str, list[Any]]]) -> str | None:
    """The first day with an order of a customer's days in date order."""
    return next((d for d, e in ordered if e[ORDERS] > 0), None)


def _count(
    key: str,
    ordered: list[tuple[str, list[Any]]],
    fired: Iterable[Any],
    period: str,
    timezone: str,
    tally: Callable[[str], _Tally | None],
    within: tuple[str, str] | None = None,
) -> None:
    """Add a customer's days (in date order) and abandonments to their periods' tallies.

    `tally(period key)` is the period's tally, None to leave the period out; `within`: only the
    days and abandonments in these dates (ISO, inclusive) are counted.
    """
    by_period: dict[str, list[list[Any]]] = {}
    for day, entry in ordered:
        if within is None or within[0] <= day <= within[1]:
            by_period.setdefault(period_of(day, period), []).append(entry)
    for pkey, entries in by_period.items():
        t = tally(pkey)
        if t is not None:
            t.add(key, entries)
    for day, kind, recovered in abandonments(fired, timezone):
        if day < ordered[0][0]:
            continue  # before the oldest kept activity day: outside the kept history
        if within is not None and not within[0] <= day <= within[1]:
            continue
        pkey = period_of(day, period)
        t = tally(pkey)
        if t is None:
            continue
        if pkey in by_period:
            group = by_period[pkey][0][VISITOR]
        else:  # no activity in the period: the type of the last active day before it
            before = bisect_right([d for d, _ in ordered], day) - 1
            group = ordered[before][1][VISITOR]
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


def rate(part: float, whole: float) -> float | None:
    """part / whole rounded to 4 places, None when whole is 0."""
    return round(part / whole, 4) if whole else None


class _Tally:
    """One period's counts, added customer by customer."""

    def __init__(self) -> None:
        self.groups: dict[str, list[float]] = {g: [0, 0, 0, 0.0] for g in GROUPS}
        self.paths = [0, 0, 0]
        self.identified = 0
        self.returns_unbought = 0
        self.recalled = 0
        self.recalled_buyers = 0
        self.repeat_buyers = 0
        # per group, per kind: [fired, recovered]
        self.abandoned: dict[str, dict[str, list[int]]] = {
            g: {k: [0, 0] for k in KINDS} for g in GROUPS
        }

    def add(self, key: str, entries: list[list[Any]]) -> None:
        """A customer's days in the period (in date order)."""
        group = entries[0][VISITOR]
        orders = sum(e[ORDERS] for e in entries)
        counts = self.groups[group]
        counts[0] += 1
        counts[1] += 1 if orders else 0
        counts[2] += orders
        counts[3] += sum(e[REVENUE] for e in entries)
        for i in range(3):
            self.paths[i] += sum(e[BY_PATH + i] for e in entries)
        self.identified += 1 if key.startswith("c:") else 0
        self.returns_unbought += sum(e[RETURNS] for e in entries)
        if group == "returning_visitor":  # never bought before its first activity here
            self.recalled += 1
            self.recalled_buyers += 1 if orders else 0
        self.repeat_buyers += 1 if orders >= 2 else 0

    def abandon(self, group: str, kind: str, recovered: bool) -> None:
        """One abandonment fired in the period by a customer of `group`."""
        counts = self.abandoned[group][kind]
        counts[0] += 1
        counts[1] += 1 if recovered else 0

    def figures(self, key: str, first: str, last: str, eligible: int) -> dict[str, Any]:
        """The period's figures, with rates."""
        groups = {g: _group(*c) for g, c in self.groups.items()}
        total = [sum(c[i] for c in self.groups.values()) for i in range(4)]
        orders = int(total[2])
        recalled = self.recalled
        return {
            "period": key,
            "first_day": first,
            "last_day": last,
            "groups": groups,
            "all": _group(*total),
            "orders_by_path": dict(zip(PATHS, self.paths, strict=True)),
            "repurchase_share": rate(self.paths[2], orders),
            "identified_visitors": self.identified,
            "identified_share": rate(self.identified, total[0]),
            "never_purchased_return_visits": self.returns_unbought,
            "recall": {
                "eligible": eligible,
                "recalled": recalled,
                "rate": rate(recalled, eligible),
                "recalled_buyers": self.recalled_buyers,
                "conversion_rate": rate(self.recalled_buyers, recalled),
            },
            "repurchase_rate": {
                "buyers": int(total[1]),
                "repeat_buyers": self.repeat_buyers,
                "rate": rate(self.repeat_buyers, total[1]),
            },
            "abandonment": {
                "groups": {g: _abandonment(c) for g, c in self.abandoned.items()},
                "all": _abandonment(
                    {
                        k: [sum(c[k][i] for c in self.abandoned.values()) for i in range(2)]
                        for k in KINDS
                    }
                ),
            },
        }


def _group(visitors: float, buyers: float, orders: float, revenue: float) -> dict[str, Any]:
    """visitors, buyers, orders (counts) and revenue, with the rates."""
    return {
        "visitors": int(visitors),
        "buyers": int(buyers),
        "conversion_rate": rate(buyers, visitors),
        "orders": int(orders),
        "revenue": round(revenue, 2),
        "average_order_value": round(revenue / orders, 2) if orders else None,
    }


def _abandonment(counts: Mapping[str, list[int]]) -> dict[str, Any]:
    """Abandonments fired and recovered, with the recovery rate: both kinds, then per kind."""
    fired = sum(c[0] for c in counts.values())
    recovered = sum(c[1] for c in counts.values())
    out: dict[str, Any] = {
        "fired": fired,
        "recovered": recovered,
        "recovery_rate": rate(recovered, fired),
    }
    for kind, (f, r) in counts.items():
        out[kind] = {"fired": f, "recovered": r, "recovery_rate": rate(r, f)}
    return out
