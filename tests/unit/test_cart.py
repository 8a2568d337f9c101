"""The one cart model (journey.cart) and what it means through the customer entry point.

The store story: a mother puts a stroller (1699.00) and a pack of wipes (49.90) in her cart and
buys the wipes alone. The stroller stays in her cart and is abandoned one hour after that order;
another wipes order later does not "recover" the stroller cart, a stroller order does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest

from journey import cart as carts
from journey.abandonment import ANY_ORDER, AbandonmentConfig
from journey.cart import Cart, CartLine
from journey.config import JourneyConfig
from journey.customer import CustomerState, apply, fire, next_due
from schemas.records import CartChange, CustomerEvent, Order, OrderLine, PageView

T0 = 1_700_000_000.0
HOUR = 3600.0
KEY = "c:mum"
STROLLER = ("sku-stroller", 1699.0, "baby/strollers")
WIPES = ("sku-wipes", 49.9, "baby/wipes")
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RECOVERED_1_0_1 = fastjsonschema.compile(
    json.loads((SCHEMAS / "abandonment_recovered" / "1-0-1.json").read_text())
)
RECOVERED_1_0_0 = fastjsonschema.compile(
    json.loads((SCHEMAS / "abandonment_recovered" / "1-0-0.json").read_text())
)
_n = iter(range(10**9))


def add(t: float, item: tuple[str, float, str], qty: int = 1, action: str = "add") -> CartChange:
    pid, price, cat = item
    return CartChange(
        event_id=f"e{next(_n)}",
        occurred_at=T0 + t,
        customer_id="mum",
        action=action,  # type: ignore[arg-type]
        product_id=pid,
        quantity=qty,
        price=price,
        category=cat,
    )


def buy(t: float, *lines: tuple[tuple[str, float, str], int], oid: str | None = None) -> Order:
    rows = tuple(
        OrderLine(product_id=pid, quantity=q, unit_price=price, category=cat)
        for (pid, price, cat), q in lines
    )
    return Order(
        event_id=f"e{next(_n)}",
        occurred_at=T0 + t,
        customer_id="mum",
        action="placed",
        order_id=oid or f"o{next(_n)}",
        lines=rows,
        total=round(sum(r.quantity * r.unit_price for r in rows), 2),
        currency="EUR",
    )


def view(t: float, pid: str, cat: str = "baby/strollers", price: float = 900.0) -> PageView:
    return PageView(
        event_id=f"e{next(_n)}",
        occurred_at=T0 + t,
        customer_id="mum",
        product_id=pid,
        category=cat,
        price=price,
        session_id="s1",
    )


class Customer:
    """One customer key through `journey.customer`, its state stored and read back each time."""

    def __init__(self, config: JourneyConfig | None = None) -> None:
        self.config = config or JourneyConfig()
        self.stored: bytes | None = None
        self.records: list[dict[str, Any]] = []

    @property
    def state(self) -> CustomerState:
        return CustomerState.from_dict(orjson.loads(self.stored or b"null"))

    def _keep(self, state: CustomerState, outs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.stored = orjson.dumps(state.to_dict())
        published = [o for o in outs if o["type"] not in ("signal", "internal")]
        for r in published:
            if r["type"] == "abandonment_recovered":
                RECOVERED_1_0_1(r)
        self.records += published
        return published

    def send(self, *events: CustomerEvent) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in events:
            state, outs = apply(self.state, e, e.occurred_at, self.config, key=KEY)
            out += self._keep(state, outs)
        return out

    def at(self, t: float) -> list[dict[str, Any]]:
        state, outs = fire(self.state, T0 + t, self.config, key=KEY)
        return self._keep(state, outs)

    def of(self, kind: str, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        return [r for r in (self.records if records is None else records) if r["type"] == kind]


# ------------------------------------------------------------------------------ the model


def test_every_quantity_change_is_one_row_of_the_table() -> None:
    assert set(carts.QUANTITY) == {"add", "remove", "set_quantity", "bought"}
    assert carts.QUANTITY["add"](2, 3) == 5
    assert carts.QUANTITY["remove"](5, 2) == 3
    assert carts.QUANTITY["remove"](5, 0) == 0  # remove 0: the whole line
    assert carts.QUANTITY["set_quantity"](5, 1) == 1
    assert carts.QUANTITY["bought"](3, 1) == 2


def test_an_order_takes_only_what_it_bought_by_quantity() -> None:
    c = Cart()
    carts.change(c, "stroller", "add", 1, T0, "e1", price=1699.0, cap=10)
    carts.change(c, "wipes", "add", 3, T0 + 60, "e2", price=49.9, cap=10)
    taken = carts.buy(c, [("wipes", 1), ("formula", 2)], T0 + 600)
    assert taken == {"wipes": 1}  # formula was never in the cart
    assert c.lines == {
        "stroller": CartLine(1, 1699.0, None, T0),
        "wipes": CartLine(2, 49.9, None, T0 + 600),
    }
    assert (c.ref, c.last_activity) == ("e1", T0 + 600)  # same cart, the order was activity
    assert carts.buy(c, [("wipes", 2), ("stroller", 5)], T0 + 700) == {"wipes": 2, "stroller": 1}
    assert c == {} and (c.ref, c.last_activity) == (None, None)


def test_a_late_add_of_a_bought_product_is_ignored_and_a_line_changed_later_wins() -> None:
    c = Cart()
    step = carts.change(c, "wipes", "add", 1, T0, "e1", bought_at=T0 + 10, cap=10)
    assert not step.applied and c == {}
    carts.change(c, "wipes", "set_quantity", 4, T0 + 20, "e2", cap=10)
    assert not carts.change(c, "wipes", "remove", 0, T0 + 15, "e3", cap=10).applied
    assert c["wipes"].quantity == 4


def test_cart_id_starts_with_the_first_change_and_an_order_cannot_start_one() -> None:
    c = Cart()
    carts.change(c, "a", "add", 1, T0, "e1", cap=10)
    carts.change(c, "b", "add", 1, T0 + 5, "e2", cap=10)
    assert (c.ref, c.last_activity) == ("e1", T0 + 5)
    upgraded = Cart.from_parts({"a": [1, None, None, T0]}, None, None)  # no id: older state
    carts.buy(upgraded, [("b", 1)], T0 + 9)
    assert upgraded.ref is None
    carts.change(upgraded, "a", "add", 1, T0 + 10, "e9", cap=10)
    assert (upgraded.ref, upgraded.last_activity) == ("e9", T0 + 10)


def test_merge_keeps_the_later_line_and_drops_lines_bought_since() -> None:
    customer = Cart()
    carts.change(customer, "a", "add", 1, T0 + 50, "c1", cap=10)
    anonymous = Cart()
    carts.change(anonymous, "a", "add", 3, T0 + 60, "x1", cap=10)
    carts.change(anonymous, "b", "add", 1, T0 + 10, "x2", cap=10)
    carts.change(anonymous, "c", "add", 1, T0 + 20, "x3", cap=10)
    merged = carts.merge(customer, anonymous, {"b": T0 + 30}, cap=10)
    assert merged is customer
    assert {p: ln.quantity for p, ln in merged.items()} == {"c": 1, "a": 3}
    assert (merged.ref, merged.last_activity) == ("c1", T0 + 60)


# ------------------------------------------------------------- one cart for both cores


def test_partial_order_leaves_the_stroller_and_it_is_abandoned_later() -> None:
    mum = Customer()
    mum.send(add(0, STROLLER), add(60, WIPES, qty=3))
    out = mum.send(buy(600, (WIPES, 3)))
    assert mum.of("cart_abandoned", out) == []
    state = mum.state
    assert state.journey is not None
    assert list(state.journey.cart) == ["sku-stroller"]  # the journey's cart is the one cart
    # the order was cart activity: the rest of the cart is abandoned one hour after it
    assert next_due(state) == T0 + 600 + HOUR
    assert mum.at(600 + HOUR - 1) == []
    [abandoned] = mum.at(600 + HOUR)
    assert abandoned["type"] == "cart_abandoned"
    assert abandoned["lines"] == [
        {"product_id": "sku-stroller", "quantity": 1, "price": 1699.0, "category": "baby/strollers"}
    ]
    assert (abandoned["value"], abandoned["item_count"]) == (1699.0, 1)
    assert mum.at(10 * HOUR) == []  # once


def test_an_order_of_part_of_a_line_keeps_the_rest_of_it() -> None:
    mum = Customer()
    mum.send(add(0, WIPES, qty=3), buy(60, (WIPES, 1)))
    [abandoned] = mum.at(60 + HOUR)
    assert abandoned["lines"][0]["quantity"] == 2
    assert abandoned["value"] == 99.8


def test_an_order_of_the_whole_cart_cancels_the_abandonment() -> None:
    mum = Customer()
    mum.send(add(0, STROLLER), add(60, WIPES), buy(600, (STROLLER, 1), (WIPES, 1)))
    assert next_due(mum.state) is None
    assert mum.at(100 * HOUR) == []


def test_a_wipes_only_order_does_not_recover_a_stroller_cart_and_a_stroller_order_does() -> None:
    mum = Customer()
    mum.send(add(0, STROLLER))
    [abandoned] = mum.at(HOUR)
    assert mum.of("abandonment_recovered", mum.send(buy(2 * HOUR, (WIPES, 2)))) == []
    out = mum.send(buy(3 * HOUR, (STROLLER, 1), (WIPES, 1), oid="o-stroller"))
    [recovered] = mum.of("abandonment_recovered", out)
    assert recovered["version"] == "1-0-1"
    assert recovered["abandonment_id"] == abandoned["id"]
    assert recovered["order_id"] == "o-stroller"
    assert recovered["order_value"] == 1748.9  # the whole order
    assert recovered["recovery_rule"] == "product_overlap"
    assert recovered["recovered_products"] == [
        {
            "product_id": "sku-stroller",
            "quantity": 1,
            "unit_price": 1699.0,
            "category": "baby/strollers",
        }
    ]
    assert recovered["recovered_value"] == 1699.0  # what came back from the abandoned cart
    assert recovered["seconds_to_recover"] == 2 * HOUR
    assert mum.of("abandonment_recovered", mum.send(buy(4 * HOUR, (STROLLER, 1)))) == []  # once


def test_any_order_rule_recovers_on_the_wipes_order_with_nothing_recovered() -> None:
    cfg = JourneyConfig(abandonment=AbandonmentConfig(recovery_rule=ANY_ORDER))
    mum = Customer(cfg)
    mum.send(add(0, STROLLER))
    mum.at(HOUR)
    [recovered] = mum.of("abandonment_recovered", mum.send(buy(2 * HOUR, (WIPES, 2))))
    assert recovered["recovery_rule"] == "any_order"
    assert (recovered["recovered_products"], recovered["recovered_value"]) == ([], 0.0)


def test_recovery_rule_is_validated() -> None:
    with pytest.raises(ValueError):
        AbandonmentConfig(recovery_rule="some_order")


def test_browse_abandonment_is_recovered_by_a_product_of_its_category_only() -> None:
    mum = Customer()
    mum.send(view(0, "aero"), view(60, "urban"), view(120, "city"))
    [browse] = mum.at(120 + 1800)
    assert browse["type"] == "browse_abandoned" and browse["category"] == "baby/strollers"
    mum.send(buy(HOUR, (WIPES, 1)))
    assert mum.of("abandonment_recovered") == []
    other = ("sku-stroller-lite", 499.0, "baby/strollers")  # never viewed, same category
    [recovered] = mum.of("abandonment_recovered", mum.send(buy(2 * HOUR, (other, 1), (WIPES, 1))))
    assert recovered["kind"] == "browse" and recovered["abandonment_id"] == browse["id"]
    assert [p["product_id"] for p in recovered["recovered_products"]] == ["sku-stroller-lite"]
    assert recovered["recovered_value"] == 499.0


def test_recovered_record_keeps_every_1_0_0_field() -> None:
    mum = Customer()
    mum.send(add(0, STROLLER))
    mum.at(HOUR)
    [recovered] = mum.of("abandonment_recovered", mum.send(buy(2 * HOUR, (STROLLER, 1))))
    old_fields = set(
        json.loads((SCHEMAS / "abandonment_recovered" / "1-0-0.json").read_text())["properties"]
    )
    as_before = {k: v for k, v in recovered.items() if k in old_fields} | {"version": "1-0-0"}
    RECOVERED_1_0_0(as_before)
    assert set(recovered) - old_fields == {
        "recovery_rule",
        "recovered_products",
        "recovered_value",
    }


# ------------------------------------------------------------------- states of older workers


def old_state() -> dict[str, Any]:
    """A customer state as the worker wrote it before the one cart: the cart twice, no ids."""
    return {
        "window": {"base": None, "events": []},
        "journey": {
            "format": 1,
            "customer_key": KEY,
            "customer_id": "mum",
            "stage": "seed",
            "segment": "new_visitor",
            "first_seen": T0,
            "last_seen": T0 + 60,
            "sessions": 1,
            "session_start": T0,
            "cart": {
                "sku-stroller": [1, 1699.0, "baby/strollers", T0],
                "sku-wipes": [3, 49.9, "baby/wipes", T0 + 60],
            },
        },
        "identity": {},
        "seen": {},
        "abandonment": {
            "v": 1,
            "cart": [
                ["sku-stroller", 1, 1699.0, "baby/strollers"],
                ["sku-wipes", 3, 49.9, "baby/wipes"],
            ],
            "cart_ref": "e-old-1",
            "cart_last": T0 + 60,
            "session": None,
            "pending": [["cart", T0 + 60 + HOUR, "e-old-1"]],
            "fired": [["0123456789abcdef0123", "browse", T0 - 600, False]],
            "ended_sids": [],
            "last_order": None,
        },
        "recommend": {},
    }


def test_a_state_written_before_the_one_cart_keeps_its_pending_cart_deadline() -> None:
    mum = Customer()
    mum.stored = orjson.dumps(old_state())
    state = mum.state
    assert state.journey is not None
    assert (state.journey.cart.ref, state.journey.cart.last_activity) == ("e-old-1", T0 + 60)
    assert next_due(state) == T0 + 60 + HOUR
    [abandoned] = mum.at(60 + HOUR)
    assert abandoned["cart_id"] == "e-old-1"
    assert [ln["product_id"] for ln in abandoned["lines"]] == ["sku-stroller", "sku-wipes"]


def test_an_old_fired_marker_without_products_is_recovered_by_any_order() -> None:
    mum = Customer()
    mum.stored = orjson.dumps(old_state())
    [recovered] = mum.of("abandonment_recovered", mum.send(buy(120, (WIPES, 1))))
    assert recovered["abandonment_id"] == "0123456789abcdef0123"
    assert recovered["recovered_products"][0]["product_id"] == "sku-wipes"


def test_a_cart_the_old_abandonment_state_had_cleared_gets_no_deadline_until_it_changes() -> None:
    data = old_state()
    abandonment = data["abandonment"]
    abandonment.update(cart=[], cart_ref=None, cart_last=None, pending=[], last_order=T0 + 90)
    mum = Customer()
    mum.stored = orjson.dumps(data)
    assert next_due(mum.state) is None
    mum.send(add(200, WIPES))
    assert next_due(mum.state) == T0 + 200 + HOUR
    [abandoned] = mum.at(200 + HOUR)
    assert {ln["product_id"] for ln in abandoned["lines"]} == {"sku-stroller", "sku-wipes"}


def test_the_example_is_a_valid_1_0_1_record_and_both_versions_ship() -> None:
    from schemas.contracts import available_schemas, validator_for

    assert available_schemas()["abandonment_recovered"] == ("1-0-0", "1-0-1")
    example = json.loads((SCHEMAS / "examples" / "abandonment_recovered.json").read_text())
    assert validator_for("abandonment_recovered", "1-0-1")(example) == example
    assert example["recovered_products"][0]["product_id"] == "sku-stroller-urban"


def test_an_anonymous_cart_follows_the_login_and_a_partial_order_there_leaves_the_rest() -> None:
    from schemas.records import IdentityLink
    from tests.unit.test_journey_identity import Cluster

    def anonymous(e: CartChange) -> CartChange:
        return dataclasses.replace(e, customer_id=None, anonymous_id="x")

    c = Cluster()
    c.produce(anonymous(add(0, STROLLER)))
    c.produce(anonymous(add(10, WIPES, qty=2)))
    c.produce(
        IdentityLink(event_id="login", occurred_at=T0 + 20, anonymous_id="x", customer_id="mum")
    )
    c.produce(buy(600, (WIPES, 2)))
    for _ in range(3):
        c.step(("input", "a:x"))
    c.step(("internal", KEY))  # the anonymous journey, cart included, joins the customer's
    c.step(("input", KEY))  # then the wipes order at the customer key
    state = c.state(KEY)
    assert state.journey is not None and list(state.journey.cart) == ["sku-stroller"]
    assert next_due(state) == T0 + 600 + HOUR
    state, outs = fire(state, T0 + 600 + HOUR, key=KEY)
    [abandoned] = [o for o in outs if o["type"] == "cart_abandoned"]
    assert [ln["product_id"] for ln in abandoned["lines"]] == ["sku-stroller"]
    assert c.state("a:x").journey is None  # nothing left behind at the anonymous key
