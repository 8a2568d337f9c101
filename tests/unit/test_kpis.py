"""The operations view over hand-built journeys."""

from journey.kpis import operations_view
from journey.stages import CustomerJourney

DAY = 86400.0
NOW = 1_800_000_000.0


def j(
    key: str, stage: str, sessions: int, orders: int, spend: float, last: float
) -> CustomerJourney:
    return CustomerJourney(
        customer_key=key,
        stage=stage,
        sessions=sessions,
        orders=orders,
        orders_placed=orders,
        total_spend=spend,
        first_seen=last - DAY,
        last_seen=last,
    )


def test_segments_rates_and_return_visits() -> None:
    journeys = [
        j("a:1", "touch", 1, 0, 0.0, NOW),  # new visitor
        j("a:2", "seed", 3, 0, 0.0, NOW),  # returning, never bought: 2 return visits
        j("c:3", "purchase", 2, 1, 100.0, NOW),  # returned then bought
        j("c:4", "repurchase", 1, 3, 300.0, NOW - 200 * DAY),  # lapsed customer
    ]
    view = operations_view(journeys, NOW, {"touch→purchase": 1, "repurchase": 3})
    assert view["customers"] == 4
    assert view["segments"] == {
        "new_visitor": 1,
        "returning_visitor": 1,
        "customer": 1,
        "lapsed": 1,
    }
    assert view["orders"] == 4 and view["revenue"] == 400.0
    assert view["average_order_value"] == 100.0
    assert view["repurchase_share"] == 0.75
    assert view["return_visits_never_purchased"] == 2
    # returning visitors: a:2 (never bought) and c:3 (bought) -> 1 / 2
    assert view["returning_visitor_conversion"] == 0.5
