"""Unit tests of the abandonment core: deadlines, suppression, exactly-once, recovery, bounds.

The cart is the journey's one cart model (`journey.cart`): these tests keep a `Cart` beside the
abandonment state and change it with that model's own functions, as the journey does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey import cart as carts
from journey.abandonment import (
    DEFAULT_CONFIG,
    AbandonmentConfig,
    AbandonmentState,
    Deadline,
    apply,
    fire,
    flush,
    next_due,
)
from journey.cart import Cart
from schemas.records import CartChange, CustomerEvent, IdentityLink, Order, OrderLine, PageView

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OUTPUT_VERSIONS = {
    "cart_abandoned": "1-0-0",
    "browse_abandoned": "1-0-0",
    "abandonment_recovered": "1-0-1",
}
VALIDATORS = {
    t: fastjsonschema.compile(json.loads((SCHEMAS / t / f"{v}.json").read_text()))
    for t, v in OUTPUT_VERSIONS.items()
}
KEY = "c:42"
T0 = 1_700_000_000.0
_ids = itertools.count()


# ---------------------------------------------------------------------------------------------
# helpers


def eid() -> str:
    return f"e{next(_ids)}"


def pv(
    t: float, pid: str, cat: str = "baby/strollers", price: float = 100.0, sid: str | None = None
) -> PageView:
    return PageView(
        event_id=eid(),
        occurred_at=T0 + t,
        product_id=pid,
        category=cat,
        price=price,
        session_id=sid,
    )


def cart(
    t: float,
    pid: str,
    action: str = "add",
    qty: int = 1,
    price: float | None = 10.0,
    cat: str | None = "toys",
    sid: str | None = None,
) -> CartChange:
    return CartChange(
        event_id=eid(),
        occurred_at=T0 + t,
        action=action,  # type: ignore[arg-type]
        product_id=pid,
        quantity=qty,
        price=price,
        category=cat,
        session_id=sid,
    )


def order(
    t: float,
    oid: str = "o1",
    total: float = 50.0,
    action: str = "placed",
    sid: str | None = None,
    lines: Sequence[tuple[str, int, float, str | None]] | None = None,
) -> Order:
    """An order; by default one line: one unit of p1 at `total`."""
    rows = lines if lines is not None else [("p1", 1, total, None)]
    return Order(
        event_id=eid(),
        occurred_at=T0 + t,
        action=action,  # type: ignore[arg-type]
        order_id=oid,
        lines=tuple(
            OrderLine(product_id=p, quantity=q, unit_price=u, category=c) for p, q, u, c in rows
        ),
        total=total,
        currency="EUR",
        session_id=sid,
    )


def link(t: float, sid: str | None = None) -> IdentityLink:
    return IdentityLink(
        event_id=eid(), occurred_at=T0 + t, anonymous_id="anon", customer_id="42", session_id=sid
    )


def stroller_tiers(category: str, price: float) -> str | None:
    if category != "baby/strollers":
        return None
    return "high" if price >= 500 else "mid" if price >= 200 else "low"


def check(outputs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate every published record against its schema; return the published records."""
    published = []
    for rec in outputs:
        if rec["type"] == "signal":
            assert set(rec) >= {"name", "kind"}
            continue
        VALIDATORS[rec["type"]](rec)
        orjson.dumps(rec)
        published.append(rec)
    return published


def change_cart(cart: Cart, bought: dict[str, float], event: CustomerEvent) -> None:
    """What the journey does to the customer's cart for one event (the shared cart model)."""
    t = event.occurred_at
    if isinstance(event, CartChange):
        carts.change(
            cart,
            event.product_id,
            event.action,
            event.quantity,
            t,
            event.event_id,
            price=event.price,
            category=event.category,
            bought_at=bought.get(event.product_id),
            cap=100,
        )
    elif isinstance(event, Order) and event.action == "placed":
        for line in event.lines:
            bought[line.product_id] = max(t, bought.get(line.product_id, t))
        carts.buy(cart, [(ln.product_id, ln.quantity) for ln in event.lines], t)


class Runner:
    """Applies events / fires with validation, collecting published records and signals.

    Per event, as `journey.customer.apply`: deadlines due at the event's time fire against the
    cart before the event, the event changes the cart, then the core sees the event.
    """

    def __init__(
        self,
        config: AbandonmentConfig = DEFAULT_CONFIG,
        tier_of: Callable[[str, float], str | None] | None = None,
        state: AbandonmentState | None = None,
        key: str = KEY,
        cart: Cart | None = None,
    ) -> None:
        self.config = config
        self.tier_of = tier_of
        self.state = state
        self.key = key
        self.cart = cart if cart is not None else Cart()
        self.bought: dict[str, float] = {}
        self.records: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []

    def snapshot(self) -> bytes:
        """What a crash keeps: the stored abandonment state, cart and purchase times."""
        c = self.cart
        return orjson.dumps(
            {
                "state": self.state.to_dict() if self.state is not None else None,
                "cart": [c.lines_dict(), c.ref, c.last_activity],
                "bought": self.bought,
            }
        )

    @classmethod
    def restore(
        cls,
        blob: bytes,
        config: AbandonmentConfig = DEFAULT_CONFIG,
        tier_of: Callable[[str, float], str | None] | None = None,
    ) -> Runner:
        data = orjson.loads(blob)
        state = AbandonmentState.from_dict(data["state"], config) if data["state"] else None
        r = cls(config, tier_of, state, cart=Cart.from_parts(*data["cart"]))
        r.bought = dict(data["bought"])
        return r

    def _take(self, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.signals += [o for o in outputs if o["type"] == "signal"]
        pub = check(outputs)
        self.records += pub
        return pub

    def apply(self, event: CustomerEvent) -> list[dict[str, Any]]:
        due: list[dict[str, Any]] = []
        if self.state is not None:
            self.state, due = fire(
                self.state,
                event.occurred_at,
                self.config,
                customer_key=self.key,
                tier_of=self.tier_of,
                cart=self.cart,
            )
        change_cart(self.cart, self.bought, event)
        self.state, out = apply(
            self.state,
            event,
            event.occurred_at,
            self.config,
            customer_key=self.key,
            tier_of=self.tier_of,
            cart=self.cart,
        )
        return self._take(due + out)

    def fire(self, t: float) -> list[dict[str, Any]]:
        assert self.state is not None
        self.state, out = fire(
            self.state,
            T0 + t,
            self.config,
            customer_key=self.key,
            tier_of=self.tier_of,
            cart=self.cart,
        )
        return self._take(out)

    def flush(self) -> list[dict[str, Any]]:
        assert self.state is not None
        self.state, out = flush(
            self.state, self.config, customer_key=self.key, tier_of=self.tier_of, cart=self.cart
        )
        return self._take(out)

    def run(self, events: Iterable[CustomerEvent]) -> Runner:
        for e in events:
            self.apply(e)
        return self

    def types(self) -> list[str]:
        return [r["type"] for r in self.records]


def types(records: Sequence[dict[str, Any]]) -> list[str]:
    return [r["type"] for r in records]


# ---------------------------------------------------------------------------------------------
# cart abandonment


def test_cart_fires_exactly_at_deadline_and_not_a_second_before() -> None:
    r = Runner().run([cart(0, "p1", qty=2, price=12.5, cat="toys"), cart(100, "p2", price=3.0)])
    assert r.state is not None
    assert next_due(r.state) == T0 + 100 + 3600
    assert r.fire(100 + 3599) == []
    [rec] = r.fire(100 + 3600)
    assert rec["type"] == "cart_abandoned"
    assert rec["customer_key"] == KEY and rec["customer_id"] == "42"
    assert rec["lines"] == [
        {"product_id": "p1", "quantity": 2, "price": 12.5, "category": "toys"},
        {"product_id": "p2", "quantity": 1, "price": 3.0, "category": "toys"},
    ]
    assert rec["value"] == 28.0
    assert rec["item_count"] == 3
    assert rec["seconds_since_last_activity"] == 3600
    assert rec["occurred_at"] == "2023-11-14T23:15:00.000Z"  # T0 + 3700
    assert next_due(r.state) is None
    assert r.fire(10**6) == []


def test_cart_cancelled_by_order() -> None:
    r = Runner().run([cart(0, "p1"), order(3599)])
    assert r.state is not None and next_due(r.state) is None
    assert r.flush() == []
    assert {
        "type": "signal",
        "name": "abandonment_cancelled",
        "kind": "cart",
        "reason": "order",
    } in (r.signals)
    assert r.cart == {}


def test_cart_change_processed_after_a_later_order_does_not_rebuild_a_bought_line() -> None:
    # carts and orders come on different topics: the order (of p1) may be processed first
    r = Runner().run([order(10), cart(5, "p1")])
    assert r.state is not None and r.cart == {}
    assert next_due(r.state) is None
    assert r.flush() == []
    # a product the order did not buy is in the cart: the order settles only what it bought
    r.apply(cart(10, "p2"))
    assert list(r.cart) == ["p2"]
    assert next_due(r.state) == T0 + 10 + 3600


def test_cancelled_order_does_not_cancel_cart() -> None:
    r = Runner().run([cart(0, "p1"), order(10, action="cancelled")])
    assert types(r.flush()) == ["cart_abandoned"]


def test_cart_cancelled_by_emptying() -> None:
    for empty in (
        cart(50, "p1", action="remove", qty=0),
        cart(50, "p1", action="remove", qty=5),
        cart(50, "p1", action="set_quantity", qty=0),
    ):
        r = Runner().run([cart(0, "p1", qty=2), empty])
        assert r.state is not None and next_due(r.state) is None
        assert r.flush() == []
        assert r.signals[-1]["reason"] == "emptied"


def test_partial_remove_keeps_cart_and_moves_deadline() -> None:
    r = Runner().run([cart(0, "p1", qty=3), cart(600, "p1", action="remove", qty=1)])
    [rec] = r.fire(600 + 3600)
    assert rec["lines"][0]["quantity"] == 2


def test_new_cart_activity_moves_deadline() -> None:
    r = Runner().run([cart(0, "p1"), cart(1800, "p2")])
    assert r.state is not None and next_due(r.state) == T0 + 1800 + 3600
    assert r.fire(3600) == []
    assert len(r.fire(5400)) == 1


def test_page_view_does_not_move_cart_deadline() -> None:
    r = Runner().run([cart(0, "p1"), pv(1000, "x")])
    assert r.state is not None and next_due(r.state) == T0 + 3600


def test_apply_fires_a_passed_cart_deadline_before_the_event() -> None:
    r = Runner()
    r.apply(cart(0, "p1"))
    out = r.apply(order(3600))  # at exactly the deadline: abandoned first, then recovered
    assert types(out) == ["cart_abandoned", "abandonment_recovered"]
    assert out[1]["seconds_to_recover"] == 0
    r2 = Runner()
    r2.apply(cart(0, "p1"))
    assert types(r2.apply(order(3599.999))) == []


def test_cart_delay_is_configurable() -> None:
    r = Runner(AbandonmentConfig(cart_delay_s=60)).run([cart(0, "p1")])
    assert r.fire(59) == [] and len(r.fire(60)) == 1


def test_unknown_price_lines_excluded_from_value() -> None:
    r = Runner().run([cart(0, "p1", price=None, cat=None), cart(1, "p2", price=2.5, qty=2)])
    [rec] = r.flush()
    assert rec["value"] == 5.0
    assert rec["lines"][0] == {"product_id": "p1", "quantity": 1, "price": None, "category": None}


# ---------------------------------------------------------------------------------------------
# browse abandonment


def views(t0: float, pids: Sequence[str], **kw: Any) -> list[PageView]:
    return [pv(t0 + 10 * i, p, **kw) for i, p in enumerate(pids)]


def test_browse_threshold() -> None:
    assert Runner().run(views(0, ["a", "b"])).flush() == []
    assert Runner().run(views(0, ["a", "a", "a"])).flush() == []
    assert types(Runner().run(views(0, ["a", "b", "c"])).flush()) == ["browse_abandoned"]
    # distinct per category: 2 + 2 in two categories is not enough
    evs = views(0, ["a", "b"], cat="x") + views(100, ["c", "d"], cat="y")
    assert Runner().run(evs).flush() == []


def test_browse_ends_by_gap_exactly() -> None:
    r = Runner().run(views(0, ["a", "b", "c"]))  # last view at 20
    assert r.state is not None and next_due(r.state) == T0 + 20 + 1800
    assert r.fire(20 + 1799) == []
    r2 = Runner().run(views(0, ["a", "b", "c"]))
    assert r2.apply(pv(20 + 1799, "d")) == []  # still the same session: deadline moves
    out = Runner().run(views(0, ["a", "b", "c"])).apply(pv(20 + 1800, "d"))
    [rec] = out
    assert rec["ended_by"] == "inactivity"
    assert rec["seconds_since_last_activity"] == 1800
    assert rec["occurred_at"] == "2023-11-14T22:43:40.000Z"  # T0 + 20 + 1800
    assert [p["product_id"] for p in rec["products"]] == ["a", "b", "c"]


def test_browse_ends_by_new_session_id() -> None:
    r = Runner().run(views(0, ["a", "b", "c"], sid="s1"))
    out = r.apply(pv(30, "z", sid="s2"))
    [rec] = out
    assert rec["ended_by"] == "new_session"
    assert rec["session_id"] == "s1"
    assert rec["seconds_since_last_activity"] == 10
    assert r.flush() == []  # the new session has a single view


def test_event_without_session_id_does_not_end_session() -> None:
    r = Runner().run([*views(0, ["a", "b"], sid="s1"), pv(30, "c")])
    assert r.state is not None and r.state.session is not None
    assert r.state.session.sid == "s1"
    assert types(r.flush()) == ["browse_abandoned"]


def test_add_to_cart_in_session_suppresses_browse() -> None:
    r = Runner().run([*views(0, ["a", "b", "c"]), cart(40, "zz")])
    assert {
        "type": "signal",
        "name": "abandonment_cancelled",
        "kind": "browse",
        "reason": "cart_add",
    } in (r.signals)
    assert types(r.flush()) == ["cart_abandoned"]


def test_set_quantity_suppresses_browse_but_remove_does_not() -> None:
    r = Runner().run([*views(0, ["a", "b", "c"]), cart(40, "zz", action="set_quantity", qty=2)])
    assert types(r.flush()) == ["cart_abandoned"]
    r2 = Runner().run([*views(0, ["a", "b", "c"]), cart(40, "zz", action="remove", qty=1)])
    assert types(r2.flush()) == ["browse_abandoned"]


def test_order_in_session_suppresses_browse() -> None:
    r = Runner().run([*views(0, ["a", "b", "c"]), order(40)])
    assert r.flush() == []
    assert r.signals[-1]["reason"] == "order"


def test_add_to_cart_in_previous_session_does_not_suppress() -> None:
    r = Runner().run(
        [cart(0, "zz"), order(5, lines=[("zz", 1, 10.0, None)]), *views(5000, ["a", "b", "c"])]
    )
    assert types(r.flush()) == ["browse_abandoned"]


def test_three_high_priced_strollers() -> None:
    r = Runner(tier_of=stroller_tiers)
    r.run(
        [
            pv(0, "bugaboo-fox", price=1099.0, sid="s1"),
            pv(60, "cybex-priam", price=899.0, sid="s1"),
            pv(120, "uppababy-vista", price=949.0, sid="s1"),
            pv(130, "cybex-priam", price=899.0, sid="s1"),
        ]
    )
    [rec] = r.fire(130 + 1800)
    assert rec["type"] == "browse_abandoned"
    assert rec["category"] == "baby/strollers"
    assert rec["high_priced_count"] == 3
    assert rec["high_priced"] is True
    assert rec["distinct_products"] == 3
    assert {p["product_id"]: p["price_tier"] for p in rec["products"]} == {
        "bugaboo-fox": "high",
        "uppababy-vista": "high",
        "cybex-priam": "high",
    }


def test_mixed_tiers_and_unknown_category() -> None:
    r = Runner(tier_of=stroller_tiers).run(
        [pv(0, "a", price=100.0), pv(1, "b", price=300.0), pv(2, "c", price=600.0)]
    )
    [rec] = r.flush()
    assert [p["price_tier"] for p in rec["products"]] == ["low", "mid", "high"]
    assert rec["high_priced_count"] == 1 and rec["high_priced"] is False
    r2 = Runner(tier_of=stroller_tiers).run(views(0, ["a", "b", "c"], cat="shoes"))
    [rec2] = r2.flush()
    assert [p["price_tier"] for p in rec2["products"]] == [None, None, None]


def test_failing_tier_lookup_gives_unknown_tier() -> None:
    def boom(category: str, price: float) -> str | None:
        raise RuntimeError("catalog down")

    [rec] = Runner(tier_of=boom).run(views(0, ["a", "b", "c"])).flush()
    assert rec["high_priced_count"] == 0
    assert all(p["price_tier"] is None for p in rec["products"])


def test_browse_picks_category_with_most_products() -> None:
    evs = views(0, ["a", "b", "c", "d"], cat="x") + views(100, ["e", "f", "g"], cat="y")
    [rec] = Runner().run(evs).flush()
    assert rec["category"] == "x" and rec["distinct_products"] == 4


def test_browse_products_bounded() -> None:
    cfg = AbandonmentConfig(max_products_per_category=5)
    [rec] = Runner(cfg).run(views(0, [f"p{i}" for i in range(30)])).flush()
    assert [p["product_id"] for p in rec["products"]] == [f"p{i}" for i in range(25, 30)]


def test_late_event_of_an_ended_session_is_ignored_for_sessions() -> None:
    r = Runner().run([pv(0, "x", sid="s1"), *views(10, ["a", "b", "c"], sid="s2")])
    r.apply(pv(50, "y", sid="s1"))  # late: s1 already ended by s2
    assert r.state is not None and r.state.session is not None
    assert r.state.session.sid == "s2"
    [rec] = r.flush()
    assert rec["session_id"] == "s2"


# ---------------------------------------------------------------------------------------------
# exactly once


def test_fire_twice_emits_once() -> None:
    r = Runner().run([cart(0, "p1"), *views(2000, ["a", "b", "c"])])
    first = r.fire(5000)
    assert sorted(types(first)) == ["browse_abandoned", "cart_abandoned"]
    assert r.fire(5000) == [] and r.fire(10**7) == []


def test_reapplying_same_event_after_fire_is_suppressed_by_marker() -> None:
    e = cart(0, "p1")
    r = Runner().run([e])
    [rec] = r.fire(3600)
    r.apply(e)  # redelivered (at-least-once): same deadline, same id
    assert r.state is not None and next_due(r.state) is None  # its abandonment already fired
    assert r.fire(3600) == [] and r.flush() == []
    assert [f.id for f in r.state.fired] == [rec["id"]]
    # a deadline put back by hand is still caught by the fired marker
    r.state.pending["cart"] = Deadline("cart", T0 + 3600, e.event_id)
    assert r.fire(3600) == []
    assert r.signals[-1]["name"] == "abandonment_duplicate"


def test_crash_replay_gives_same_ids_and_no_repeat_after_seen_fire() -> None:
    events: list[CustomerEvent] = [
        cart(0, "p1", sid="s0"),
        *views(10, ["a", "b", "c"], sid="s1"),
        cart(2000, "p2"),
        pv(4000, "q", sid="s2"),
    ]
    r = Runner()
    r.run(events[:2])
    assert r.state is not None
    snapshot = r.snapshot()
    r.run(events[2:])
    r.fire(2000 + 3600)
    before = [x["id"] for x in r.records]
    assert len(before) == 2
    # crash: restore the earlier snapshot, replay the same inputs and the same fire
    r2 = Runner.restore(snapshot)
    r2.run(events[2:])
    r2.fire(2000 + 3600)
    assert [x["id"] for x in r2.records] == before
    # a state that saw the fire never repeats it, even when the inputs are replayed again
    r3 = Runner.restore(r.snapshot())
    r3.run(events[2:])
    r3.fire(2000 + 3600)
    assert r3.records == []


def test_fire_rechecks_against_current_state() -> None:
    r = Runner().run([cart(0, "p1")])
    assert r.state is not None
    r.cart.lines.clear()  # the cart changed without the deadline being cancelled
    assert r.fire(3600) == []
    assert r.signals[-1]["name"] == "abandonment_suppressed"


def test_fire_reschedules_when_config_moved_the_deadline() -> None:
    r = Runner().run([cart(0, "p1")])
    assert r.state is not None
    longer = AbandonmentConfig(cart_delay_s=7200)
    r.state, out = fire(r.state, T0 + 3600, longer, customer_key=KEY, cart=r.cart)
    assert out == [] and next_due(r.state) == T0 + 7200


# ---------------------------------------------------------------------------------------------
# recovery


def test_recovery_once_per_abandonment() -> None:
    r = Runner().run([cart(0, "p1")])
    [ab] = r.fire(3600)
    [rec] = r.apply(order(3600 + 500, oid="o9", total=99.5))
    assert rec["type"] == "abandonment_recovered"
    assert rec["kind"] == "cart" and rec["abandonment_id"] == ab["id"]
    assert rec["seconds_to_recover"] == 500
    assert rec["order_id"] == "o9" and rec["order_value"] == 99.5 and rec["currency"] == "EUR"
    assert rec["abandoned_at"] == ab["occurred_at"]
    assert r.apply(order(3600 + 600, oid="o10")) == []


def test_recovery_per_kind() -> None:
    r = Runner().run([cart(0, "p1"), *views(2000, ["a", "b", "c"])])
    r.fire(4000)
    # p1 from the cart, and a stroller (the browsed category) never viewed
    out = r.apply(order(5000, lines=[("p1", 1, 10.0, None), ("d", 1, 90.0, "baby/strollers")]))
    assert sorted(x["kind"] for x in out) == ["browse", "cart"]
    assert len({x["id"] for x in out}) == 2


def test_recovery_outside_window_gives_nothing() -> None:
    r = Runner().run([cart(0, "p1")])
    r.fire(3600)
    assert r.apply(order(3600 + 7 * 86400 + 1)) == []
    r2 = Runner().run([cart(0, "p1")])
    r2.fire(3600)
    assert len(r2.apply(order(3600 + 7 * 86400))) == 1


def test_recovery_names_latest_abandonment_of_kind() -> None:
    r = Runner().run([cart(0, "p1")])
    [a1] = r.fire(3600)
    r.apply(cart(4000, "p2"))
    [a2] = r.fire(4000 + 3600)
    [rec] = r.apply(order(9000))
    assert rec["abandonment_id"] == a2["id"] != a1["id"]
    assert r.apply(order(9100, oid="o2")) == []


def test_anonymous_key_has_null_customer_id() -> None:
    [rec] = Runner(key="a:xyz").run([cart(0, "p1")]).flush()
    assert rec["customer_id"] is None and rec["customer_key"] == "a:xyz"


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        AbandonmentConfig(browse_min_products=0)
    with pytest.raises(ValueError):
        AbandonmentConfig(browse_min_products=30, max_products_per_category=20)
    with pytest.raises(ValueError):
        AbandonmentConfig(cart_delay_s=0)


def test_apply_mutates_and_returns_same_state() -> None:
    state, _ = apply(None, cart(0, "p1"), T0, customer_key=KEY)
    same, _ = apply(state, pv(1, "a"), T0 + 1, customer_key=KEY)
    assert same is state


# ---------------------------------------------------------------------------------------------
# hypothesis: random event sequences

PRODUCTS = ["p0", "p1", "p2", "p3"]
CATEGORIES = ["baby/strollers", "shoes"]
STEPS = [0, 1, 60, 1799, 1800, 1801, 3599, 3600, 3601, 7200, 8 * 86400]
KINDS = ["view", "view", "view", "add", "remove", "set", "order", "cancel", "link"]

VIEWY_KINDS = ["view"] * 12 + ["add", "set", "remove", "order", "cancel", "link"]
VIEWY_STEPS = [0, 1, 60, 60, 60, 600, 600, 1799, 1800, 1801, 3600]


def step_strategy(
    kinds: list[str], steps: list[int], sid_modes: list[str]
) -> st.SearchStrategy[tuple[int, str, int, int, str, int]]:
    return st.tuples(
        st.sampled_from(steps),
        st.sampled_from(kinds),
        st.integers(0, len(PRODUCTS) - 1),
        st.integers(0, len(CATEGORIES) - 1),
        st.sampled_from(sid_modes),
        st.integers(0, 2),
    )


def steps_st(max_size: int, min_size: int = 0) -> st.SearchStrategy[list[Any]]:
    """Mixed cart-heavy and (longer) browse-heavy sequences."""
    cart_heavy = st.lists(
        step_strategy(KINDS, STEPS, ["keep", "keep", "none", "next"]),
        min_size=min_size,
        max_size=max_size,
    )
    browse_heavy = st.lists(
        step_strategy(VIEWY_KINDS, VIEWY_STEPS, ["keep"] * 6 + ["none", "next"]),
        min_size=max(min_size, 8),
        max_size=max_size,
    )
    return cart_heavy | browse_heavy


def build(steps: Sequence[tuple[int, str, int, int, str, int]]) -> list[CustomerEvent]:
    """Time-ordered events with monotone session ids (an ended session id never comes back)."""
    t = 0.0
    sid_n = 0
    out: list[CustomerEvent] = []
    for i, (dt, kind, p, c, sid_mode, q) in enumerate(steps):
        t += dt
        if sid_mode == "next":
            sid_n += 1
        sid = None if sid_mode == "none" else f"s{sid_n}"
        pid, cat, ts, ev = PRODUCTS[p], CATEGORIES[c], T0 + t, f"e{i}"
        common: dict[str, Any] = {"event_id": ev, "occurred_at": ts, "session_id": sid}
        price = 150.0 * (p + 1)
        if kind == "view":
            out.append(PageView(product_id=pid, category=cat, price=price, **common))
        elif kind in ("add", "remove", "set"):
            action = {"add": "add", "remove": "remove", "set": "set_quantity"}[kind]
            qty = q + 1 if kind == "add" else q
            out.append(
                CartChange(
                    action=action,  # type: ignore[arg-type]
                    product_id=pid,
                    quantity=qty,
                    price=price,
                    category=cat,
                    **common,
                )
            )
        elif kind in ("order", "cancel"):
            out.append(
                Order(
                    action="placed" if kind == "order" else "cancelled",
                    order_id=f"o{i}",
                    lines=(OrderLine(product_id=pid, quantity=1, unit_price=price, category=cat),),
                    total=price,
                    **common,
                )
            )
        else:
            out.append(IdentityLink(anonymous_id="anon", customer_id="42", **common))
    return out


def _sha(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def reference(
    events: Sequence[CustomerEvent], cfg: AbandonmentConfig, key: str
) -> list[tuple[str, str]]:
    """Independent batch computation of (type, id) of every abandonment and recovery."""
    evs = sorted(events, key=lambda e: e.occurred_at)

    def is_placed(e: CustomerEvent) -> bool:
        return isinstance(e, Order) and e.action == "placed"

    # kind, id, due, seq, abandoned products, abandoned category (browse)
    abandons: list[tuple[str, str, float, int, frozenset[str], str | None]] = []

    # carts: lines change by cart events and by placed orders (by the units they buy); each
    # change is cart activity, and a change leaving lines is abandoned iff no further change
    # comes before its deadline. A raise of a product bought at or after it is ignored.
    lines: dict[str, int] = {}
    bought: dict[str, float] = {}
    ref = ""
    activity: list[tuple[float, str | None, frozenset[str]]] = []  # t, cart id (None: empty)
    for e in evs:
        t = e.occurred_at
        if is_placed(e):
            assert isinstance(e, Order)
            took = False
            for ln in e.lines:
                bought[ln.product_id] = t
                if ln.product_id in lines:
                    took = True
                    left = lines.pop(ln.product_id) - ln.quantity
                    if left > 0:
                        lines[ln.product_id] = left
            if took:
                activity.append((t, ref if lines else None, frozenset(lines)))
            continue
        if not isinstance(e, CartChange):
            continue
        was_empty = not lines
        have = lines.get(e.product_id, 0)
        if e.action == "add":
            new = have + e.quantity
        elif e.action == "set_quantity":
            new = e.quantity
        else:
            new = 0 if e.quantity <= 0 else max(have - e.quantity, 0)
        if new > have and bought.get(e.product_id, -math.inf) >= t:
            continue  # a late add of something bought since
        lines.pop(e.product_id, None)
        if new > 0:
            lines[e.product_id] = new
        if was_empty:
            ref = e.event_id
        activity.append((t, ref if lines else None, frozenset(lines)))
    for i, (t, cart_ref, products) in enumerate(activity):
        if cart_ref is None:
            continue
        due = t + cfg.cart_delay_s
        if i + 1 == len(activity) or activity[i + 1][0] >= due:
            abandons.append(
                (
                    "cart",
                    _sha(key, "cart", cart_ref, f"{due:.3f}"),
                    due,
                    len(abandons),
                    products,
                    None,
                )
            )

    # sessions: split on inactivity gap or a different explicit session id
    sessions: list[dict[str, Any]] = []
    for e in evs:
        cur = sessions[-1] if sessions else None
        t = e.occurred_at
        if cur is not None:
            gap = t - cur["last"] >= cfg.session_gap_s
            new_sid = e.session_id and cur["sid"] and e.session_id != cur["sid"]
            if gap or new_sid:
                cur["end"] = cur["last"] + cfg.session_gap_s if gap else t
                cur = None
        if cur is None:
            cur = {"first": e.event_id, "sid": e.session_id, "last": t, "events": []}
            sessions.append(cur)
        cur["last"] = max(cur["last"], t)
        cur["sid"] = cur["sid"] or e.session_id
        cur["events"].append(e)
    if sessions:
        sessions[-1]["end"] = sessions[-1]["last"] + cfg.session_gap_s
    for s in sessions:
        evts = s["events"]
        carted = any(
            isinstance(e, CartChange) and e.action != "remove" and e.quantity > 0 for e in evts
        )
        if carted or any(is_placed(e) for e in evts):
            continue
        per_cat: dict[str, set[str]] = {}
        for e in evts:
            if isinstance(e, PageView):
                per_cat[e.category] = per_cat.pop(e.category, set()) | {e.product_id}
        if max((len(v) for v in per_cat.values()), default=0) >= cfg.browse_min_products:
            sref = s["sid"] or "~" + s["first"]
            due = s["end"]
            # the category with the most products; ties: the most recently viewed one
            best = max(reversed(per_cat), key=lambda c: len(per_cat[c]))
            abandons.append(
                (
                    "browse",
                    _sha(key, "browse", sref, f"{due:.3f}"),
                    due,
                    len(abandons),
                    frozenset(per_cat[best]),
                    best,
                )
            )

    def matches(a: tuple[str, str, float, int, frozenset[str], str | None], o: Order) -> bool:
        return any(ln.product_id in a[4] or ln.category == a[5] for ln in o.lines)

    result = [(f"{a[0]}_abandoned", a[1]) for a in abandons]
    recovered: set[str] = set()
    for e in evs:
        if not is_placed(e):
            continue
        assert isinstance(e, Order)
        t = e.occurred_at
        for kind in ("cart", "browse"):
            cands = [
                a
                for a in abandons
                if a[0] == kind
                and a[1] not in recovered
                and a[2] <= t
                and t - a[2] <= cfg.recovery_window_s
                and matches(a, e)
            ]
            if cands:
                latest = max(cands, key=lambda a: (a[2], a[3]))
                result.append(
                    ("abandonment_recovered", _sha(key, "recovered", latest[1], e.order_id))
                )
                recovered.update(a[1] for a in cands)
    return result


REF_CONFIG = AbandonmentConfig(max_fired=1000)


def core_run(
    events: Sequence[CustomerEvent], fire_fracs: Sequence[float] = ()
) -> list[tuple[str, str]]:
    r = Runner(REF_CONFIG, tier_of=stroller_tiers)
    prev = None
    for i, e in enumerate(events):
        if prev is not None and i < len(fire_fracs) and fire_fracs[i] >= 0:
            r.fire(prev + fire_fracs[i] * (e.occurred_at - T0 - prev))
        r.apply(e)
        prev = e.occurred_at - T0
    if r.state is not None:
        r.flush()
        assert next_due(r.state) is None
    return [(x["type"], x["id"]) for x in r.records]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps_st(40))
def test_core_matches_batch_reference(steps: list[tuple[int, str, int, int, str, int]]) -> None:
    events = build(steps)
    expected = reference(events, REF_CONFIG, KEY)
    got = core_run(events)
    assert Counter(got) == Counter(expected)
    assert Counter(k for k, _ in got) == Counter(k for k, _ in expected)


@settings(max_examples=200, deadline=None)
@given(
    steps_st(30),
    st.lists(st.sampled_from([-1.0, -1.0, 0.0, 0.5, 1.0]), max_size=30),
)
def test_intermediate_fires_do_not_change_results(
    steps: list[tuple[int, str, int, int, str, int]], fracs: list[float]
) -> None:
    events = build(steps)
    assert Counter(core_run(events, fracs)) == Counter(core_run(events))


@settings(max_examples=200, deadline=None)
@given(steps_st(30, min_size=1), st.data())
def test_crash_replay_is_deterministic(
    steps: list[tuple[int, str, int, int, str, int]], data: st.DataObject
) -> None:
    events = build(steps)
    k = data.draw(st.integers(0, len(events)))
    fire_at = [data.draw(st.sampled_from([-1.0, 0.5, 1.0])) for _ in events]

    def tail(r: Runner) -> tuple[list[str], Runner]:
        start = len(r.records)
        prev = events[k - 1].occurred_at - T0 if k else 0.0
        for i in range(k, len(events)):
            e = events[i]
            if fire_at[i] >= 0 and r.state is not None:
                r.fire(prev + fire_at[i] * (e.occurred_at - T0 - prev))
            r.apply(e)
            prev = e.occurred_at - T0
        if r.state is not None:
            r.flush()
        return [x["id"] for x in r.records[start:]], r

    head = Runner(REF_CONFIG).run(events[:k])
    snap = head.snapshot()
    ids_a, final = tail(head)
    ids_b, _ = tail(Runner.restore(snap, REF_CONFIG))
    assert ids_a == ids_b
    # a state that saw everything repeats none of it when the tail is replayed into it again
    if final.state is not None:
        ids_c, _ = tail(Runner.restore(final.snapshot(), REF_CONFIG))
        assert not set(ids_c) & set(ids_a)


text_st = st.text(min_size=1, max_size=300)


@st.composite
def wild_event(draw: st.DrawFn) -> CustomerEvent:
    t = T0 + draw(st.floats(0, 30 * 86400, allow_nan=False))
    common: dict[str, Any] = {
        "event_id": draw(text_st),
        "occurred_at": t,
        "session_id": draw(st.none() | text_st),
    }
    kind = draw(st.sampled_from(["view", "cart", "order", "link"]))
    price = draw(st.floats(0, 1e6, allow_nan=False))
    if kind == "view":
        return PageView(product_id=draw(text_st), category=draw(text_st), price=price, **common)
    if kind == "cart":
        return CartChange(
            action=draw(st.sampled_from(["add", "remove", "set_quantity"])),
            product_id=draw(text_st),
            quantity=draw(st.integers(0, 10**6)),
            price=draw(st.none() | st.just(price)),
            category=draw(st.none() | text_st),
            **common,
        )
    if kind == "order":
        return Order(
            action=draw(st.sampled_from(["placed", "cancelled"])),
            order_id=draw(st.text(min_size=1, max_size=100)),
            lines=(),
            total=price,
            **common,
        )
    return IdentityLink(anonymous_id="a", customer_id="c", **common)


SMALL = AbandonmentConfig(
    max_categories=3,
    max_products_per_category=4,
    max_fired=4,
    max_ended_sessions=2,
    max_id_len=16,
)


def assert_bounded(state: AbandonmentState, cfg: AbandonmentConfig) -> None:
    assert len(state.fired) <= cfg.max_fired
    assert len(state.ended_sids) <= cfg.max_ended_sessions
    assert len(state.pending) <= 2
    for f in state.fired:  # a fired cart keeps its products (at most the cart's 100 lines)
        assert f.products is None or len(f.products) <= 100
    if state.session is not None:
        assert len(state.session.views) <= cfg.max_categories
        for cat, ps in state.session.views.items():
            assert len(cat) <= cfg.max_id_len
            assert len(ps) <= cfg.max_products_per_category
            assert all(len(p) <= cfg.max_id_len for p in ps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(wild_event(), max_size=60), st.sampled_from([SMALL, DEFAULT_CONFIG]))
def test_state_is_bounded_and_round_trips(
    events: list[CustomerEvent], cfg: AbandonmentConfig
) -> None:
    r = Runner(cfg, tier_of=stroller_tiers)
    size_cap = 0
    for e in sorted(events, key=lambda x: x.occurred_at) + events[:10]:
        r.apply(e)
        r.fire(e.occurred_at - T0 + 600)
        state = r.state
        assert state is not None
        assert_bounded(state, cfg)
        d = state.to_dict()
        blob = orjson.dumps(d)
        assert orjson.loads(blob) == d  # plain JSON data, as stored (lists, never tuples)
        size_cap = max(size_cap, len(blob))
        again = AbandonmentState.from_dict(orjson.loads(blob), cfg)
        assert again.to_dict() == d
        assert next_due(again) == next_due(state)
    if cfg is SMALL:
        assert size_cap < 40_000
    else:
        assert size_cap < 1_000_000


def test_from_dict_reapplies_bounds() -> None:
    big = Runner().run(
        views(0, [f"p{i}" for i in range(20)]) + [cart(i, f"c{i}") for i in range(50)]
    )
    assert big.state is not None
    small = AbandonmentState.from_dict(big.state.to_dict(), SMALL)
    assert_bounded(small, SMALL)


def test_flush_is_fire_at_infinity() -> None:
    r = Runner().run([cart(0, "p1"), *views(2000, ["a", "b", "c"])])
    assert r.state is not None
    state2 = AbandonmentState.from_dict(r.state.to_dict())
    _, a = flush(r.state, customer_key=KEY)
    _, b = fire(state2, math.inf, customer_key=KEY)
    assert a == b and len(a) == 2


# ---------------------------------------------------------------------------------------------
# One ID merge


def test_merge_moves_an_unsettled_anonymous_cart_to_the_customer() -> None:
    from journey.abandonment import merge

    anon = Runner(key="a:x").run([cart(0, "p1", qty=2)])
    assert anon.state is not None
    # the journey merges the carts; the customer had none, so the anonymous cart is the result
    merged = merge(None, anon.state, cart=anon.cart)
    assert next_due(merged) == T0 + 3600  # the deadline follows the cart to the customer


def test_merge_drops_an_anonymous_cart_settled_by_a_later_customer_order() -> None:
    from journey.abandonment import merge

    anon = Runner(key="a:x").run([cart(0, "p1")])
    customer = Runner().run([order(10)])  # the customer bought p1 after the anonymous add
    assert anon.state is not None and customer.state is not None
    cart_after = carts.merge(customer.cart, anon.cart, customer.bought, 100)
    assert cart_after == {}
    merged = merge(customer.state, anon.state, cart=cart_after)
    assert next_due(merged) is None


def test_merge_unites_fired_markers_so_a_later_order_recovers() -> None:
    from journey.abandonment import merge

    anon = Runner(key="a:x").run([cart(0, "p1")])
    fired = anon.fire(3600)
    assert types(fired) == ["cart_abandoned"]
    assert anon.state is not None
    merged = Runner(state=merge(None, anon.state, cart=anon.cart), cart=anon.cart)
    out = merged.apply(order(4000))
    assert [o for o in out if o["type"] == "cart_abandoned"] == []  # fired once, not again
    [recovered] = [o for o in out if o["type"] == "abandonment_recovered"]
    assert recovered["abandonment_id"] == fired[0]["id"]
    assert recovered["seconds_to_recover"] == 400
