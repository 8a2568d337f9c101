"""Ingestion through the real broker: decode, validate, dead-letter, dedupe, count, re-key.

Valid page views, a cart change and an order go in next to one malformed message of every kind
the wire contract names (schemas/README.md) and one re-sent event. Each malformed message must
come out of the dead-letter topic once, with its category, its exact original bytes and key, and
the topic/partition/offset it was read from; the re-sent event must count once; every valid event
must be accepted and reach the customer's state; /metrics must agree with all of it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from harness.applied import wait_applied
from harness.process import read_topics, wire_key
from schemas.contracts import validator_for
from streams import topics

pytestmark = pytest.mark.broker
NOW = time.time()


def at(offset_s: float) -> str:
    """RFC 3339 of NOW + offset_s (the worker runs the live clock: wall time bounds the future)."""
    return datetime.fromtimestamp(NOW + offset_s, UTC).isoformat()


def page_view(eid: str, product: str, category: str, **ids: str) -> dict[str, Any]:
    return {
        "type": "page_view",
        "event_id": eid,
        "occurred_at": at(-600 + len(eid)),
        "product_id": product,
        "category": category,
        "price": 19.5,
        **ids,
    }


def cart_add(eid: str, product: str, quantity: int, **ids: str) -> dict[str, Any]:
    return {
        "type": "cart",
        "event_id": eid,
        "occurred_at": at(-500),
        "action": "add",
        "product_id": product,
        "quantity": quantity,
        "price": 12.0,
        "category": "home/kitchen",
        **ids,
    }


def order(eid: str, order_id: str, product: str, **ids: str) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": eid,
        "occurred_at": at(-400),
        "action": "placed",
        "order_id": order_id,
        "lines": [{"product_id": product, "quantity": 1, "unit_price": 19.5}],
        "total": 19.5,
        **ids,
    }


Send = tuple[str, bytes | None, bytes | None]  # (topic, key, value)


async def send_each(bootstrap: str, sends: list[Send]) -> list[tuple[str, int, int]]:
    """Produce messages in order; return each one's (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(t, value, key=key) for t, key, value in sends]
        return [(md.topic, md.partition, md.offset) for md in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def last_offsets(placed: list[tuple[str, int, int]]) -> dict[TopicPartition, int]:
    last: dict[TopicPartition, int] = {}
    for topic, partition, offset in placed:
        tp = TopicPartition(topic, partition)
        last[tp] = max(last.get(tp, -1), offset)
    return last


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return orjson.loads(resp.read())


def metrics(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str):
    """One sample's value (0.0 when the labelled series does not exist)."""
    return found.get((name, frozenset(labels.items())), 0.0)


def labelled(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, label: str
) -> dict[str, float]:
    """A metric's non-zero samples by one label's value."""
    return {
        dict(labels)[label]: value
        for (sample_name, labels), value in found.items()
        if sample_name == name and value
    }


def bad_inputs(names: Any) -> list[tuple[str, Send, str]]:
    """(name, (topic, key, value), expected category) for every kind of malformed input."""
    pv, cart, ordr, ident = (
        names(topics.PAGE_VIEW),
        names(topics.CART),
        names(topics.ORDER),
        names(topics.IDENTITY),
    )
    good = page_view("bad-base", "p-bad", "home/kitchen", customer_id="ing-bad")
    missing_lines = order("bad-order", "o-bad", "p-bad", customer_id="ing-bad")
    del missing_lines["lines"]
    cases: list[tuple[str, str, bytes | None, str]] = [
        ("not_json", pv, b'{"type": "page_view", "event_id": "cut-', "not_json"),
        ("null_value", ident, None, "not_json"),  # a tombstone: no payload at all
        (
            "invalid_utf8",
            pv,
            orjson.dumps(good).replace(b"home/kitchen", b"home/\xff\xfekitchen"),
            "not_utf8",
        ),
        ("json_array", cart, orjson.dumps([{"type": "cart"}, 1]), "not_object"),
        ("unknown_type", pv, orjson.dumps({**good, "type": "coupon_redeemed"}), "unknown_type"),
        ("missing_field", ordr, orjson.dumps(missing_lines), "schema_violation"),
        ("wrong_type", pv, orjson.dumps({**good, "price": "cheap"}), "schema_violation"),
        ("negative_price", pv, orjson.dumps({**good, "price": -4.25}), "negative_value"),
        (
            "negative_cart_price",
            cart,
            orjson.dumps({**cart_add("bad-c", "p", 1, customer_id="x"), "price": -1}),
            "negative_value",
        ),
        ("future_time", pv, orjson.dumps({**good, "occurred_at": at(3600)}), "future_time"),
        ("too_large", pv, orjson.dumps({**good, "notes": "x" * 70_000}), "too_large"),
        (
            "blocked_ids",
            pv,
            orjson.dumps(
                {
                    **{k: v for k, v in good.items() if k != "customer_id"},
                    "anonymous_id": "anonymous",
                    "customer_id": "0",
                }
            ),
            "missing_identity",
        ),
        (
            "link_without_customer",
            ident,
            orjson.dumps(
                {
                    "type": "identity_link",
                    "event_id": "bad-link",
                    "occurred_at": at(-300),
                    "anonymous_id": "ing-anon-x",
                    "customer_id": "undefined",
                }
            ),
            "missing_identity",
        ),
    ]
    return [(name, (topic, f"bad-{name}".encode(), value), c) for name, topic, value, c in cases]


def test_bad_inputs_dead_lettered_duplicates_once_valid_events_reach_state(
    deployment: Any,
) -> None:
    d = deployment(partitions=2)
    worker = d.start_worker()
    names = d.names
    who = {"customer_id": "ing-cust"}
    valid = [
        page_view("pv-1", "p1", "home/kitchen", **who),
        page_view("pv-22", "p2", "home/kitchen", **who),
        page_view("pv-333", "p3", "home/bath", **who),
        page_view("pv-anon", "p1", "home/kitchen", anonymous_id="ing-anon"),
        cart_add("cart-1", "p9", 2, **who),
        order("order-1", "o-1", "p1", **who),
    ]
    duplicate = valid[0]  # re-sent with the same event id (and bytes), as a retrying producer does
    bad = bad_inputs(names)
    sends: list[Send] = [(names.for_input(e["type"]), wire_key(e), orjson.dumps(e)) for e in valid]
    sends += [send for _, send, _ in bad]
    sends.append((names.for_input("page_view"), wire_key(duplicate), orjson.dumps(duplicate)))
    placed = asyncio.run(send_each(d.bootstrap, sends))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last_offsets(placed), 30))

    # --- dead letters: each bad message exactly once, with category, bytes, key and source
    letters = asyncio.run(read_topics(d.bootstrap, [names(topics.DEAD_LETTERS)]))
    check = validator_for("dead_letter")
    for record in letters:
        check(record)
    by_source = Counter(
        (r["source"]["topic"], r["source"]["partition"], r["source"]["offset"]) for r in letters
    )
    assert len(letters) == len(bad), [r["category"] for r in letters]
    first_bad = len(valid)
    for i, (name, (topic, key, value), category) in enumerate(bad):
        where = placed[first_bad + i]
        assert where[0] == topic
        matching = [
            r
            for r in letters
            if (r["source"]["topic"], r["source"]["partition"], r["source"]["offset"]) == where
        ]
        assert len(matching) == 1 and by_source[where] == 1, (name, matching)
        record = matching[0]
        assert record["category"] == category, (name, record["category"], record["message"])
        if value is None:
            assert record["original_b64"] is None
        else:
            assert base64.b64decode(record["original_b64"]) == value, name
        assert base64.b64decode(record["original_key_b64"]) == key, name
    assert len({r["id"] for r in letters}) == len(letters)

    # --- state: every valid event applied once (the duplicate not counted again)
    profile = get_json(worker.base_url + "/customers/ing-cust")
    journey = profile["journey"]
    distinct_views = [e for e in valid if e["type"] == "page_view" and "customer_id" in e]
    assert journey["views"] == len(distinct_views) == 3
    assert journey["views_by_category"] == dict(Counter(e["category"] for e in distinct_views))
    assert set(journey["recent_views"]) == {e["product_id"] for e in distinct_views}
    assert journey["orders"] == 1 and journey["total_spend"] == 19.5
    assert list(journey["recent_orders"]) == ["o-1"]
    assert journey["cart"]["p9"][0] == 2  # the cart line (not part of the order) is kept
    assert journey["stage"] == "purchase"
    anonymous = get_json(worker.base_url + "/customers/ing-anon?anonymous=1")
    assert anonymous["journey"]["views"] == 1
    with pytest.raises(urllib.error.HTTPError) as missing:
        get_json(worker.base_url + "/customers/ing-bad")  # nothing of the bad input got in
    assert missing.value.code == 404

    # --- metrics: events in by type and outcome, outputs by type, dead letters by category
    found = metrics(worker.base_url)
    sent_by_type = Counter(e["type"] for e in valid)
    accepted = labelled(
        {k: v for k, v in found.items() if ("outcome", "accepted") in k[1]},
        "journeystream_events_total",
        "type",
    )
    assert accepted == {t: float(n) for t, n in sent_by_type.items()}
    assert sample(found, "journeystream_events_total", type="page_view", outcome="duplicate") == 1
    assert sample(found, "journeystream_events_total", type="unknown", outcome="dead_letter") == (
        len(bad)
    )
    assert labelled(found, "journeystream_dead_letters_total", "category") == {
        c: float(n) for c, n in Counter(category for _, _, category in bad).items()
    }
    outputs = asyncio.run(
        read_topics(d.bootstrap, [t for t in names.outputs() if t != names(topics.DEAD_LETTERS)])
    )
    assert outputs  # first contacts, stages, a purchase
    assert labelled(found, "journeystream_outputs_total", "type") == {
        t: float(n) for t, n in Counter(r["type"] for r in outputs).items()
    }
    purchases = [r for r in outputs if r.get("kind") == "purchase"]
    assert [(r["customer_key"], r["order_id"]) for r in purchases] == [("c:ing-cust", "o-1")]


def test_wrongly_keyed_events_are_rekeyed_to_their_customer(deployment: Any) -> None:
    d = deployment(partitions=4)
    worker = d.start_worker()
    who = {"customer_id": "rekeyed"}
    events = [
        page_view("rk-1", "p1", "garden/tools", **who),
        page_view("rk-22", "p2", "garden/tools", **who),
        page_view("rk-333", "p3", "garden/seeds", **who),
    ]
    topic = d.names.for_input("page_view")
    keys: list[bytes | None] = [b"whatever", None, wire_key(events[2])]
    assert keys[2] == b"c:rekeyed"
    sends: list[Send] = [(topic, k, orjson.dumps(e)) for k, e in zip(keys, events, strict=True)]
    placed = asyncio.run(send_each(d.bootstrap, sends))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last_offsets(placed), 30))

    # the two wrongly keyed views take a second hop through the internal topic
    deadline = time.monotonic() + 20
    while True:
        try:
            journey = get_json(worker.base_url + "/customers/rekeyed")["journey"]
        except urllib.error.HTTPError:
            journey = None
        if (journey and journey["views"] == 3) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert journey is not None and journey["views"] == 3, journey
    assert journey["views_by_category"] == {"garden/tools": 2, "garden/seeds": 1}
    assert set(journey["recent_views"]) == {"p1", "p2", "p3"}

    found = metrics(worker.base_url)
    assert sample(found, "journeystream_events_total", type="page_view", outcome="forwarded") == 2
    assert sample(found, "journeystream_events_total", type="page_view", outcome="accepted") == 1
    assert sample(found, "journeystream_dead_letters_total", category="internal_error") == 0
    transitions = asyncio.run(read_topics(d.bootstrap, [d.names(topics.TRANSITIONS)]))
    # one journey, under the right key: a single first contact, nothing under a wrong key
    assert {r["customer_key"] for r in transitions} == {"c:rekeyed"}
    first = [r for r in transitions if r["trigger"] == "first_contact" and r["kind"] == "stage"]
    assert len(first) == 1


def priceless(eid: str, product: str, offset_s: float, who: str, **extra: Any) -> dict[str, Any]:
    """A page_view 1-0-1 without a price."""
    return {
        "type": "page_view",
        "version": "1-0-1",
        "event_id": eid,
        "occurred_at": at(offset_s),
        "product_id": product,
        "category": "home/kitchen",
        "customer_id": who,
        **extra,
    }


def test_priceless_events_take_the_catalog_price_and_favourites_seed(deployment: Any) -> None:
    d = deployment(partitions=2)
    worker = d.start_worker()
    names = d.names
    item = {
        "type": "catalog_item",
        "event_id": "cat-pc-1",
        "occurred_at": at(-3600),
        "product_id": "pc-1",
        "title": "Kettle",
        "category_path": ["home", "kitchen"],
        "price": 42.0,
        "stock": 5,
    }
    placed = asyncio.run(
        send_each(d.bootstrap, [(names(topics.CATALOG), b"pc-1", orjson.dumps(item))])
    )
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last_offsets(placed), 30))
    # the broadcast catalog reader runs beside the group: probe until the worker's catalog has it
    deadline = time.monotonic() + 30
    probe_price = None
    for n in itertools.count():
        probe = priceless(f"probe-{n}", "pc-1", -900 + n, "ing-probe")
        sent = asyncio.run(
            send_each(
                d.bootstrap, [(names.for_input("page_view"), wire_key(probe), orjson.dumps(probe))]
            )
        )
        asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last_offsets(sent), 30))
        probe_price = get_json(worker.base_url + "/customers/ing-probe")["journey"]["recent_views"][
            "pc-1"
        ][1]
        if probe_price is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert probe_price == 42.0

    who = "ing-priceless"
    events = [
        priceless("np-1", "pc-1", -300, who),  # known to the catalog
        priceless("np-2", "pc-2", -290, who),  # unknown: the price stays unknown
        priceless("np-3", "pc-3", -280, who, action="favourite"),
        {
            "type": "cart",
            "event_id": "np-4",
            "occurred_at": at(-270),
            "action": "add",
            "product_id": "pc-1",
            "quantity": 2,
            "category": "home/kitchen",
            "customer_id": "ing-priceless-cart",  # its own customer: topics are not ordered
        },
    ]
    rekeyed = priceless("np-5", "pc-1", -260, "ing-rekeyed-priceless")
    sends: list[Send] = [(names.for_input(e["type"]), wire_key(e), orjson.dumps(e)) for e in events]
    sends.append((names.for_input("page_view"), b"wrong-key", orjson.dumps(rekeyed)))
    placed = asyncio.run(send_each(d.bootstrap, sends))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last_offsets(placed), 30))

    journey = get_json(worker.base_url + f"/customers/{who}")["journey"]
    assert (journey["views"], journey["priced_views"], journey["view_price_sum"]) == (2, 1, 42.0)
    assert {p: v[1] for p, v in journey["recent_views"].items()} == {"pc-1": 42.0, "pc-2": None}
    assert list(journey["favourites"]) == ["pc-3"]
    assert journey["stage"] == "seed"
    carted = get_json(worker.base_url + "/customers/ing-priceless-cart")["journey"]
    assert carted["cart"]["pc-1"][:2] == [2, 42.0]
    deadline = time.monotonic() + 20
    while True:  # the wrongly keyed view takes a second hop, with the price filled at the first
        try:
            other = get_json(worker.base_url + "/customers/ing-rekeyed-priceless")["journey"]
        except urllib.error.HTTPError:
            other = None
        if other is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert other is not None and other["recent_views"]["pc-1"][1] == 42.0

    transitions = asyncio.run(read_topics(d.bootstrap, [names(topics.TRANSITIONS)]))
    for record in transitions:
        validator_for("journey_transition", record["version"])(record)
    mine = [r for r in transitions if r["customer_key"] == f"c:{who}" and r["kind"] == "stage"]
    assert [(r["to_stage"], r["trigger"], r["version"]) for r in mine] == [
        ("touch", "first_contact", "1-0-0"),
        ("seed", "favourite", "1-0-1"),
    ]
    letters = asyncio.run(read_topics(d.bootstrap, [names(topics.DEAD_LETTERS)]))
    assert letters == []
