"""Journey stages, segments, purchase paths, sessions, profile and bounds (journey.stages)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey.config import JourneyConfig
from journey.stages import (
    TRANSITIONS,
    CustomerJourney,
    apply,
    merge,
    next_stage,
    profile,
    segment_at,
)
from schemas.records import CartChange, CustomerEvent, IdentityLink, Order, OrderLine, PageView

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86400.0
CFG = JourneyConfig()
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "journey_transition"
VALIDATE_VERSION = {
    version: fastjsonschema.compile(
        json.loads((SCHEMA_DIR / f"{version}.json").read_text(encoding="utf-8"))
    )
    for version in ("1-0-0", "1-0-1")
}
RECORDS_CHECKED = [0]

# ------------------------------------------------------------------------------ event makers

_ids = iter(range(10**9))


def _eid() -> str:
    return f"e{next(_ids)}"


def view(
    t: float,
    cat: str = "shoes",
    pid: str = "p1",
    price: float | None = 10.0,
    *,
    sid: str | None = None,
    anon: str | None = "x",
    cust: str | None = None,
    eid: str | None = None,
    action: str = "view",
) -> PageView:
    """A page view."""
    return PageView(
        event_id=eid or _eid(),
        occurred_at=t,
        anonymous_id=anon,
        customer_id=cust,
        session_id=sid,
        product_id=pid,
        category=cat,
        price=price,
        action=action,  # type: ignore[arg-type]
    )


def cart(
    t: float,
    pid: str = "p1",
    qty: int = 1,
    action: str = "add",
    *,
    price: float | None = 10.0,
    cat: str | None = None,
    sid: str | None = None,
    anon: str | None = "x",
    cust: str | None = None,
) -> CartChange:
    """A cart change."""
    return CartChange(
        event_id=_eid(),
        occurred_at=t,
        anonymous_id=anon,
        customer_id=cust,
        session_id=sid,
        action=action,  # type: ignore[arg-type]
        product_id=pid,
        quantity=qty,
        price=price,
        category=cat,
    )


def order(
    t: float,
    oid: str = "O1",
    lines: tuple[tuple[str, int, float, str | None], ...] = (("p1", 1, 20.0, "shoes"),),
    total: float | None = None,
    *,
    action: str = "placed",
    anon: str | None = "x",
    cust: str | None = None,
    sid: str | None = None,
    eid: str | None = None,
) -> Order:
    """An order placed (or cancelled)."""
    ls = tuple(
        OrderLine(product_id=p, quantity=q, unit_price=u, category=c) for p, q, u, c in lines
    )
    return Order(
        event_id=eid or _eid(),
        occurred_at=t,
        anonymous_id=anon,
        customer_id=cust,
        session_id=sid,
        action=action,  # type: ignore[arg-type]
        order_id=oid,
        lines=ls,
        total=total if total is not None else sum(q * u for _, q, u, _ in lines),
    )


def cancel(t: float, oid: str) -> Order:
    """An order cancellation."""
    return order(t, oid, lines=(), total=0.0, action="cancelled")


def check_outputs(outs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every output is orjson-serialisable and every record validates against the schema."""
    for out in outs:
        orjson.dumps(out)
        if out["type"] == "journey_transition":
            # 1-0-1 only for a favourite's change: every other record stays 1-0-0
            assert out["version"] == ("1-0-1" if out["trigger"] == "favourite" else "1-0-0")
            VALIDATE_VERSION[out["version"]](out)
            RECORDS_CHECKED[0] += 1
        else:
            assert out["type"] in ("signal", "internal"), out
    return outs


def run(
    events: Sequence[CustomerEvent],
    state: CustomerJourney | None = None,
    config: JourneyConfig = CFG,
    key: str = "a:x",
) -> tuple[CustomerJourney, list[dict[str, Any]]]:
    """Apply events in order; all outputs, checked."""
    outs: list[dict[str, Any]] = []
    for ev in events:
        state, o = apply(state, ev, ev.occurred_at, config, customer_key=key)
        outs += check_outputs(o)
    assert state is not None
    return state, outs


def records(outs: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    """The journey_transition records, optionally of one kind."""
    return [
        o for o in outs if o["type"] == "journey_transition" and (kind is None or o["kind"] == kind)
    ]


def signals(outs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The signals of one name."""
    return [o for o in outs if o["type"] == "signal" and o["name"] == name]


# ------------------------------------------------------------------------- transition table

EXPECTED_TABLE = {
    (None, "first_contact"): "touch",
    ("touch", "return_visit"): "seed",
    ("touch", "add_to_cart"): "seed",
    ("touch", "category_interest"): "seed",
    ("touch", "favourite"): "seed",
    ("touch", "order_placed"): "purchase",
    ("seed", "order_placed"): "purchase",
    ("purchase", "order_placed"): "repurchase",
    ("repurchase", "order_placed"): "repurchase",
    # One ID merge: the merged history reached a stage; the further stage wins
    (None, "merged_touch"): "touch",
    (None, "merged_seed"): "seed",
    (None, "merged_purchase"): "purchase",
    (None, "merged_repurchase"): "repurchase",
    ("touch", "merged_seed"): "seed",
    ("touch", "merged_purchase"): "purchase",
    ("touch", "merged_repurchase"): "repurchase",
    ("seed", "merged_purchase"): "purchase",
    ("seed", "merged_repurchase"): "repurchase",
    ("purchase", "merged_repurchase"): "repurchase",
}

STAGE_ROWS = [None, "touch", "seed", "purchase", "repurchase"]
TRIGGER_COLS = [
    "first_contact",
    "return_visit",
    "add_to_cart",
    "category_interest",
    "favourite",
    "order_placed",
]
# every (stage, trigger) -> expected stage, written out: unlisted pairs keep the stage
WALK = [
    (None, "first_contact", "touch"),
    (None, "return_visit", None),
    (None, "add_to_cart", None),
    (None, "category_interest", None),
    (None, "favourite", None),
    (None, "order_placed", None),
    ("touch", "first_contact", "touch"),
    ("touch", "return_visit", "seed"),
    ("touch", "add_to_cart", "seed"),
    ("touch", "category_interest", "seed"),
    ("touch", "favourite", "seed"),
    ("touch", "order_placed", "purchase"),
    ("seed", "first_contact", "seed"),
    ("seed", "return_visit", "seed"),
    ("seed", "add_to_cart", "seed"),
    ("seed", "category_interest", "seed"),
    ("seed", "favourite", "seed"),
    ("seed", "order_placed", "purchase"),
    ("purchase", "first_contact", "purchase"),
    ("purchase", "return_visit", "purchase"),
    ("purchase", "add_to_cart", "purchase"),
    ("purchase", "category_interest", "purchase"),
    ("purchase", "favourite", "purchase"),
    ("purchase", "order_placed", "repurchase"),
    ("repurchase", "first_contact", "repurchase"),
    ("repurchase", "return_visit", "repurchase"),
    ("repurchase", "add_to_cart", "repurchase"),
    ("repurchase", "category_interest", "repurchase"),
    ("repurchase", "favourite", "repurchase"),
    ("repurchase", "order_placed", "repurchase"),
]


MERGE_COLS = ["merged_touch", "merged_seed", "merged_purchase", "merged_repurchase"]
# a merge never moves a stage backwards: (stage, merge trigger) -> stage, written out
MERGE_WALK = [
    (None, "merged_touch", "touch"),
    (None, "merged_seed", "seed"),
    (None, "merged_purchase", "purchase"),
    (None, "merged_repurchase", "repurchase"),
    ("touch", "merged_touch", "touch"),
    ("touch", "merged_seed", "seed"),
    ("touch", "merged_purchase", "purchase"),
    ("touch", "merged_repurchase", "repurchase"),
    ("seed", "merged_touch", "seed"),
    ("seed", "merged_seed", "seed"),
    ("seed", "merged_purchase", "purchase"),
    ("seed", "merged_repurchase", "repurchase"),
    ("purchase", "merged_touch", "purchase"),
    ("purchase", "merged_seed", "purchase"),
    ("purchase", "merged_purchase", "purchase"),
    ("purchase", "merged_repurchase", "repurchase"),
    ("repurchase", "merged_touch", "repurchase"),
    ("repurchase", "merged_seed", "repurchase"),
    ("repurchase", "merged_purchase", "repurchase"),
    ("repurchase", "merged_repurchase", "repurchase"),
]


def test_the_table_is_the_declared_journey() -> None:
    assert TRANSITIONS == EXPECTED_TABLE
    assert len(WALK) == len(STAGE_ROWS) * len(TRIGGER_COLS)
    assert len(MERGE_WALK) == len(STAGE_ROWS) * len(MERGE_COLS)


@pytest.mark.parametrize(("stage", "trigger", "expected"), WALK + MERGE_WALK)
def test_table_step(stage: str | None, trigger: str, expected: str | None) -> None:
    assert next_stage(stage, trigger) == expected


def _reach(stage: str) -> list[CustomerEvent]:
    """Events (all in one session starting at T0) that put a new journey in `stage`."""
    base: list[CustomerEvent] = [view(T0, cat="start", pid="s1")]
    if stage == "seed":
        base.append(cart(T0 + 60, pid="s2"))
    elif stage == "purchase":
        base.append(order(T0 + 60, oid="R1", lines=(("s3", 1, 30.0, "start"),)))
    elif stage == "repurchase":
        base.append(order(T0 + 60, oid="R1", lines=(("s3", 1, 30.0, "start"),)))
        base.append(order(T0 + 90, oid="R2", lines=(("s4", 1, 30.0, "start"),)))
    return base


def _fire(trigger: str) -> list[CustomerEvent]:
    """Events right after `_reach` that fire exactly `trigger` (besides none other)."""
    if trigger == "return_visit":
        return [view(T0 + 90 + 1800 + 5, cat="other", pid="z1")]
    if trigger == "add_to_cart":
        return [cart(T0 + 120, pid="z2")]
    if trigger == "category_interest":
        return [view(T0 + 120 + i, cat="kitchen", pid=f"k{i}") for i in range(3)]
    if trigger == "favourite":
        return [view(T0 + 120, cat="kitchen", pid="f1", price=None, action="favourite")]
    assert trigger == "order_placed"
    return [order(T0 + 120, oid="Z1", lines=(("z3", 1, 30.0, "other"),))]


@pytest.mark.parametrize(
    ("stage", "trigger", "expected"),
    [row for row in WALK if row[0] is not None and row[1] != "first_contact"],
)
def test_walk_the_table_with_events(stage: str, trigger: str, expected: str) -> None:
    j, _ = run(_reach(stage))
    assert j.stage == stage
    j, outs = run(_fire(trigger), j)
    assert j.stage == expected
    stage_records = records(outs, "stage")
    if expected != stage:
        assert [(r["from_stage"], r["to_stage"], r["trigger"]) for r in stage_records] == [
            (stage, expected, trigger)
        ]
    else:
        assert stage_records == []


def test_first_contact_from_nothing() -> None:
    j, outs = run([view(T0, eid="v0")])
    assert j.stage == "touch"
    first = records(outs, "stage")[0]
    assert (first["from_stage"], first["to_stage"], first["trigger"]) == (
        None,
        "touch",
        "first_contact",
    )
    expected_id = hashlib.sha1(b"a:x|v0|stage|touch").hexdigest()[:20]
    assert first["id"] == expected_id
    assert first["occurred_at"] == "2023-11-14T22:13:20.000Z"


# ------------------------------------------------------------------------------ purchase paths


def _paths(outs: list[dict[str, Any]]) -> list[str]:
    return [r["path"] for r in records(outs, "purchase")]


def test_path_bought_in_first_session_without_seed() -> None:
    j, outs = run([view(T0, cat="a"), view(T0 + 60, cat="b"), order(T0 + 120)])
    assert _paths(outs) == ["touch→purchase"]
    assert j.stage == "purchase"


def test_a_first_event_that_is_an_order() -> None:
    j, outs = run([order(T0, oid="O9", total=42.5, eid="o9")])
    assert [(r["kind"], r["from_stage"], r["to_stage"]) for r in records(outs)] == [
        ("stage", None, "touch"),
        ("stage", "touch", "purchase"),
        ("purchase", "touch", "purchase"),
        ("segment", "purchase", "purchase"),
    ]
    purchase = records(outs, "purchase")[0]
    assert purchase["path"] == "touch→purchase"
    assert purchase["order_id"] == "O9"
    assert purchase["order_value"] == 42.5
    assert purchase["to_segment"] == "customer"
    assert records(outs, "segment")[0]["to_segment"] == "customer"
    assert j.segment == "customer"


@pytest.mark.parametrize(
    ("events", "path"),
    [
        # the merchant's definitions: the visitor type at the order decides the path; a cart add
        # or category interest in the first visit is a seeding signal, not the returning path
        ([view(T0), cart(T0 + 30), order(T0 + 60)], "touch→purchase"),
        ([view(T0), view(T0 + 4000), order(T0 + 4060)], "touch→seed→purchase"),
        (
            [view(T0, pid="a"), view(T0 + 1, pid="b"), view(T0 + 2, pid="c"), order(T0 + 9)],
            "touch→purchase",
        ),
        ([order(T0)], "touch→purchase"),
        (
            [
                view(T0, cat="a"),
                view(T0 + 1, cat="a"),
                view(T0 + 2, cat="b"),
                view(T0 + 3, cat="b"),
                order(T0 + 9),
            ],
            "touch→purchase",
        ),
    ],
)
def test_first_order_paths(events: list[CustomerEvent], path: str) -> None:
    _, outs = run(events)
    assert _paths(outs) == [path]


def test_seed_views_threshold_is_configurable() -> None:
    cfg = JourneyConfig(seed_category_views=2)
    _, outs = run([view(T0, pid="a"), view(T0 + 1, pid="b"), order(T0 + 9)], config=cfg)
    seeded = [r for r in records(outs, "stage") if r["to_stage"] == "seed"]
    assert [r["trigger"] for r in seeded] == ["category_interest"]
    assert _paths(outs) == ["touch→purchase"]  # a seeding signal in the first visit


def test_a_buyer_who_comes_back_and_buys_again_is_a_repurchase() -> None:
    events = [view(T0), order(T0 + 60), view(T0 + 90000), order(T0 + 90060, oid="O2")]
    _, outs = run(events)
    assert _paths(outs) == ["touch→purchase", "repurchase"]


def test_a_cart_in_the_first_visit_then_an_order_on_a_return_visit_is_the_seeded_path() -> None:
    _, outs = run([view(T0), cart(T0 + 30), order(T0 + 4000)])
    assert _paths(outs) == ["touch→seed→purchase"]


def test_category_interest_counts_within_one_session_only() -> None:
    events: list[CustomerEvent] = [
        view(T0, cat="a"),
        view(T0 + 1, cat="a"),
        view(T0 + 1801, cat="a"),
    ]
    j, outs = run(events)
    # the third view is in a new session: the return visit seeds, not the category
    assert [r["trigger"] for r in records(outs, "stage")] == ["first_contact", "return_visit"]
    assert j.session_categories == {"a": 1}


def test_every_placed_order_has_a_purchase_record() -> None:
    events: list[CustomerEvent] = [
        view(T0),
        order(T0 + 10, oid="O1", total=10.0),
        order(T0 + 20, oid="O2", total=20.0),
        order(T0 + 30, oid="O3", total=30.0),
    ]
    j, outs = run(events)
    purchases = records(outs, "purchase")
    assert [(r["order_id"], r["path"], r["from_stage"], r["to_stage"]) for r in purchases] == [
        ("O1", "touch→purchase", "touch", "purchase"),
        ("O2", "repurchase", "purchase", "repurchase"),
        ("O3", "repurchase", "repurchase", "repurchase"),
    ]
    assert [r["order_value"] for r in purchases] == [10.0, 20.0, 30.0]
    assert j.stage == "repurchase"
    assert len({r["id"] for r in records(outs)}) == len(records(outs))


# ------------------------------------------------------------------------------------ sessions


def test_session_split_by_gap_boundary() -> None:
    j, outs = run([view(T0), view(T0 + 1799)])
    assert j.sessions == 1
    assert signals(outs, "return_visit") == []
    j, outs = run([view(T0 + 1799 + 1800)], j)  # exactly the gap starts a new session
    assert j.sessions == 2
    assert j.session_start == T0 + 3599
    assert signals(outs, "return_visit") == [
        {"type": "signal", "name": "return_visit", "never_purchased": True}
    ]


def test_session_gap_is_configurable() -> None:
    cfg = JourneyConfig(session_gap_s=60)
    j, _ = run([view(T0), view(T0 + 59), view(T0 + 119), view(T0 + 500)], config=cfg)
    assert j.sessions == 3


def test_explicit_session_id_change_starts_a_session() -> None:
    j, _ = run([view(T0, sid="s1"), view(T0 + 10, sid="s1"), view(T0 + 20, sid="s2")])
    assert (j.sessions, j.session_id, j.session_start) == (2, "s2", T0 + 20)
    j, _ = run([view(T0 + 30)], j)  # no session id: stays in s2
    assert (j.sessions, j.session_id) == (2, "s2")


def test_a_session_without_id_adopts_the_first_one() -> None:
    j, _ = run([view(T0), view(T0 + 10, sid="s7"), view(T0 + 20, sid="s7")])
    assert (j.sessions, j.session_id) == (1, "s7")


def test_return_visit_signal_knows_about_purchases() -> None:
    j, outs = run([view(T0), order(T0 + 10), view(T0 + 5000)])
    assert signals(outs, "return_visit") == [
        {"type": "signal", "name": "return_visit", "never_purchased": False}
    ]
    assert j.sessions == 2


# ------------------------------------------------------------------------------------ segments


def test_segments_through_a_life() -> None:
    j, outs = run([view(T0)])
    assert j.segment == "new_visitor"
    j, outs = run([view(T0 + 3600)], j)
    assert j.segment == "returning_visitor"
    seg = records(outs, "segment")
    assert [(r["from_segment"], r["to_segment"], r["trigger"]) for r in seg] == [
        ("new_visitor", "returning_visitor", "return_visit")
    ]
    j, outs = run([order(T0 + 3700)], j)
    assert j.segment == "customer"
    seg = records(outs, "segment")
    assert [(r["from_segment"], r["to_segment"], r["trigger"]) for r in seg] == [
        ("returning_visitor", "customer", "order_placed")
    ]


def test_lapsed_customer_is_reported_when_the_next_event_comes() -> None:
    j, _ = run([view(T0), order(T0 + 60)])
    assert segment_at(j, T0 + 60 + 90 * DAY - 1, CFG) == "customer"
    assert segment_at(j, T0 + 60 + 90 * DAY, CFG) == "lapsed"
    j, outs = run([view(T0 + 60 + 91 * DAY, eid="back")], j)
    seg = records(outs, "segment")
    assert [(r["from_segment"], r["to_segment"], r["trigger"]) for r in seg] == [
        ("customer", "lapsed", "lapse"),
        ("lapsed", "customer", "return_visit"),
    ]
    assert seg[0]["id"] != seg[1]["id"]
    assert j.segment == "customer"


def test_lapse_period_is_configurable_and_visitors_never_lapse() -> None:
    cfg = JourneyConfig(lapsed_after_s=7 * DAY)
    j, _ = run([view(T0), order(T0 + 60)], config=cfg)
    assert segment_at(j, T0 + 60 + 7 * DAY, cfg) == "lapsed"
    assert segment_at(j, T0 + 60 + 7 * DAY, CFG) == "customer"
    v, _ = run([view(T0)])
    assert segment_at(v, T0 + 400 * DAY, CFG) == "new_visitor"
    assert segment_at(None, T0, CFG) is None


# ------------------------------------------------------------------------------------- profile


def test_profile_counters_and_lists() -> None:
    events: list[CustomerEvent] = [
        view(T0, cat="shoes", pid="a", price=80.0),
        view(T0 + 10, cat="shoes", pid="b", price=120.0),
        view(T0 + 20, cat="hats", pid="c", price=40.0),
        view(T0 + 30, cat="shoes", pid="a", price=80.0),
        cart(T0 + 40, pid="a", qty=2, price=80.0, cat="shoes"),
        cart(T0 + 50, pid="c", qty=1, price=40.0, cat="hats"),
        cart(T0 + 55, pid="c", qty=3, action="set_quantity", price=None),
        cart(T0 + 56, pid="a", qty=1, action="remove", price=None),
        order(
            T0 + 60,
            oid="O1",
            lines=(("b", 1, 120.0, "shoes"), ("d", 2, 15.0, "socks")),
            total=150.0,
        ),
    ]
    j, _ = run(events)
    assert j.views == 4
    assert j.views_by_category == {"shoes": 3, "hats": 1}
    # recent views: one entry per product, the latest view, oldest first
    assert list(j.recent_views.items()) == [
        ("b", ["shoes", 120.0, T0 + 10]),
        ("c", ["hats", 40.0, T0 + 20]),
        ("a", ["shoes", 80.0, T0 + 30]),
    ]
    assert j.cart.lines_dict() == {
        "c": [3, 40.0, "hats", T0 + 55],
        "a": [1, 80.0, "shoes", T0 + 56],
    }
    assert (j.orders, j.total_spend, j.last_order_at) == (1, 150.0, T0 + 60)
    assert list(j.recent_orders) == ["O1"]
    assert j.recent_purchases == {"b": T0 + 60, "d": T0 + 60}
    p = profile(j, T0 + 100, CFG)
    assert p["average_order_value"] == 150.0
    # views + purchased lines: shoes 3+1, hats 1, socks 1 -> ties by name
    assert p["favourite_categories"] == ["shoes", "hats", "socks"]
    assert p["segment"] == "customer"
    assert p["session"] == {"id": None, "start": T0, "last_activity": T0 + 60}
    assert p["recent_order_ids"] == ["O1"]
    orjson.dumps(p)


def test_order_removes_bought_lines_from_cart() -> None:
    j, _ = run(
        [cart(T0, pid="a"), cart(T0 + 1, pid="b"), order(T0 + 2, lines=(("a", 1, 5.0, None),))]
    )
    assert list(j.cart) == ["b"]


@pytest.mark.parametrize(
    ("unit_price", "band"),
    [(10.0, "low"), (24.99, "low"), (25.0, "mid"), (99.0, "mid"), (100.0, "high"), (150.0, "high")],
)
def test_price_band_from_average_unit_price(unit_price: float, band: str) -> None:
    j, _ = run([order(T0, lines=(("p", 2, unit_price, None),))])
    assert j.price_band(CFG) == band


def test_price_band_averages_units_over_orders() -> None:
    # (1 x 10 + 3 x 50) / 4 = 40 -> mid; no orders -> None
    j, _ = run(
        [
            order(T0, oid="A", lines=(("p", 1, 10.0, None),)),
            order(T0 + 1, oid="B", lines=(("q", 3, 50.0, None),)),
        ]
    )
    assert j.price_band(CFG) == "mid"
    v, _ = run([view(T0)])
    assert v.price_band(CFG) is None


def test_price_sensitive_when_buying_below_viewed_average() -> None:
    # viewed average 100; the orders' unit prices 60 and 70 are below it; band mid (not low)
    events: list[CustomerEvent] = [
        view(T0, price=50.0),
        view(T0 + 1, price=150.0),
        order(T0 + 2, oid="A", lines=(("p", 1, 60.0, None),)),
        order(T0 + 3, oid="B", lines=(("p", 1, 70.0, None),)),
    ]
    j, _ = run(events)
    assert j.tags(CFG) == ["price_sensitive"]


def test_not_price_sensitive_when_half_or_fewer_orders_are_cheap() -> None:
    events: list[CustomerEvent] = [
        view(T0, price=100.0),
        order(T0 + 2, oid="A", lines=(("p", 1, 60.0, None),)),
        order(T0 + 3, oid="B", lines=(("p", 1, 140.0, None),)),
    ]
    j, _ = run(events)
    assert j.tags(CFG) == []


def test_price_sensitive_when_mostly_discount_tier() -> None:
    # no views at all, but both orders are in the low band (< 25)
    j, _ = run(
        [
            order(T0, oid="A", lines=(("p", 2, 9.0, None),)),
            order(T0 + 1, oid="B", lines=(("q", 1, 20.0, None),)),
        ]
    )
    assert j.tags(CFG) == ["price_sensitive"]


def test_high_value_threshold() -> None:
    j, _ = run([order(T0, oid="A", total=600.0, lines=(("p", 1, 600.0, None),))])
    assert "high_value" not in j.tags(CFG)
    j, _ = run([order(T0 + 1, oid="B", total=400.0, lines=(("p", 1, 400.0, None),))], j)
    assert j.total_spend == 1000.0
    assert "high_value" in j.tags(CFG)
    assert "high_value" not in j.tags(JourneyConfig(high_value_spend=1000.01))


@pytest.mark.parametrize(
    ("event", "tagged"),
    [
        (view(T0, cat="Home/Baby Gear"), True),
        (view(T0, cat="kids/STROLLERS"), True),
        (view(T0, cat="maternity"), True),
        (cart(T0, cat="food/infant formula"), True),
        (order(T0, lines=(("p", 1, 5.0, "care/Diapers"),)), True),
        (view(T0, cat="garden/tools"), False),
        (order(T0, lines=(("p", 1, 5.0, None),)), False),
    ],
)
def test_new_parent_tag(event: CustomerEvent, tagged: bool) -> None:
    j, _ = run([event])
    assert ("new_parent" in j.tags(CFG)) is tagged


# ------------------------------------------------------------------------------- cancellations


def test_cancelling_a_known_order_reduces_counters_but_not_the_stage() -> None:
    events: list[CustomerEvent] = [
        view(T0),
        order(T0 + 1, oid="A", total=40.0, lines=(("p", 1, 40.0, None),)),
        order(T0 + 2, oid="B", total=60.0, lines=(("q", 1, 60.0, None),)),
    ]
    j, _ = run(events)
    assert (j.orders, j.total_spend, j.stage) == (2, 100.0, "repurchase")
    j, outs = run([cancel(T0 + 3, "A")], j)
    assert (j.orders, j.total_spend, j.average_order_value) == (1, 60.0, 60.0)
    assert j.stage == "repurchase"
    assert j.last_order_at == T0 + 2
    assert records(outs) == []
    assert signals(outs, "order_cancelled") == [{"type": "signal", "name": "order_cancelled"}]
    # a second cancel of the same order is unknown now
    before = j.to_dict()
    j, outs = run([cancel(T0 + 4, "A")], j)
    assert j.to_dict() == before
    assert signals(outs, "irrelevant") == [
        {"type": "signal", "name": "irrelevant", "reason": "unknown_order"}
    ]
    j, _ = run([cancel(T0 + 5, "B")], j)
    assert (j.orders, j.total_spend, j.average_order_value, j.last_order_at) == (0, 0.0, None, None)
    assert (j.stage, j.segment) == ("repurchase", "customer")


def test_cancel_is_not_activity() -> None:
    j, _ = run([view(T0), order(T0 + 1, oid="A")])
    j, _ = run([cancel(T0 + 5000, "A")], j)
    assert (j.last_seen, j.sessions) == (T0 + 1, 1)


def test_cancel_without_a_journey_is_irrelevant() -> None:
    ev = cancel(T0, "A")
    state, outs = apply(None, ev, T0, CFG, customer_key="a:x")
    assert state is None
    assert outs == [{"type": "signal", "name": "irrelevant", "reason": "unknown_order"}]


def test_placing_a_known_order_again_is_irrelevant() -> None:
    j, _ = run([order(T0, oid="A", total=10.0)])
    before = j.to_dict()
    j, outs = run([order(T0 + 1, oid="A", total=10.0)], j)
    assert j.to_dict() == before
    assert outs == [{"type": "signal", "name": "irrelevant", "reason": "known_order"}]


# ---------------------------------------------------------------------- out of order, irrelevant


def test_late_view_counts_but_moves_nothing() -> None:
    j, _ = run([view(T0 + 1000, cat="a", pid="n1"), view(T0 + 1001, cat="a", pid="n2")])
    before = (j.last_seen, j.sessions, j.session_start, j.stage, dict(j.session_categories))
    j, outs = run([view(T0 + 10, cat="a", pid="old", sid="other")], j)
    # counters applied, placed by time in the recent list
    assert j.views == 3
    assert j.views_by_category == {"a": 3}
    assert list(j.recent_views) == ["old", "n1", "n2"]
    assert j.first_seen == T0 + 10
    # nothing in the past: no session, no category interest (would be the 3rd "a"), no records
    assert (j.last_seen, j.sessions, j.session_start, j.stage, j.session_categories) == before
    assert records(outs) == []
    assert outs == [{"type": "signal", "name": "out_of_order"}]


def test_late_cart_add_does_not_seed_and_older_cart_change_is_ignored() -> None:
    j, _ = run([view(T0 + 100), cart(T0 + 200, pid="a", qty=2)])
    assert j.stage == "seed"
    k, outs = run([view(T0 + 100), view(T0 + 200)])
    k, outs = run([cart(T0 + 150, pid="z")], k)
    assert k.stage == "touch"
    assert k.cart.lines_dict() == {"z": [1, 10.0, None, T0 + 150]}
    assert signals(outs, "out_of_order") != []
    j, _ = run([cart(T0 + 150, pid="a", qty=0, action="set_quantity")], j)
    assert j.cart.lines_dict() == {"a": [2, 10.0, None, T0 + 200]}


def test_late_order_is_still_a_purchase() -> None:
    j, _ = run([view(T0 + 100), view(T0 + 200)])
    j, outs = run([order(T0 + 150, oid="L", total=30.0)], j)
    assert (j.stage, j.orders, j.total_spend, j.last_seen) == ("purchase", 1, 30.0, T0 + 200)
    assert _paths(outs) == ["touch→purchase"]
    assert signals(outs, "out_of_order") == [{"type": "signal", "name": "out_of_order"}]


def test_grace_accepts_slightly_late_events() -> None:
    cfg = JourneyConfig(out_of_order_grace_s=10)
    j, _ = run([view(T0 + 100)], config=cfg)
    j, outs = run([cart(T0 + 95, pid="a")], j, config=cfg)
    assert j.stage == "seed"
    assert signals(outs, "out_of_order") == []
    j, outs = run([view(T0 + 80)], j, config=cfg)
    assert signals(outs, "out_of_order") == [{"type": "signal", "name": "out_of_order"}]


def test_identity_link_is_irrelevant_to_the_journey() -> None:
    j, _ = run([view(T0)])
    before = j.to_dict()
    link = IdentityLink(event_id="l", occurred_at=T0 + 5, anonymous_id="x", customer_id="c")
    j2, outs = apply(j, link, T0 + 5, CFG, customer_key="a:x")
    assert j2 is j
    assert j.to_dict() == before
    assert outs == [{"type": "signal", "name": "irrelevant", "reason": "not_journey_event"}]


def test_apply_mutates_and_returns_the_same_object() -> None:
    j, _ = run([view(T0)])
    j2, _ = apply(j, view(T0 + 1), T0 + 1, CFG, customer_key="a:x")
    assert j2 is j


def test_deterministic_outputs() -> None:
    evs: list[CustomerEvent] = [
        view(T0, eid="a1"),
        cart(T0 + 1),
        order(T0 + 2, eid="o1"),
        view(T0 + 99 * DAY, eid="z"),
    ]
    _, outs1 = run(evs)
    _, outs2 = run(evs)
    assert outs1 == outs2


def test_round_trip_through_plain_dicts() -> None:
    evs: list[CustomerEvent] = [
        view(T0, cat="baby"),
        cart(T0 + 1, cat="c"),
        order(T0 + 2),
        view(T0 + 9000),
    ]
    j, _ = run(evs)
    data = orjson.loads(orjson.dumps(j.to_dict()))
    assert CustomerJourney.from_dict(data) == j
    assert CustomerJourney.from_dict(data).to_dict() == j.to_dict()
    # the write path's form without copies encodes to the same bytes, and shares containers
    for journey in (j, run(evs[:2])[0]):  # the second with a cart
        shared = journey.to_dict(copy=False)
        assert orjson.dumps(shared) == orjson.dumps(journey.to_dict())
        assert shared["recent_views"] is journey.recent_views
        assert shared["activity"] is journey.activity
        assert journey.to_dict()["activity"] is not journey.activity
    assert journey.cart.lines


def test_long_texts_are_cut_and_stay_distinct() -> None:
    a, b = "x" * 500 + "A", "x" * 500 + "B"
    j, _ = run([view(T0, cat=a, pid=a), view(T0 + 1, cat=b, pid=b)])
    assert len(j.views_by_category) == 2
    assert all(len(k) == 200 for k in j.views_by_category)
    assert all(len(k) == 200 for k in j.recent_views)


# ----------------------------------------------------------------------------------- merging


def test_merge_sums_and_takes_the_further_stage() -> None:
    anon, _ = run([view(T0, cat="a", pid="p", sid="s1"), cart(T0 + 10, pid="q", sid="s1")])
    cust, _ = run(
        [
            view(T0 + 5000, cat="b", pid="r", anon=None, cust="c"),
            view(T0 + 5010, cat="a", pid="s", anon=None, cust="c"),
        ],
        key="c:c",
    )
    assert (anon.stage, cust.stage) == ("seed", "touch")
    merged = merge(cust, anon, CFG)
    assert merged is cust
    assert merged.stage == "seed"
    assert (merged.first_seen, merged.last_seen) == (T0, T0 + 5010)
    assert merged.sessions == 2
    assert merged.views == 3
    assert merged.views_by_category == {"a": 2, "b": 1}
    assert list(merged.recent_views) == ["p", "r", "s"]
    assert list(merged.cart) == ["q"]
    assert merged.customer_key == "c:c"
    assert (merged.customer_id, merged.anonymous_id) == ("c", "x")


def test_merge_joins_the_same_visit() -> None:
    anon, _ = run([view(T0, sid="s1")])
    cust, _ = run([view(T0 + 60, sid="s1", cust="c")], key="c:c")
    assert merge(cust, anon, CFG).sessions == 1
    anon, _ = run([view(T0)])
    cust, _ = run([view(T0 + 60, cust="c")], key="c:c")
    merged = merge(cust, anon, CFG)
    assert (merged.sessions, merged.session_start) == (1, T0)


def test_merge_counts_two_orders_as_repurchase() -> None:
    anon, _ = run([order(T0, oid="A", total=10.0)])
    cust, _ = run([order(T0 + 60, oid="B", total=20.0, cust="c")], key="c:c")
    merged = merge(cust, anon, CFG)
    assert (merged.stage, merged.orders, merged.total_spend) == ("repurchase", 2, 30.0)


def test_merge_counts_a_shared_order_once() -> None:
    anon, _ = run([order(T0, oid="A", total=10.0)])
    cust, _ = run([order(T0, oid="A", total=10.0, cust="c")], key="c:c")
    merged = merge(cust, anon, CFG)
    assert (merged.stage, merged.orders, merged.orders_placed, merged.total_spend) == (
        "purchase",
        1,
        1,
        10.0,
    )


# ------------------------------------------------------------------------------------- bounds

SMALL = JourneyConfig(
    max_categories=3,
    max_session_categories=3,
    max_recent_views=4,
    max_cart_lines=4,
    max_recent_orders=3,
    max_recent_purchases=4,
    max_purchase_categories=3,
    max_text_len=32,
    activity_days=4,
)
# SMALL bound, by hand: each stored text <= 32 chars (34 with quotes), numbers <= 25 chars.
# session + view categories + purchase categories: 3 * 3 * (34 + 1 + 25 + 1) = 549
# recent views 4 * (34 + 1 + [34, 25, 25] 90) = 500; cart 4 * (35 + [25, 25, 34, 25] 115) = 600
# recent orders 3 * (35 + [6 numbers] 160) = 585; recent purchases 4 * (35 + 26) = 244
# scalars (keys, ids, 3 texts, ~20 numbers): 600 + 3 * 34 + 20 * 25 = 1202. Total < 3700.
# activity: 4 days * ("YYYY-MM-DD" 12 + 1 + ["returning_visitor" 19, 6 numbers * 26] 178) = 764
SMALL_BOUND = 3700 + 764

texts = st.text(alphabet="abcxyzé/", min_size=1, max_size=60)
prices = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
step = st.floats(min_value=-4000, max_value=200_000, allow_nan=False)


@st.composite
def event_lists(draw: st.DrawFn) -> list[CustomerEvent]:
    """Random journeys: views, cart changes, orders and cancels, times going back now and then."""
    n = draw(st.integers(min_value=1, max_value=120))
    t = T0
    events: list[CustomerEvent] = []
    order_ids: list[str] = []
    for _ in range(n):
        t = max(T0, t + draw(step))
        sid = draw(st.sampled_from([None, "s1", "s2", "s3"]))
        what = draw(st.sampled_from(["view", "view", "view", "cart", "order", "cancel"]))
        if what == "view":
            events.append(view(t, draw(texts), draw(texts), draw(prices), sid=sid))
        elif what == "cart":
            action = draw(st.sampled_from(["add", "remove", "set_quantity"]))
            qty = draw(st.integers(min_value=0, max_value=5))
            events.append(cart(t, draw(texts), qty, action, cat=draw(texts), sid=sid))
        elif what == "order":
            oid = draw(texts)
            order_ids.append(oid)
            k = draw(st.integers(min_value=0, max_value=6))
            lines = tuple(
                (draw(texts), draw(st.integers(1, 3)), draw(prices), draw(texts)) for _ in range(k)
            )
            events.append(order(t, oid, lines, sid=sid))
        else:
            oid = draw(st.sampled_from(order_ids)) if order_ids else draw(texts)
            events.append(cancel(t, oid))
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists())
def test_state_stays_bounded_and_outputs_valid(events: list[CustomerEvent]) -> None:
    j: CustomerJourney | None = None
    for ev in events:
        j, outs = apply(j, ev, ev.occurred_at, SMALL, customer_key="a:x")
        check_outputs(outs)
        if j is not None:
            assert len(j.views_by_category) <= 3
            assert len(j.session_categories) <= 3
            assert len(j.purchase_categories) <= 3
            assert len(j.recent_views) <= 4
            assert len(j.cart) <= 4
            assert len(j.recent_orders) <= 3
            assert len(j.recent_purchases) <= 4
            assert len(j.activity) <= 4
            assert len(orjson.dumps(j.to_dict())) < SMALL_BOUND
            assert j.orders >= 0
    assert j is None or CustomerJourney.from_dict(orjson.loads(orjson.dumps(j.to_dict()))) == j


def test_default_bounds_hold_under_a_long_hostile_stream() -> None:
    # Default caps, texts up to 1000 chars (stored <= 200): 50 + 50 + 50 category counters
    # (~215 B each) + 50 recent views (~460 B) + 100 cart lines (~490 B) + 50 orders (~340 B)
    # + 50 purchases (~230 B) = 32k + 23k + 49k + 17k + 12k = 133k, plus scalars: < 150 kB.
    rng = random.Random(7)

    def text() -> str:
        return "".join(rng.choice("abcdef") for _ in range(rng.randint(1, 1000)))

    j: CustomerJourney | None = None
    t = T0
    for i in range(3000):
        t += rng.uniform(-100, 3000)
        kind = i % 4
        ev: CustomerEvent
        if kind == 0:
            ev = view(t, text(), text(), rng.uniform(0, 1e9), sid=text())
        elif kind == 1:
            ev = cart(t, text(), rng.randint(1, 9), cat=text())
        elif kind == 2:
            lines = tuple((text(), 1, 1e9, text()) for _ in range(5))
            ev = order(t, text(), lines, total=1e12)
        else:
            ev = view(t, text(), text(), 1.0)
        j, _ = apply(j, ev, t, CFG, customer_key="a:x")
    assert j is not None
    assert len(j.views_by_category) == 50
    assert len(j.cart) == 100
    assert len(j.recent_orders) == 50
    assert len(orjson.dumps(j.to_dict())) < 150_000


def test_records_were_validated() -> None:
    # every test above funnels its outputs through check_outputs; make sure it really ran
    run([view(T0), order(T0 + 1)])
    assert RECORDS_CHECKED[0] >= 4
