"""Late events inside the reorder window give the journey in-order arrival would have given."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey import customer as core
from journey.config import JourneyConfig
from schemas import contracts

T0 = 1_790_000_000.0
KEY = "c:late"
CONFIG = JourneyConfig()


def event(i: int, t: float, kind: str, product: int) -> Any:
    base = {
        "event_id": f"e{i}",
        "occurred_at": t,
        "customer_id": "late",
        "session_id": None,
    }
    if kind == "view":
        raw = {
            **base,
            "type": "page_view",
            "product_id": f"p{product}",
            "category": f"cat{product % 3}",
            "price": 10.0 + product,
        }
    elif kind == "cart":
        raw = {**base, "type": "cart", "action": "add", "product_id": f"p{product}", "quantity": 1}
    else:
        raw = {
            **base,
            "type": "order",
            "action": "placed",
            "order_id": f"o{i}",
            "lines": [{"product_id": f"p{product}", "quantity": 1, "unit_price": 20.0}],
            "total": 20.0,
        }
    from datetime import UTC, datetime

    raw["occurred_at"] = datetime.fromtimestamp(t, UTC).isoformat()
    raw = {k: v for k, v in raw.items() if v is not None}
    decoded = contracts.decode(orjson.dumps(raw), now=float("inf"))
    assert not isinstance(decoded, contracts.Rejection), decoded
    return decoded


def journey_after(events: list[Any]) -> dict[str, Any] | None:
    state = None
    for e in events:
        state, _ = core.apply(state, e, e.occurred_at, CONFIG, key=KEY)
    assert state is not None
    return state.journey.to_dict() if state.journey else None


def bounded_shuffle(events: list[Any], rng: random.Random, window: float) -> list[Any]:
    """An arrival order where each event comes at most `window` of event time late."""
    pending = list(events)
    arrived: list[Any] = []
    while pending:
        # never jump so far ahead that the earliest pending event would fall out of the window
        limit = pending[0].occurred_at + window
        pick = rng.choice([e for e in pending[:6] if e.occurred_at <= limit])
        pending.remove(pick)
        arrived.append(pick)
    return arrived


sequences = st.lists(
    st.tuples(
        st.floats(min_value=1, max_value=3 * 3600),  # gap to the previous event, s
        st.sampled_from(["view", "view", "view", "cart", "order"]),
        st.integers(min_value=0, max_value=6),
    ),
    min_size=2,
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences, st.integers(min_value=0, max_value=10**6))
def test_shuffled_within_the_window_equals_in_order(steps: list, seed: int) -> None:
    t = T0
    in_order = []
    for i, (gap, kind, product) in enumerate(steps):
        t += gap
        in_order.append(event(i, t, kind, product))
    arrived = bounded_shuffle(in_order, random.Random(seed), CONFIG.reorder_window_s)
    assert journey_after(arrived) == journey_after(in_order)


def test_a_late_view_that_splits_a_session_counts_it() -> None:
    # two views 50 min apart are two sessions (gap 30 min); a view arriving late at +25 min
    # bridges them: in order there is one session. In arrival order the journey must agree.
    a, b, c = (
        event(1, T0, "view", 1),
        event(2, T0 + 50 * 60, "view", 2),
        event(3, T0 + 25 * 60, "view", 3),
    )
    assert journey_after([a, c, b])["sessions"] == 1  # in order
    late = journey_after([a, b, c])
    assert late == journey_after([a, c, b])
    assert late["sessions"] == 1


def test_late_event_emits_its_own_records_and_a_signal() -> None:
    state = None
    for e in (event(1, T0, "view", 1), event(2, T0 + 600, "view", 2)):
        state, _ = core.apply(state, e, e.occurred_at, CONFIG, key=KEY)
    late_order = event(3, T0 + 300, "order", 1)
    state, out = core.apply(state, late_order, T0 + 600, CONFIG, key=KEY)
    purchases = [o for o in out if o.get("kind") == "purchase"]
    assert len(purchases) == 1 and purchases[0]["order_id"] == "o3"
    assert {"type": "signal", "name": "reordered"} in out


def test_beyond_the_window_out_of_order_rules_and_kept_by_later_rebuilds() -> None:
    config = JourneyConfig(reorder_window_s=600)
    state = None
    for e in (
        event(1, T0, "view", 1),
        event(2, T0 + 3000, "view", 2),
        event(3, T0 + 3300, "view", 3),
    ):
        state, _ = core.apply(state, e, e.occurred_at, config, key=KEY)
    old = event(4, T0 + 100, "view", 4)  # 3200 s behind the newest: beyond the window
    state, out = core.apply(state, old, T0 + 3300, config, key=KEY)
    assert {"type": "signal", "name": "reordered"} not in out
    assert state.journey.views == 4
    inside = event(5, T0 + 3200, "view", 5)  # inside the window: a rebuild
    state, out = core.apply(state, inside, T0 + 3300, config, key=KEY)
    assert {"type": "signal", "name": "reordered"} in out
    assert state.journey.views == 5  # the beyond-window view survived the rebuild


def test_window_is_bounded_and_survives_serialization() -> None:
    state = None
    for i in range(100):
        e = event(i, T0 + i, "view", i % 5)
        state, _ = core.apply(state, e, e.occurred_at, CONFIG, key=KEY)
    assert state is not None
    assert len(state.window.events) == CONFIG.reorder_max_events
    again = core.CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert again.window == state.window
    assert again.to_dict() == state.to_dict()


def test_a_late_first_event_sends_no_second_first_contact() -> None:
    state, first = core.apply(None, event(2, T0 + 60, "view", 1), T0 + 60, CONFIG, key=KEY)
    assert {o["trigger"] for o in first if o["type"] == "journey_transition"} == {"first_contact"}
    state, out = core.apply(state, event(1, T0, "view", 2), T0 + 60, CONFIG, key=KEY)
    assert [o for o in out if o["type"] == "journey_transition"] == []  # nothing changed net
    assert state.journey.first_seen == T0 and state.journey.views == 2


def test_a_late_event_that_changes_the_stage_sends_the_net_change() -> None:
    # two views 2 h apart are two sessions: the second is a return visit (touch -> seed);
    # a late cart add into the first session is a seed too, earlier. Net: no change.
    # A late order is a purchase: sent, and the net stage change (seed -> purchase) with it.
    state = None
    for e in (event(1, T0, "view", 1), event(2, T0 + 7200, "view", 2)):
        state, _ = core.apply(state, e, e.occurred_at, CONFIG, key=KEY)
    assert state.journey.stage == "seed"
    state, out = core.apply(state, event(3, T0 + 3600, "order", 1), T0 + 7200, CONFIG, key=KEY)
    kinds = sorted(o["kind"] for o in out if o["type"] == "journey_transition")
    assert kinds == ["purchase", "stage"]
    [stage] = [o for o in out if o.get("kind") == "stage"]
    assert (stage["from_stage"], stage["to_stage"]) == ("seed", state.journey.stage)
