"""One period's counts of the operations view, kept in whole numbers (pure).

`Tally` holds what `journey.figures` counts of a period: visitors, buyers, orders and revenue
(in cents, so taking a customer back never drifts) per group, orders per path, recall and
repurchase counts, abandonments; `figures` turns them into the view's figures, with rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journey.abandonment import BROWSE, CART
from journey.activity import BY_PATH, GROUPS, ORDERS, PATHS, RETURNS, REVENUE, VISITOR

KINDS = (CART, BROWSE)


def rate(part: float, whole: float) -> float | None:
    """part / whole rounded to 4 places, None when whole is 0."""
    return round(part / whole, 4) if whole else None


class Tally:
    """One period's counts, added (and taken back) customer by customer; revenue in cents."""

    def __init__(self) -> None:
        # per group: visitors, buyers, orders, revenue in cents
        self.groups: dict[str, list[int]] = {g: [0, 0, 0, 0] for g in GROUPS}
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
        self.members = 0  # customers' periods and abandonments counted: 0 is an empty period

    def add(self, key: str, entries: list[list[Any]], sign: int = 1) -> None:
        """A customer's days in the period (in date order); `sign` -1 takes them back."""
        group = entries[0][VISITOR]
        orders = returns = revenue = direct = seeded = repurchase = 0
        for e in entries:
            orders += e[ORDERS]
            returns += e[RETURNS]
            revenue += cents(e[REVENUE])
            direct += e[BY_PATH]
            seeded += e[BY_PATH + 1]
            repurchase += e[BY_PATH + 2]
        counts = self.groups[group]
        counts[0] += sign
        counts[1] += sign if orders else 0
        counts[2] += sign * orders
        counts[3] += sign * revenue
        paths = self.paths
        paths[0] += sign * direct
        paths[1] += sign * seeded
        paths[2] += sign * repurchase
        self.identified += sign if key.startswith("c:") else 0
        self.returns_unbought += sign * returns
        if group == "returning_visitor":  # never bought before its first activity here
            self.recalled += sign
            self.recalled_buyers += sign if orders else 0
        self.repeat_buyers += sign if orders >= 2 else 0
        self.members += sign

    def abandon(self, group: str, kind: str, recovered: bool, sign: int = 1) -> None:
        """One abandonment fired in the period by a customer of `group` (-1: taken back)."""
        counts = self.abandoned[group][kind]
        counts[0] += sign
        counts[1] += sign if recovered else 0
        self.members += sign

    def absorb(self, other: Tally) -> None:
        """Add another tally's counts (the same period of another partition)."""
        for group, counts in other.groups.items():
            mine = self.groups[group]
            for i, n in enumerate(counts):
                mine[i] += n
            for kind, (fired, recovered) in other.abandoned[group].items():
                self.abandoned[group][kind][0] += fired
                self.abandoned[group][kind][1] += recovered
        for i, n in enumerate(other.paths):
            self.paths[i] += n
        self.identified += other.identified
        self.returns_unbought += other.returns_unbought
        self.recalled += other.recalled
        self.recalled_buyers += other.recalled_buyers
        self.repeat_buyers += other.repeat_buyers
        self.members += other.members

    def to_list(self) -> list[Any]:
        """The counts as plain lists (JSON): what `from_list` reads back."""
        return [
            [self.groups[g] for g in GROUPS],
            self.paths,
            [self.identified, self.returns_unbought, self.recalled, self.recalled_buyers],
            [self.repeat_buyers, self.members],
            [[self.abandoned[g][k] for k in KINDS] for g in GROUPS],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> Tally:
        """A tally from `to_list`'s lists (ValueError or TypeError when they do not fit)."""
        groups, paths, counts, more, abandoned = data
        tally = cls()
        if len(groups) != len(GROUPS) or len(paths) != 3 or len(abandoned) != len(GROUPS):
            raise ValueError("a tally's lists have the wrong lengths")
        for g, numbers in zip(GROUPS, groups, strict=True):
            tally.groups[g] = [int(n) for n in numbers][:4]
            for k, pair in zip(KINDS, abandoned[GROUPS.index(g)], strict=True):
                tally.abandoned[g][k] = [int(pair[0]), int(pair[1])]
        tally.paths = [int(n) for n in paths]
        tally.identified, tally.returns_unbought, tally.recalled, tally.recalled_buyers = (
            int(n) for n in counts
        )
        tally.repeat_buyers, tally.members = (int(n) for n in more)
        return tally

    def figures(self, key: str, first: str, last: str, eligible: int) -> dict[str, Any]:
        """The period's figures, with rates."""
        groups = {g: _group(*c) for g, c in self.groups.items()}
        total = [sum(c[i] for c in self.groups.values()) for i in range(4)]
        orders = total[2]
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
                "buyers": total[1],
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


def cents(value: float) -> int:
    """A stored amount (rounded to 2 places) in whole cents."""
    return round(value * 100)


def _group(visitors: int, buyers: int, orders: int, revenue_cents: int) -> dict[str, Any]:
    """visitors, buyers, orders (counts) and revenue, with the rates."""
    revenue = revenue_cents / 100
    return {
        "visitors": visitors,
        "buyers": buyers,
        "conversion_rate": rate(buyers, visitors),
        "orders": orders,
        "revenue": revenue,
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
