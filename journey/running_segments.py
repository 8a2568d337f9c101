"""Customers per segment and the journey counts of `/segments`, kept as customers change (pure).

Everything `journey.kpis.operations_view` counts is a function of the stored journey alone,
except the split of buyers between `customer` and `lapsed`, which moves with time: the buyers'
last-seen times are kept sorted, so the split at any `now` is one binary search. Spend is kept
in cents, so taking a customer back never drifts.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from journey.config import DEFAULT_CONFIG, JourneyConfig
from journey.kpis import figures
from journey.stages import BUYER_STAGES
from journey.tally import cents

NEW, RETURNING, CUSTOMER, LAPSED = "new_visitor", "returning_visitor", "customer", "lapsed"


class Counted(Protocol):
    """What is counted of a journey (a `CustomerJourney` or a `Segmented`)."""

    @property
    def stage(self) -> str | None: ...
    @property
    def sessions(self) -> int: ...
    @property
    def orders(self) -> int: ...
    @property
    def orders_placed(self) -> int: ...
    @property
    def total_spend(self) -> float: ...
    @property
    def last_seen(self) -> float: ...


class Segmented(NamedTuple):
    """The counted fields of a stored journey, read without decoding the whole journey."""

    stage: str | None
    sessions: int
    orders: int
    orders_placed: int
    total_spend: float
    last_seen: float

    @classmethod
    def of(cls, journey: Mapping[str, Any]) -> Segmented:
        """From a stored journey dict, with `CustomerJourney.from_dict`'s defaults."""
        g = journey.get
        return cls(
            g("stage"),
            int(g("sessions", 0)),
            int(g("orders", 0)),
            int(g("orders_placed", 0)),
            float(g("total_spend", 0.0)),
            float(g("last_seen", 0.0)),
        )


class RunningSegments:
    """The `/segments` counts over the journeys added and not taken back."""

    def __init__(self) -> None:
        self.visitors: dict[str, int] = {}  # new / returning visitors (never bought)
        self.buyers_seen: list[float] = []  # buyers' last-seen times, ascending
        self.stages: dict[str, int] = {}
        self.orders = 0
        self.spend_cents = 0
        self.return_visits = 0  # of never-purchased customers
        self.returning_never_purchased = 0
        self.returned_then_bought = 0

    def add(self, j: Counted | None, sign: int = 1) -> None:
        """A customer's journey (None or without a stage: not counted); `sign` -1 takes it back."""
        if j is None or j.stage is None:
            return
        if j.stage in BUYER_STAGES:
            if sign > 0:
                insort(self.buyers_seen, j.last_seen)
            else:
                i = bisect_left(self.buyers_seen, j.last_seen)
                if i == len(self.buyers_seen) or self.buyers_seen[i] != j.last_seen:
                    raise ValueError("taking back a buyer that was not added")
                del self.buyers_seen[i]
        else:
            _bump(self.visitors, RETURNING if j.sessions >= 2 else NEW, sign)
        _bump(self.stages, str(j.stage), sign)
        self.orders += sign * j.orders
        self.spend_cents += sign * cents(j.total_spend)
        if j.orders_placed == 0 and j.sessions > 1:
            self.returning_never_purchased += sign
            self.return_visits += sign * (j.sessions - 1)
        elif j.orders_placed > 0 and j.sessions > 1:
            self.returned_then_bought += sign

    def remove(self, j: Counted | None) -> None:
        """Take back a journey added as it was then."""
        self.add(j, -1)

    def lapsed(self, now: float, config: JourneyConfig = DEFAULT_CONFIG) -> int:
        """Buyers not seen for `lapsed_after_s` at `now`."""
        after = config.lapsed_after_s
        return bisect_left(self.buyers_seen, True, key=lambda seen: now - seen < after)


def view(
    parts: Iterable[RunningSegments],
    now: float,
    orders_by_path: Mapping[str, float] | None = None,
    config: JourneyConfig = DEFAULT_CONFIG,
) -> dict[str, Any]:
    """What `journey.kpis.operations_view` gives for the journeys of all `parts` at `now`."""
    segments: dict[str, int] = {}
    stages: dict[str, int] = {}
    sums = [0, 0, 0, 0, 0]
    for p in parts:
        for name, n in p.visitors.items():
            segments[name] = segments.get(name, 0) + n
        lapsed = p.lapsed(now, config)
        segments[CUSTOMER] = segments.get(CUSTOMER, 0) + len(p.buyers_seen) - lapsed
        segments[LAPSED] = segments.get(LAPSED, 0) + lapsed
        for name, n in p.stages.items():
            stages[name] = stages.get(name, 0) + n
        for i, n in enumerate(
            (
                p.orders,
                p.spend_cents,
                p.return_visits,
                p.returning_never_purchased,
                p.returned_then_bought,
            )
        ):
            sums[i] += n
    orders, spend_cents, return_visits, never, bought = sums
    return figures(
        {k: n for k, n in segments.items() if n},
        {k: n for k, n in stages.items() if n},
        orders,
        spend_cents / 100,
        orders_by_path,
        return_visits,
        never,
        bought,
    )


def _bump(counts: dict[str, int], name: str, sign: int) -> None:
    """Add `sign` to a count, dropping it at zero."""
    n = counts.get(name, 0) + sign
    if n:
        counts[name] = n
    else:
        counts.pop(name, None)
