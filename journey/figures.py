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
* repurchase rate: customers with two or more orders in the period over those with one or more.

Weeks are ISO weeks (Monday first); all dates are in the store's time zone, as recorded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from journey.activity import BY_PATH, GROUPS, ORDERS, PATHS, RETURNS, REVENUE, VISITOR

PERIODS = ("day", "week", "month")


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
    customers: Iterable[tuple[str, Mapping[str, list[Any]]]],
    period: str = "day",
    *,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """The figures of every period with activity, oldest first (`start`/`end`: ISO dates)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    tallies: dict[str, _Tally] = {}
    spans: list[tuple[str, str | None]] = []  # (first active day, first day with an order)
    for key, days in customers:
        if not days:
            continue
        ordered = sorted(days.items())
        first_order = next((d for d, e in ordered if e[ORDERS] > 0), None)
        spans.append((ordered[0][0], first_order))
        by_period: dict[str, list[list[Any]]] = {}
        for day, entry in ordered:
            by_period.setdefault(period_of(day, period), []).append(entry)
        for pkey, entries in by_period.items():
            tallies.setdefault(pkey, _Tally()).add(key, entries)
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
