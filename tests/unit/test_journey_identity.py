"""One ID routing, merges and races through the composite customer state (journey.customer)."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey.abandonment import AbandonmentState
from journey.config import JourneyConfig
from journey.customer import CustomerState, apply
from journey.identity import (
    IdentityState,
    customer_key,
    event_from_dict,
    event_to_dict,
    on_link,
    on_merge,
    wants_link,
)
from schemas.records import CustomerEvent, IdentityLink
from tests.unit.test_journey_stages import T0, cart, check_outputs, order, view

CFG = JourneyConfig()


def link(t: float, anon: str = "x", cust: str = "1", eid: str | None = None) -> IdentityLink:
    """An identity link (login)."""
    return IdentityLink(
        event_id=eid or f"link-{anon}-{cust}-{t}",
        occurred_at=t,
        anonymous_id=anon,
        customer_id=cust,
    )


class Cluster:
    """Per-key states plus the input and internal queues of a tiny simulated deployment.

    Internal messages go through orjson (as on the wire) and states through to_dict/orjson/
    from_dict after every message (as through the table).
    """

    def __init__(self, config: JourneyConfig = CFG) -> None:
        self.config = config
        self.tables: dict[str, bytes] = {}
        self.inputs: dict[str, deque[CustomerEvent]] = {}
        self.internal: dict[str, deque[dict[str, Any]]] = {}
        self.outputs: list[dict[str, Any]] = []

    def produce(self, event: CustomerEvent, key: str | None = None) -> None:
        """Queue an input event at its key (or at a given, possibly wrong, key)."""
        self.inputs.setdefault(key or customer_key(event), deque()).append(event)

    def state(self, key: str) -> CustomerState:
        """The stored state of a key (empty if none)."""
        return CustomerState.from_dict(orjson.loads(self.tables.get(key, b"null")))

    def deliver(self, key: str, message: CustomerEvent | dict[str, Any]) -> list[dict[str, Any]]:
        """Apply one message at a key; route internal outputs; return the others."""
        raw = self.tables.get(key)
        state = CustomerState.from_dict(orjson.loads(raw)) if raw else None
        state, outs = apply(state, message, T0 + 10**6, self.config, key=key)
        self.tables[key] = orjson.dumps(state.to_dict())
        check_outputs(outs)
        rest = []
        for out in outs:
            if out["type"] == "internal":
                wire = orjson.loads(orjson.dumps(out["message"]))
                self.internal.setdefault(out["key"], deque()).append(wire)
            else:
                rest.append(out)
        self.outputs += rest
        return rest

    def ready(self) -> list[tuple[str, str]]:
        """Queues with something to deliver, in a stable order."""
        found = [("input", k) for k, q in self.inputs.items() if q]
        found += [("internal", k) for k, q in self.internal.items() if q]
        return sorted(found)

    def step(self, which: tuple[str, str]) -> None:
        """Deliver the head of one queue."""
        kind, key = which
        queue: deque[Any] = self.inputs[key] if kind == "input" else self.internal[key]
        self.deliver(key, queue.popleft())

    def drain(self) -> None:
        """Deliver everything, first queue first."""
        while self.ready():
            self.step(self.ready()[0])


def signals(outs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Signals of one name."""
    return [o for o in outs if o["type"] == "signal" and o["name"] == name]


# ------------------------------------------------------------------------------ customer keys


def test_customer_key_rules() -> None:
    assert customer_key(view(T0, anon="x", cust="7")) == "c:7"
    assert customer_key(view(T0, anon="x")) == "a:x"
    assert customer_key(view(T0, anon=None, cust="7")) == "c:7"
    assert customer_key(link(T0, "x", "7")) == "a:x"
    with pytest.raises(ValueError):
        customer_key(view(T0, anon=None, cust=None))


@pytest.mark.parametrize(
    "event",
    [
        view(T0, sid="s", cust="c"),
        cart(T0, action="set_quantity", cat="k"),
        order(T0, lines=(("p", 2, 3.5, "k"), ("q", 1, 1.0, None))),
        link(T0),
    ],
)
def test_event_dicts_round_trip(event: CustomerEvent) -> None:
    data = orjson.loads(orjson.dumps(event_to_dict(event)))
    assert event_from_dict(data) == event


def test_event_from_dict_refuses_non_events() -> None:
    assert event_from_dict({"type": "catalog_item"}) is None
    assert event_from_dict({"type": "page_view", "event_id": "e"}) is None
    assert event_from_dict({}) is None


# ----------------------------------------------------------------------- protocol steps (pure)


def test_protocol_steps() -> None:
    anon = IdentityState()
    assert on_link(anon, "c:1") == "aliased"
    assert on_link(anon, "c:1") == "same"
    assert on_link(anon, "c:2") == "conflict"
    assert anon.alias_of == "c:1"
    cfg = JourneyConfig(anonymous_id_cap=2)
    cust = IdentityState()
    assert wants_link(cust, "x", cfg) is True
    assert wants_link(cust, "x", cfg) is False
    assert on_merge(cust, "x", cfg) == "merged"
    assert (cust.merged, cust.link_requested) == (["x"], [])
    assert wants_link(cust, "x", cfg) is False
    assert on_merge(cust, "x", cfg) == "already"
    assert on_merge(cust, "y", cfg) == "merged"
    assert on_merge(cust, "z", cfg) == "cap"
    assert wants_link(cust, "z", cfg) is False
    assert IdentityState.from_dict(orjson.loads(orjson.dumps(cust.to_dict()))) == cust


# ---------------------------------------------------------------------------------- routing


def test_dedupe_first_duplicate_is_only_a_signal() -> None:
    c = Cluster()
    ev = view(T0, eid="dup")
    c.deliver("a:x", ev)
    before = c.tables["a:x"]
    assert c.deliver("a:x", ev) == [{"type": "signal", "name": "duplicate"}]
    assert c.tables["a:x"] == before


def test_misrouted_event_is_forwarded_to_its_key() -> None:
    c = Cluster()
    ev = view(T0, anon="x", cust="1")
    outs = c.deliver("a:x", ev)
    assert outs == [{"type": "signal", "name": "rekey"}]
    assert "a:x" in c.tables and c.state("a:x").journey is None
    assert [m["kind"] for m in c.internal["c:1"]] == ["forward"]
    c.drain()
    j = c.state("c:1").journey
    assert j is not None and j.views == 1


def test_link_aliases_and_sends_the_snapshot_once() -> None:
    c = Cluster()
    c.deliver("a:x", view(T0, cat="shoes"))
    c.deliver("a:x", view(T0 + 10, cat="shoes"))
    outs = c.deliver("a:x", link(T0 + 20, eid="L1"))
    assert signals(outs, "identity_linked") != []
    merge_msg = c.internal["c:1"][0]
    assert (merge_msg["kind"], merge_msg["anonymous_key"], merge_msg["customer_key"]) == (
        "identity_merge",
        "a:x",
        "c:1",
    )
    assert merge_msg["event_id"] == "L1"
    assert merge_msg["snapshot"]["views"] == 2
    anon = c.state("a:x")
    assert (anon.identity.alias_of, anon.journey) == ("c:1", None)
    # the same link again (new event id): no-op
    assert c.deliver("a:x", link(T0 + 30, eid="L2")) == []
    assert len(c.internal["c:1"]) == 1
    c.drain()
    cust = c.state("c:1")
    assert cust.identity.merged == ["x"]
    assert cust.journey is not None
    assert (cust.journey.views, cust.journey.customer_key, cust.journey.customer_id) == (
        2,
        "c:1",
        "1",
    )
    stage = [
        o for o in c.outputs if o["type"] == "journey_transition" and o["customer_key"] == "c:1"
    ]
    assert [(r["kind"], r["trigger"], r["to_stage"], r["to_segment"]) for r in stage] == [
        ("stage", "identity_merge", "touch", None),
        ("segment", "identity_merge", "touch", "new_visitor"),
    ]


def test_merge_is_applied_once() -> None:
    c = Cluster()
    c.deliver("a:x", view(T0))
    c.deliver("a:x", link(T0 + 5))
    msg = c.internal["c:1"].popleft()
    c.deliver("c:1", msg)
    outs = c.deliver("c:1", msg)
    assert outs == [{"type": "signal", "name": "identity_merge_repeat"}]
    j = c.state("c:1").journey
    assert j is not None and j.views == 1


def test_events_at_an_aliased_key_are_forwarded() -> None:
    c = Cluster()
    c.deliver("a:x", link(T0))
    c.drain()
    outs = c.deliver("a:x", view(T0 + 10, cat="hats"))
    assert outs == []
    fwd = c.internal["c:1"][0]
    assert fwd["kind"] == "forward"
    assert fwd["event"]["type"] == "page_view"
    assert fwd["from_key"] == "a:x"
    c.drain()
    j = c.state("c:1").journey
    assert j is not None and j.views_by_category == {"hats": 1}
    assert c.state("a:x").journey is None


def test_event_with_both_ids_requests_a_link_once() -> None:
    c = Cluster()
    c.deliver("a:x", view(T0, cat="anon"))
    c.deliver("c:1", view(T0 + 10, anon="x", cust="1", eid="both"))
    request = c.internal["a:x"][0]
    assert request == {
        "kind": "link_request",
        "anonymous_key": "a:x",
        "customer_key": "c:1",
        "event_id": "both",
        "occurred_at": T0 + 10,
    }
    c.deliver("c:1", view(T0 + 20, anon="x", cust="1"))
    assert len(c.internal["a:x"]) == 1
    c.drain()
    cust = c.state("c:1")
    assert (cust.identity.merged, cust.identity.link_requested) == (["x"], [])
    assert cust.journey is not None and cust.journey.views == 3
    c.deliver("c:1", view(T0 + 30, anon="x", cust="1"))
    assert not c.internal.get("a:x")


def test_two_customers_are_never_merged() -> None:
    c = Cluster()
    c.deliver("a:x", view(T0))
    c.deliver("a:x", link(T0 + 1, "x", "1"))
    c.drain()
    # customer 2 logs in on the same device: a link request, refused at a:x
    c.deliver("c:2", view(T0 + 5, anon="x", cust="2"))
    c.drain()
    assert signals(c.outputs, "identity_conflict") == [
        {"type": "signal", "name": "identity_conflict"}
    ]
    assert c.state("a:x").identity.alias_of == "c:1"
    two = c.state("c:2")
    assert two.identity.merged == []
    assert two.journey is not None and two.journey.views == 1
    # an explicit link to customer 2 is refused too
    c.deliver("a:x", link(T0 + 6, "x", "2"))
    assert len(signals(c.outputs, "identity_conflict")) == 2
    one = c.state("c:1").journey
    assert one is not None and one.views == 1


def test_merges_stop_at_the_cap() -> None:
    c = Cluster(JourneyConfig(anonymous_id_cap=2))
    for i, anon in enumerate(["x", "y", "z"]):
        c.deliver(f"a:{anon}", view(T0 + i, anon=anon, cat=anon))
        c.deliver(f"a:{anon}", link(T0 + 10 + i, anon, "1"))
    c.drain()
    cust = c.state("c:1")
    assert cust.identity.merged == ["x", "y"]
    assert cust.journey is not None and cust.journey.views_by_category == {"x": 1, "y": 1}
    assert signals(c.outputs, "identity_cap") == [
        {"type": "signal", "name": "identity_cap", "stage": "merge"}
    ]
    # over the cap, events with both ids no longer ask for links (reported once)
    c.deliver("c:1", view(T0 + 50, anon="w", cust="1"))
    c.deliver("c:1", view(T0 + 51, anon="w", cust="1"))
    assert not c.internal.get("a:w")
    assert signals(c.outputs, "identity_cap")[1:] == [
        {"type": "signal", "name": "identity_cap", "stage": "request"}
    ]


@pytest.mark.parametrize(
    ("key", "message", "reason"),
    [
        (
            "c:1",
            {"kind": "identity_merge", "anonymous_key": "a:x", "customer_key": "c:2"},
            "bad_identity_merge",
        ),
        (
            "c:1",
            {"kind": "identity_merge", "anonymous_key": "c:9", "customer_key": "c:1"},
            "bad_identity_merge",
        ),
        (
            "a:x",
            {"kind": "link_request", "anonymous_key": "a:y", "customer_key": "c:1"},
            "bad_link_request",
        ),
        (
            "a:x",
            {"kind": "link_request", "anonymous_key": "a:x", "customer_key": "a:z"},
            "bad_link_request",
        ),
        ("c:1", {"kind": "forward", "event": {"type": "nope"}}, "bad_forward"),
        ("c:1", {"kind": "what"}, "unknown_message"),
        ("c:1", link(T0, "x", "1"), None),
    ],
)
def test_malformed_messages_are_irrelevant(key: str, message: Any, reason: str | None) -> None:
    state, outs = apply(None, message, T0, CFG, key=key)
    if reason is None:  # a link event misrouted to a customer key is re-keyed instead
        assert [o.get("key") for o in outs] == ["a:x", None]
        return
    assert outs == [{"type": "signal", "name": "irrelevant", "reason": reason}]
    assert state.identity == IdentityState()


def test_opaque_slots_survive_round_trips() -> None:
    state, _ = apply(None, view(T0), T0, CFG, key="a:x")
    state.abandonment = AbandonmentState(ended_sids=["s1"])
    state.recommend["seen"] = ["p1"]
    back = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert back.abandonment is not None and back.abandonment.ended_sids == ["s1"]
    assert back.recommend == {"seen": ["p1"]}
    assert back == state


# ------------------------------------------------------------------------------------ races


def _scenario(c: Cluster, *, explicit_link: bool, guest_order: bool) -> None:
    """Anonymous device x browses, (maybe) orders as a guest, logs in as 1; 1 browses and buys."""
    c.produce(view(T0, cat="shoes", pid="p1", sid="anon", eid="A1"))
    c.produce(view(T0 + 60, cat="shoes", pid="p2", sid="anon", eid="A2"))
    c.produce(cart(T0 + 120, pid="p9", sid="anon"))
    if guest_order:
        c.produce(order(T0 + 150, oid="G1", total=20.0, lines=(("p8", 1, 20.0, "bags"),)))
    if explicit_link:
        c.produce(link(T0 + 200, eid="L"))
    c.produce(view(T0 + 300, cat="hats", pid="p3", eid="A4"))
    c.produce(view(T0 + 250, cat="shoes", pid="p4", anon=None, cust="1", eid="C1"))
    c.produce(
        order(
            T0 + 400,
            oid="O1",
            total=50.0,
            lines=(("p9", 1, 50.0, "shoes"),),
            anon="x",
            cust="1",
            eid="C2",
        )
    )
    c.produce(view(T0 + 500, cat="hats", pid="p5", anon=None, cust="1", eid="C3"))


def _assert_final(c: Cluster, *, guest_order: bool) -> None:
    cust = c.state("c:1")
    j = cust.journey
    assert j is not None
    assert j.views == 5
    assert j.views_by_category == {"shoes": 3, "hats": 2}
    assert set(j.recent_views) == {"p1", "p2", "p3", "p4", "p5"}
    assert j.recent_views["p3"][2] == T0 + 300
    assert (j.first_seen, j.last_seen) == (T0, T0 + 500)
    assert j.cart == {}
    if guest_order:
        assert (j.orders, j.total_spend, j.stage) == (2, 70.0, "repurchase")
        assert j.recent_purchases == {"p8": T0 + 150, "p9": T0 + 400}
        assert j.purchase_categories == {"bags": 1, "shoes": 1}
    else:
        assert (j.orders, j.total_spend, j.stage) == (1, 50.0, "purchase")
        assert j.recent_purchases == {"p9": T0 + 400}
    assert cust.identity.merged == ["x"]
    anon = c.state("a:x")
    assert (anon.identity.alias_of, anon.journey) == ("c:1", None)
    # every placed order was reported exactly once, wherever it was applied
    purchases = [o["order_id"] for o in c.outputs if o.get("kind") == "purchase"]
    assert sorted(purchases) == (["G1", "O1"] if guest_order else ["O1"])
    assert signals(c.outputs, "duplicate") == []


@pytest.mark.parametrize("guest_order", [False, True])
def test_any_arrival_order_at_the_customer_key_gives_the_same_counters(guest_order: bool) -> None:
    # the anonymous side runs first; then every permutation of what reaches c:1
    base = Cluster()
    _scenario(base, explicit_link=True, guest_order=guest_order)
    while base.inputs["a:x"]:
        base.step(("input", "a:x"))
    to_customer: list[tuple[str, Any]] = [("internal", m) for m in base.internal.pop("c:1")]
    to_customer += [("input", e) for e in base.inputs.pop("c:1")]
    assert len(to_customer) == 5  # merge, forwarded A4, C1, C2, C3
    snapshot_tables = dict(base.tables)
    snapshot_outputs = list(base.outputs)
    count = 0
    for order_ in itertools.permutations(to_customer):
        c = Cluster()
        c.tables = dict(snapshot_tables)
        c.outputs = list(snapshot_outputs)
        for _, message in order_:
            c.deliver("c:1", message)
        c.drain()  # the link request C2 sends to a:x is a no-op there
        _assert_final(c, guest_order=guest_order)
        count += 1
    assert count == 120


@settings(max_examples=300, deadline=None)
@given(
    choices=st.lists(st.integers(min_value=0, max_value=3), min_size=40, max_size=40),
    explicit_link=st.booleans(),
    guest_order=st.booleans(),
)
def test_any_interleaving_of_the_whole_protocol_gives_the_same_counters(
    choices: list[int], explicit_link: bool, guest_order: bool
) -> None:
    c = Cluster()
    _scenario(c, explicit_link=explicit_link, guest_order=guest_order)
    for choice in choices:
        ready = c.ready()
        if not ready:
            break
        c.step(ready[choice % len(ready)])
    c.drain()
    _assert_final(c, guest_order=guest_order)


def test_redelivered_anonymous_event_after_the_merge_is_not_counted_twice() -> None:
    c = Cluster()
    a1 = view(T0, eid="A1")
    c.deliver("a:x", a1)
    c.deliver("a:x", link(T0 + 1))
    c.drain()
    # at-least-once: A1 arrives again at a:x (now aliased) -> caught by a:x's memory
    assert c.deliver("a:x", a1) == [{"type": "signal", "name": "duplicate"}]
    # and even if it reached c:1 directly, the merged memory knows it
    assert c.deliver("c:1", {"kind": "forward", "event": a1}) == [
        {"type": "signal", "name": "duplicate"}
    ]
    j = c.state("c:1").journey
    assert j is not None and j.views == 1
