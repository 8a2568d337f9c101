"""The customer-operations view: KPIs aggregated over journeys (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from journey.config import DEFAULT_CONFIG, JourneyConfig
from journey.stages import CustomerJourney, segment_at


def operations_view(
    journeys: Iterable[CustomerJourney],
    now: float,
    orders_by_path: Mapping[str, float] | None = None,
    config: JourneyConfig = DEFAULT_CONFIG,
) -> dict[str, Any]:
    """Customers per segment and stage, return visits of never-purchased customers, and rates."""
    segments: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    never_purchased_return_visits = 0
    returning_never_purchased = 0
    returned_then_bought = 0
    orders = 0
    spend = 0.0
    for j in journeys:
        segment = segment_at(j, now, config)
        if segment is None:
            continue
        segments[segment] += 1
        stages[str(j.stage)] += 1
        orders += j.orders
        spend += j.total_spend
        if j.orders_placed == 0 and j.sessions > 1:
            returning_never_purchased += 1
            never_purchased_return_visits += j.sessions - 1
        elif j.orders_placed > 0 and j.sessions > 1:
            returned_then_bought += 1
    return figures(
        dict(segments),
        dict(stages),
        orders,
        spend,
        orders_by_path,
        never_purchased_return_visits,
        returning_never_purchased,
        returned_then_bought,
    )


def figures(
    segments: dict[str, int],
    stages: dict[str, int],
    orders: int,
    spend: float,
    orders_by_path: Mapping[str, float] | None,
    return_visits: int,
    never: int,
    bought: int,
) -> dict[str, Any]:
    """The view of counted customers: `never`/`bought` returning visitors who never / did buy."""
    paths = {k: int(v) for k, v in (orders_by_path or {}).items()}
    path_total = sum(paths.values())
    returning = never + bought
    return {
        "customers": sum(segments.values()),
        "segments": segments,
        "stages": stages,
        "orders": orders,
        "revenue": round(spend, 2),
        "average_order_value": round(spend / orders, 2) if orders else None,
        "orders_by_path": paths,
        "repurchase_share": round(paths.get("repurchase", 0) / path_total, 4)
        if path_total
        else None,
        "return_visits_never_purchased": return_visits,
        "returning_visitors_never_purchased": never,
        "returning_visitor_conversion": round(bought / returning, 4) if returning else None,
    }
