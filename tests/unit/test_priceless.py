"""Inputs without a price and favourites: page_view 1-0-1, the pure cores, the catalog's price."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from journey import customer as core
from journey.config import JourneyConfig
from journey.customer import CustomerState
from journey.stages import CustomerJourney, merge, profile
from journey.stages import apply as journey_apply
from recommend.catalog import Catalog
from recommend.rules import load_rules
from recommend.strategies import discount_target, downsell_after_browse
from recommend.triggers import Recommender, react
from schemas.contracts import Rejection, available_schemas, decode, encode, validator_for
from schemas.records import CartChange, CatalogItem, Order, OrderLine, PageView
from streams.messages import CustomerInput, classify, with_catalog_price

T0 = 1_790_000_000.0  # 2026-09-21, event time of the first event of every story here
NOW = T0 + 30 * 86400.0
KEY = "c:u1"
CFG = JourneyConfig()
HOUR = 3600.0


def wire(**fields: Any) -> bytes:
    """A page_view payload with the common fields filled in."""
    body = {
        "type": "page_view",
        "event_id": "ev-1",
        "occurred_at": "2026-09-21T12:00:00Z",
        "customer_id": "u1",
        "product_id": "p1",
        "category": "baby/strollers",
    }
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def view(
    t: float,
    pid: str,
    *,
    price: float | None = None,
    cat: str = "baby/strollers",
    action: str = "view",
    eid: str | None = None,
) -> PageView:
    """A page view (priceless unless `price`)."""
    return PageView(
        event_id=eid or f"v-{pid}-{t}",
        occurred_at=t,
        customer_id="u1",
        product_id=pid,
        category=cat,
        price=price,
        action=action,  # type: ignore[arg-type]
    )


def cart_add(t: float, pid: str, *, price: float | None = None, qty: int = 1) -> CartChange:
    """A cart add (priceless unless `price`)."""
    return CartChange(
        event_id=f"c-{pid}-{t}",
        occurred_at=t,
        customer_id="u1",
        action="add",
        product_id=pid,
        quantity=qty,
        price=price,
        category="baby/strollers",
    )


def run(
    events: list[Any],
    *,
    tier_of: Any = None,
    recommender: Recommender | None = None,
    flush: bool = True,
) -> tuple[CustomerState, list[dict[str, Any]]]:
    """Apply events in order through the customer core (and react, like the agent); flush."""
    state: CustomerState | None = None
    outs: list[dict[str, Any]] = []
    for event in events:
        state, out = core.apply(state, event, event.occurred_at, CFG, key=KEY, tier_of=tier_of)
        if recommender is not None:
            out += react(state, out, recommender, event.occurred_at, key=KEY, event=event)
        outs += out
    assert state is not None
    while flush and (due := core.next_due(state)) is not None:
        state, out = core.fire(state, due, CFG, key=KEY, tier_of=tier_of)
        if recommender is not None:
            out += react(state, out, recommender, due, key=KEY)
        outs += out
    for out in outs:  # every published record is valid against the version it carries
        if out["type"] not in ("signal", "internal"):
            validator_for(out["type"], out["version"])(copy.deepcopy(out))
    return state, outs


def of(outs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The records of one type."""
    return [o for o in outs if o["type"] == kind]


# ------------------------------------------------------------------------------ wire contract


def test_page_view_versions_shipped() -> None:
    assert available_schemas()["page_view"] == ("1-0-0", "1-0-1")
    assert available_schemas()["journey_transition"] == ("1-0-0", "1-0-1")
    assert available_schemas()["browse_abandoned"] == ("1-0-0", "1-0-1")


def test_old_version_still_needs_a_price() -> None:
    rejected = decode(wire(), T0)
    assert rejected == Rejection("schema_violation", "missing required price")
    assert decode(wire(version="1-0-0"), T0) == rejected
    kept = decode(wire(price=5999.0), T0)
    assert isinstance(kept, PageView) and kept.price == 5999.0 and kept.action == "view"


def test_new_version_without_a_price() -> None:
    for payload in (wire(version="1-0-1"), wire(version="1-0-1", price=None)):
        event = decode(payload, T0)
        assert isinstance(event, PageView), event
        assert event.price is None and event.action == "view" and not event.is_favourite
    priced = decode(wire(version="1-0-1", price=12.5), T0)
    assert isinstance(priced, PageView) and priced.price == 12.5


def test_new_version_favourite() -> None:
    event = decode(wire(version="1-0-1", action="favourite"), T0)
    assert isinstance(event, PageView) and event.action == "favourite" and event.is_favourite
    assert decode(wire(version="1-0-1", action=None), T0) == decode(wire(version="1-0-1"), T0)
    bad = decode(wire(version="1-0-1", action="like"), T0)
    assert isinstance(bad, Rejection) and bad.category == "schema_violation"
    assert "action" in bad.message
    negative = decode(wire(version="1-0-1", price=-1), T0)
    assert isinstance(negative, Rejection) and negative.category == "negative_value"


def test_action_is_an_unknown_field_in_the_old_version() -> None:
    event = decode(wire(price=10.0, action="favourite"), T0)
    assert isinstance(event, PageView) and event.action == "view"


def test_encode_writes_the_oldest_version_that_carries_the_event() -> None:
    priced = view(T0, "p1", price=10.0)
    body = orjson.loads(encode(priced))
    assert body["version"] == "1-0-0" and "action" not in body and body["price"] == 10.0
    for event in (
        view(T0, "p1"),
        view(T0, "p1", action="favourite"),
        view(T0, "p1", price=3.0, action="favourite"),
    ):
        body = orjson.loads(encode(event))
        assert body["version"] == "1-0-1"
        assert ("price" in body) == (event.price is not None)
        validator_for("page_view", "1-0-1")(body)
        assert decode(encode(event), T0) == event
    assert decode(encode(priced), T0) == priced


def test_cart_price_was_already_optional() -> None:
    body = {
        "type": "cart",
        "event_id": "c1",
        "occurred_at": "2026-09-21T12:00:00Z",
        "customer_id": "u1",
        "action": "add",
        "product_id": "p1",
        "quantity": 1,
    }
    event = decode(orjson.dumps(body), T0)
    assert isinstance(event, CartChange) and event.price is None


# ------------------------------------------------------------------------------ pure cores


def test_priceless_view_and_cart_make_the_journey() -> None:
    state, outs = run([view(T0, "p1"), cart_add(T0 + 60, "p1")])
    stages = [
        (r["from_stage"], r["to_stage"], r["trigger"])
        for r in of(outs, "journey_transition")
        if r["kind"] == "stage"
    ]
    assert stages == [(None, "touch", "first_contact"), ("touch", "seed", "add_to_cart")]
    j = state.journey
    assert j is not None
    assert (j.views, j.priced_views, j.view_price_sum) == (1, 0, 0.0)
    assert j.recent_views["p1"][1] is None
    [abandoned] = of(outs, "cart_abandoned")
    assert abandoned["lines"] == [
        {"product_id": "p1", "quantity": 1, "price": None, "category": "baby/strollers"}
    ]
    assert abandoned["value"] == 0.0


def test_priceless_browse_abandonment_has_unknown_prices_and_no_tier() -> None:
    asked: list[tuple[str, float]] = []

    def tier_of(category: str, price: float) -> str:
        asked.append((category, price))
        return "high"

    events = [view(T0 + i * 60, f"p{i}") for i in range(3)]
    events.append(view(T0 + 180, "p3", price=5000.0))
    _state, outs = run(events, tier_of=tier_of)
    [browse] = of(outs, "browse_abandoned")
    assert browse["version"] == "1-0-1"
    assert browse["products"] == [
        {"product_id": "p0", "price": None, "price_tier": None, "high_priced": False},
        {"product_id": "p1", "price": None, "price_tier": None, "high_priced": False},
        {"product_id": "p2", "price": None, "price_tier": None, "high_priced": False},
        {"product_id": "p3", "price": 5000.0, "price_tier": "high", "high_priced": True},
    ]
    assert browse["high_priced_count"] == 1 and browse["high_priced"] is False
    assert asked == [("baby/strollers", 5000.0)]  # never asked about an unknown price


def test_priced_browse_abandonment_stays_version_1_0_0() -> None:
    _state, outs = run([view(T0 + i * 60, f"p{i}", price=10.0 + i) for i in range(3)])
    [browse] = of(outs, "browse_abandoned")
    assert browse["version"] == "1-0-0"
    assert [p["price"] for p in browse["products"]] == [10.0, 11.0, 12.0]


def test_a_view_without_a_price_keeps_the_price_seen_before() -> None:
    events = [
        view(T0, "p0", price=40.0),
        view(T0 + 60, "p1"),
        view(T0 + 120, "p2"),
        view(T0 + 180, "p0"),
    ]
    _state, outs = run(events)
    [browse] = of(outs, "browse_abandoned")
    assert [(p["product_id"], p["price"]) for p in browse["products"]] == [
        ("p1", None),
        ("p2", None),
        ("p0", 40.0),
    ]


def test_viewed_price_average_counts_only_known_prices() -> None:
    # one view at 100 and one without a price: the viewed average is 100, not 50, so an order
    # at 60 a unit is below it (price_sensitive with one order)
    order = Order(
        event_id="o1",
        occurred_at=T0 + 120,
        customer_id="u1",
        action="placed",
        order_id="o1",
        lines=(OrderLine(product_id="p9", quantity=1, unit_price=60.0),),
        total=60.0,
    )
    state, _ = run([view(T0, "p1", price=100.0), view(T0 + 60, "p2"), order], flush=False)
    j = state.journey
    assert j is not None and (j.views, j.priced_views, j.view_price_sum) == (2, 1, 100.0)
    assert j.orders_below_view_avg == 1 and "price_sensitive" in j.tags(CFG)


def test_state_written_before_priced_views_counts_every_view_as_priced() -> None:
    old = CustomerJourney(customer_key=KEY, views=4, view_price_sum=80.0).to_dict()
    del old["priced_views"], old["favourites"]
    restored = CustomerJourney.from_dict(old)
    assert restored.priced_views == 4 and restored.favourites == {}


def test_favourite_is_a_seeding_signal_not_a_view() -> None:
    fav = view(T0 + 60, "p7", cat="home/kitchen", action="favourite")
    state, outs = run([view(T0, "p1", price=10.0), fav])
    stage = [r for r in of(outs, "journey_transition") if r["kind"] == "stage"]
    assert [(r["to_stage"], r["trigger"], r["version"]) for r in stage] == [
        ("touch", "first_contact", "1-0-0"),
        ("seed", "favourite", "1-0-1"),
    ]
    j = state.journey
    assert j is not None and j.views == 1 and j.views_by_category == {"baby/strollers": 1}
    assert j.favourites == {"p7": ["home/kitchen", T0 + 60]}
    assert "favourites" in j.tags(CFG)
    shown = profile(j, T0 + 120, CFG)
    assert shown["favourites"] == [{"product_id": "p7", "category": "home/kitchen", "at": T0 + 60}]
    restored = CustomerJourney.from_dict(orjson.loads(orjson.dumps(j.to_dict())))
    assert restored == j


def test_favourites_do_not_make_a_browse_abandonment() -> None:
    events = [view(T0 + i * 60, f"p{i}", action="favourite") for i in range(3)]
    state, outs = run(events)
    assert of(outs, "browse_abandoned") == []
    assert state.journey is not None and state.journey.views == 0
    assert len(state.journey.favourites) == 3


def test_a_favourite_on_a_seeded_journey_moves_nothing() -> None:
    _state, outs = run(
        [view(T0, "p1"), cart_add(T0 + 60, "p1"), view(T0 + 90, "p2", action="favourite")],
        flush=False,
    )
    stage = [r["trigger"] for r in of(outs, "journey_transition") if r["kind"] == "stage"]
    assert stage == ["first_contact", "add_to_cart"]


def test_priceless_abandonments_through_the_recommender() -> None:
    recommender = Recommender(rules=load_rules(None))
    events = [view(T0 + i * 60, f"p{i}") for i in range(3)]
    events.append(cart_add(T0 + 2 * HOUR, "p0"))
    events.append(cart_add(T0 + 2 * HOUR + 60, "p1", price=30.0, qty=2))
    _state, outs = run(events, recommender=recommender)
    assert len(of(outs, "browse_abandoned")) == 1
    [abandoned] = of(outs, "cart_abandoned")
    assert abandoned["value"] == 60.0  # only the line whose price is known
    browse = of(outs, "browse_abandoned")[0]
    assert downsell_after_browse(browse, recommender.catalog, min_high=1) == []
    target = discount_target(abandoned, None, recommender.rules, recommender.catalog)
    assert target is not None and target.product_id == "p1"


# ------------------------------------------------------------------- the catalog's price


def catalog_with(pid: str, price: float) -> Catalog:
    """A catalog that knows one product."""
    catalog = Catalog()
    catalog.observe_item(
        CatalogItem(
            event_id=f"cat-{pid}",
            occurred_at=T0 - 86400,
            product_id=pid,
            title=pid,
            category_path=("baby", "strollers"),
            price=price,
            stock=3,
        )
    )
    return catalog


def test_catalog_price_fills_a_missing_price() -> None:
    catalog = catalog_with("p1", 1290.0)
    assert catalog.price_of("p1") == 1290.0 and catalog.price_of("nope") is None
    filled = with_catalog_price(view(T0, "p1"), catalog.price_of)
    assert isinstance(filled, PageView) and filled.price == 1290.0
    assert with_catalog_price(view(T0, "p1", price=999.0), catalog.price_of).price == 999.0
    assert with_catalog_price(view(T0, "nope"), catalog.price_of).price is None
    added = with_catalog_price(cart_add(T0, "p1"), catalog.price_of)
    assert isinstance(added, CartChange) and added.price == 1290.0

    def broken(_pid: str) -> float:
        raise KeyError(_pid)

    assert with_catalog_price(view(T0, "p1"), broken).price is None


def test_classify_takes_the_catalog_price_and_the_cart_value_uses_it() -> None:
    catalog = catalog_with("p1", 1290.0)
    cart_body = {
        "type": "cart",
        "event_id": "c1",
        "occurred_at": "2026-09-21T12:00:00Z",
        "customer_id": "u1",
        "action": "add",
        "product_id": "p1",
        "quantity": 2,
    }
    messages = [
        classify(
            "events.cart",
            b"c:u1",
            orjson.dumps(body),
            internal_topic="internal",
            now=NOW,
            max_bytes=65536,
            future_tolerance=300.0,
            price_of=catalog.price_of,
        )
        for body in (cart_body, {**cart_body, "event_id": "c2", "product_id": "p2"})
    ]
    assert all(isinstance(m, CustomerInput) for m in messages)
    events = [m.event for m in messages if isinstance(m, CustomerInput)]
    assert [e.price for e in events if isinstance(e, CartChange)] == [1290.0, None]
    _state, outs = run(events)
    [abandoned] = of(outs, "cart_abandoned")
    assert [line["price"] for line in abandoned["lines"]] == [1290.0, None]
    assert abandoned["value"] == 2580.0


@pytest.mark.parametrize("with_catalog", [False, True])
def test_classify_leaves_the_price_unknown_without_the_catalog(with_catalog: bool) -> None:
    message = classify(
        "events.page-view",
        b"c:u1",
        wire(version="1-0-1"),
        internal_topic="internal",
        now=NOW,
        max_bytes=65536,
        future_tolerance=300.0,
        price_of=Catalog().price_of if with_catalog else None,
    )
    assert isinstance(message, CustomerInput) and isinstance(message.event, PageView)
    assert message.event.price is None


def test_a_one_id_merge_keeps_favourites_and_known_price_counts() -> None:
    anon_views = [view(T0, "p1"), view(T0 + 60, "p2", action="favourite")]
    source = stages_apply(None, anon_views, "a:dev")
    target = stages_apply(None, [view(T0 + 7200, "p3", price=50.0)], KEY)
    merged = merge(target, source, CFG)
    assert (merged.views, merged.priced_views, merged.view_price_sum) == (2, 1, 50.0)
    assert merged.favourites == {"p2": ["baby/strollers", T0 + 60]}
    assert merged.stage == "seed" and "favourites" in merged.tags(CFG)


def stages_apply(
    state: CustomerJourney | None, events: list[PageView], key: str
) -> CustomerJourney:
    """The journey core alone over `events`."""
    for event in events:
        state, _ = journey_apply(state, event, event.occurred_at, CFG, customer_key=key)
    assert state is not None
    return state
