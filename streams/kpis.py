"""The operations view served by `/kpis` and written by `process --kpis`: one code path.

Both read customer states (a worker its own partitions' local states, `process` every
partition's changelog as a restore would) and count them with `journey.figures`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from journey.figures import PERIODS, operations_view

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
        journey = state.get("journey")
        if journey and journey.get("activity"):
            abandonment = state.get("abandonment")
            fired = abandonment.get("fired") if isinstance(abandonment, Mapping) else None
            yield (
                key.decode() if isinstance(key, bytes) else key,
                journey["activity"],
                fired or (),
            )


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
