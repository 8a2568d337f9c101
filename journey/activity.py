"""A customer's activity per day: the facts the store's operations view is counted from (pure).

`CustomerJourney.activity` maps a day (ISO date in the store's time zone) to a `Day` list:

    [visitor type at the day's first activity, return visits while never purchased,
     orders placed, revenue, orders by path: touch→purchase, touch→seed→purchase, repurchase]

Visitor types are the seed's groups: `new_visitor` (first visit, never bought),
`returning_visitor` (visited before, never bought), `customer` (bought before) and `lapsed`
(bought before, inactive for `lapsed_after_s`). An order's path follows the visitor type at the
order (new → touch→purchase, returning → touch→seed→purchase, customer or lapsed → repurchase).
Placed orders are counted; a cancellation is not subtracted. The most recent `activity_days`
days are kept: the figures of older periods are not served (`journey.figures`).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

NEW_VISITOR = "new_visitor"
RETURNING_VISITOR = "returning_visitor"
CUSTOMER = "customer"
LAPSED = "lapsed"
GROUPS = (NEW_VISITOR, RETURNING_VISITOR, CUSTOMER, LAPSED)

PATH_DIRECT = "touch→purchase"
PATH_SEEDED = "touch→seed→purchase"
PATH_REPURCHASE = "repurchase"
PATHS = (PATH_DIRECT, PATH_SEEDED, PATH_REPURCHASE)
PATH_OF = {
    NEW_VISITOR: PATH_DIRECT,
    RETURNING_VISITOR: PATH_SEEDED,
    CUSTOMER: PATH_REPURCHASE,
    LAPSED: PATH_REPURCHASE,
}

# indexes into a day's list
VISITOR, RETURNS, ORDERS, REVENUE, BY_PATH = 0, 1, 2, 3, 4

Activity = dict[str, list[Any]]


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day_of(t: float, timezone: str) -> str:
    """The ISO date of an epoch time in the store's time zone."""
    return datetime.fromtimestamp(t, _zone(timezone)).date().isoformat()


def new_day(visitor: str) -> list[Any]:
    """A day's entry, first active as `visitor`."""
    return [visitor, 0, 0, 0.0, 0, 0, 0]


def visit(
    activity: Activity, day: str, visitor: str, *, returned_unbought: bool, keep: int
) -> None:
    """Count an activity on `day` (its first one sets the day's visitor type)."""
    entry = activity.get(day)
    if entry is None:
        entry = activity[day] = new_day(visitor)
        if len(activity) > keep:
            for old in sorted(activity)[: len(activity) - keep]:
                del activity[old]
    if returned_unbought:
        entry[RETURNS] += 1


def order(activity: Activity, day: str, visitor: str, value: float) -> None:
    """Count a placed order on `day`, on the path of the visitor type at the order."""
    entry = activity.get(day)
    if entry is None:
        entry = activity[day] = new_day(visitor)
    entry[ORDERS] += 1
    entry[REVENUE] = round(entry[REVENUE] + max(0.0, value), 2)
    entry[BY_PATH + PATHS.index(PATH_OF[visitor])] += 1


def merge(target: Activity, source: Activity, keep: int) -> Activity:
    """One ID: the days of both keys; on a shared day the earlier visitor type is kept."""
    out = {day: list(entry) for day, entry in target.items()}
    for day, entry in source.items():
        mine = out.get(day)
        if mine is None:
            out[day] = list(entry)
            continue
        if GROUPS.index(entry[VISITOR]) < GROUPS.index(mine[VISITOR]):
            mine[VISITOR] = entry[VISITOR]  # the anonymous history came first that day
        for i in (RETURNS, ORDERS, BY_PATH, BY_PATH + 1, BY_PATH + 2):
            mine[i] += entry[i]
        mine[REVENUE] = round(mine[REVENUE] + entry[REVENUE], 2)
    for old in sorted(out)[: max(0, len(out) - keep)]:
        del out[old]
    return out


def from_dict(data: Any) -> Activity:
    """The stored form back (lists of the right length; anything else is dropped)."""
    if not isinstance(data, dict):
        return {}
    return {
        str(day): list(entry)
        for day, entry in data.items()
        if isinstance(entry, list) and len(entry) == BY_PATH + 3 and entry[VISITOR] in GROUPS
    }
