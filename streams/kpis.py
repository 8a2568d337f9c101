"""The operations view served by `/kpis` and written by `process --kpis`: one code path.

Both read customer states (a worker its own partitions' local states, `process` every
partition's changelog as a restore would) and count them with `journey.figures`. The
`journeystream_kpi_*` gauges (`streams/gauges.py`) are the current periods' figures of the same
view, as label values and samples (`current`, `gauge_samples`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from journey.activity import GROUPS, PATHS, day_of
from journey.figures import KINDS, PERIODS, CurrentPeriods, operations_view

StoredState = bytes | Mapping[str, Any]


def activity_of(
    items: Iterable[tuple[bytes | str, StoredState]],
) -> Iterator[tuple[str, Any, Any]]:
    """(customer key, activity days, fired-abandonment markers) of stored states.

    States are raw bytes or decoded dicts (`CustomerState.to_dict()`; any other top-level key,
    such as a batch's `outbox`, is ignored). Customers without activity days are left out.
    """
    for key, value in items:
        state = orjson.loads(value) if isinstance(value, bytes) else value
        if not isinstance(state, Mapping):
            continue
        customer = customer_of(state)
        if customer is not None:
            yield (key.decode() if isinstance(key, bytes) else key, *customer)


def customer_of(state: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """(activity days, fired-abandonment markers) of a decoded state; None without activity."""
    journey = state.get("journey")
    if not journey or not journey.get("activity"):
        return None
    abandonment = state.get("abandonment")
    fired = abandonment.get("fired") if isinstance(abandonment, Mapping) else None
    return journey["activity"], fired or ()


def view(
    items: Iterable[tuple[bytes | str, StoredState]],
    timezone: str,
    periods: Iterable[str] = PERIODS,
    *,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """The figures per period kind, for the states given."""
    customers = list(activity_of(items))
    return {
        "timezone": timezone,
        **{
            p: operations_view(customers, p, start=start, end=end, timezone=timezone)
            for p in periods
        },
    }


ALL = "all"
GAUGE_GROUPS = (*GROUPS, ALL)
Samples = dict[str, dict[tuple[str, ...], float]]


def current(
    items: Iterable[tuple[bytes | str, StoredState]], timezone: str, now: float
) -> dict[str, dict[str, Any] | None]:
    """The figures of the day, ISO week and month holding `now` (None: nothing in it)."""
    periods = CurrentPeriods(day_of(now, timezone), timezone)
    for customer in activity_of(items):
        periods.add(*customer)
    return periods.figures()


def gauge_samples(figures: Mapping[str, Mapping[str, Any] | None]) -> Samples:
    """Gauge name (`streams.metrics.KPI_GAUGES`) -> label values -> value, for `current`'s figures.

    Every label combination is present (0 when a period has no figures), so a new day, week or
    month resets the gauges. Only counts: rates are computed after summing over workers.
    """
    out: Samples = {}

    def put(name: str, labels: tuple[str, ...], value: float) -> None:
        out.setdefault(name, {})[labels] = value

    for period in PERIODS:
        f = figures.get(period)
        for group in GAUGE_GROUPS:
            g = counts = None
            if f is not None:
                g = f[ALL] if group == ALL else f["groups"][group]
                abandonment = f["abandonment"]
                counts = abandonment[ALL] if group == ALL else abandonment["groups"][group]
            for name in ("visitors", "buyers", "orders", "revenue"):
                put(name, (period, group), g[name] if g else 0)
            for kind in KINDS:
                put("abandonments", (period, group, kind), counts[kind]["fired"] if counts else 0)
                put(
                    "abandonments_recovered",
                    (period, group, kind),
                    counts[kind]["recovered"] if counts else 0,
                )
        for path in PATHS:
            put("orders_by_path", (period, path), f["orders_by_path"][path] if f else 0)
        put("identified_visitors", (period,), f["identified_visitors"] if f else 0)
        put(
            "never_purchased_return_visits",
            (period,),
            f["never_purchased_return_visits"] if f else 0,
        )
        put("recall_eligible", (period,), f["recall"]["eligible"] if f else 0)
        put("recalled", (period,), f["recall"]["recalled"] if f else 0)
        put("recalled_buyers", (period,), f["recall"]["recalled_buyers"] if f else 0)
        put("repeat_buyers", (period,), f["repurchase_rate"]["repeat_buyers"] if f else 0)
    return out
