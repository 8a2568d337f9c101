"""Tests of schemas.contracts: schema files, examples, every rejection, round trips, fuzzing."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.contracts import (
    BLOCKED_IDS,
    CATEGORIES,
    DEAD_LETTER_CATEGORIES,
    FUTURE_TOLERANCE_S,
    MAX_PAYLOAD_BYTES,
    RFC3339_PATTERN,
    SCHEMA_BASE_URI,
    Rejection,
    available_schemas,
    dead_letter,
    decode,
    encode,
    format_time,
    load_schema,
    parse_time,
    to_wire,
    validator_for,
)
from schemas.records import (
    CartChange,
    CatalogItem,
    Event,
    IdentityLink,
    Order,
    OrderLine,
    PageView,
    type_name,
)

INPUTS = ("page_view", "cart", "order", "catalog_item", "identity_link")
EXAMPLES = Path(str(resources.files("schemas") / "examples"))
NOW = 1793621112.0  # 2026-11-02T12:05:12Z == 2026-11-02T20:05:12+08:00
SECRET = "s3cr3t-payload-marker"
_DROP = object()


def example(name: str) -> dict[str, Any]:
    """A fresh copy of an example payload."""
    loaded: dict[str, Any] = orjson.loads((EXAMPLES / f"{name}.json").read_bytes())
    return loaded


def secret_page_view(**changes: Any) -> dict[str, Any]:
    """A valid page view whose values carry SECRET (messages must never echo them)."""
    body = {
        "type": "page_view",
        "event_id": f"{SECRET}-ev",
        "occurred_at": "2026-11-02T20:05:12+08:00",
        "anonymous_id": f"{SECRET}-anon",
        "customer_id": f"{SECRET}-cust",
        "product_id": f"{SECRET}-sku",
        "category": f"{SECRET}/strollers",
        "price": 5999.0,
        "title": f"{SECRET} title",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


def with_changes(name: str, **changes: Any) -> dict[str, Any]:
    """An example payload with fields replaced (`_DROP` removes one)."""
    body = example(name)
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


def raw(body: Any) -> bytes:
    """Wire bytes of a JSON value."""
    return orjson.dumps(body)


# ------------------------------------------------------------------------- schema files


def test_every_schema_type_is_discovered_by_scanning() -> None:
    found = available_schemas()
    for name in (*INPUTS, "dead_letter"):
        assert found[name][0] == "1-0-0"
    assert "examples" not in found


@pytest.mark.parametrize("name", [*INPUTS, "dead_letter"])
def test_schema_metadata(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == f"{SCHEMA_BASE_URI}{name}/1-0-0.json"
    assert schema["title"].startswith(name)
    assert len(schema["description"]) > 20
    assert schema["properties"]["occurred_at"]["pattern"] == RFC3339_PATTERN
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
    if name in INPUTS:
        assert schema["properties"]["type"]["const"] == name
        assert "additionalProperties" not in schema  # producers may add fields
    else:
        assert schema["additionalProperties"] is False


def test_unknown_schema_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        validator_for("no_such_type")
    with pytest.raises(KeyError):
        validator_for("page_view", "9-9-9")


# ------------------------------------------------------------------------------ examples


@pytest.mark.parametrize("name", INPUTS)
def test_example_validates_and_decodes(name: str) -> None:
    body = example(name)
    assert validator_for(name)(copy.deepcopy(body)) == body
    event = decode(raw(body), NOW)
    assert not isinstance(event, Rejection), event
    assert type_name(event) == name
    assert event.event_id == body["event_id"]
    assert event.occurred_at == parse_time(body["occurred_at"])


def test_examples_decode_to_exact_records() -> None:
    assert decode(raw(example("page_view")), NOW) == PageView(
        event_id="ev-20261102-000101",
        occurred_at=NOW,
        anonymous_id="anon-9d20",
        customer_id="cust-4410",
        channel="web",
        store_id="store-online-01",
        session_id="sess-4410-1",
        product_id="sku-stroller-aero",
        category="baby/strollers",
        price=5999.0,
        brand="Aero",
        title="Aero Carbon Travel Stroller",
    )
    order = decode(raw(example("order")), NOW)
    assert isinstance(order, Order)
    assert order.lines == (
        OrderLine(
            product_id="sku-formula-s1", quantity=2, unit_price=268.0, category="baby/formula"
        ),
        OrderLine(product_id="sku-wipes-80", quantity=1, unit_price=49.9, category="baby/wipes"),
    )
    assert order.total == 585.9 and order.currency == "CNY" and order.action == "placed"
    item = decode(raw(example("catalog_item")), NOW)
    assert isinstance(item, CatalogItem)
    assert item.category_path == ("baby", "formula") and item.category == "baby/formula"
    assert item.attributes == {"stage": 1, "brand": "NutriStart"} and item.stock == 120
    link = decode(raw(example("identity_link")), NOW)
    assert isinstance(link, IdentityLink)
    assert (link.anonymous_id, link.customer_id, link.reason) == ("anon-b21c", "cust-2001", "login")
    cart = decode(raw(example("cart")), NOW)
    assert isinstance(cart, CartChange)
    assert (cart.action, cart.quantity, cart.price, cart.anonymous_id) == ("add", 1, 1699.0, None)


def sample_day() -> list[dict[str, Any]]:
    """The lines of examples/sample.jsonl."""
    lines = (EXAMPLES / "sample.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def test_sample_day_decodes_in_time_order() -> None:
    day = sample_day()
    assert 40 <= len(day) <= 60
    decoded = [decode(raw(body), parse_time(body["occurred_at"])) for body in day]
    assert not [d for d in decoded if isinstance(d, Rejection)]
    times = [e.occurred_at for e in decoded if not isinstance(e, Rejection)]
    assert times == sorted(times)
    assert len({body["event_id"] for body in day}) == len(day)
    assert all(body["occurred_at"].startswith("2026-11-02T") for body in day)


def test_sample_day_tells_the_stories() -> None:
    day = sample_day()
    catalog = {b["product_id"]: b for b in day if b["type"] == "catalog_item"}
    strollers = [
        b["price"] for b in catalog.values() if b["category_path"] == ["baby", "strollers"]
    ]
    assert len([p for p in strollers if 3000 <= p <= 6000]) == 3
    assert len([p for p in strollers if 1200 <= p <= 1800]) == 2
    assert len([p for p in strollers if p < 500]) == 1
    assert any(b["attributes"] == {"stage": 1} for b in catalog.values())
    sizes = {
        b["attributes"].get("size") for b in catalog.values() if "diapers" in b["category_path"]
    }
    assert sizes == {"S", "M"}
    categories = {"/".join(b["category_path"]) for b in catalog.values()}
    for body in day:
        if body["type"] in ("page_view", "cart"):
            assert body["category"] in categories
        if body["type"] == "order":
            assert {line["category"] for line in body["lines"]} <= categories
            line_sum = sum(line["quantity"] * line["unit_price"] for line in body["lines"])
            assert body["total"] == pytest.approx(line_sum)

    def of(key: str, value: str) -> list[dict[str, Any]]:
        return [b for b in day if b.get(key) == value]

    # anonymous visitor: a gap over 30 minutes, a login, then an order
    anon = of("anonymous_id", "anon-b21c")
    gaps = [
        parse_time(b["occurred_at"]) - parse_time(a["occurred_at"])
        for a, b in itertools.pairwise(anon)
    ]
    assert max(gaps) > 30 * 60
    assert [b["type"] for b in anon][-2:] == ["identity_link", "order"]
    assert anon[-2]["reason"] == "login"
    # new visitor: sign-up and order within minutes of the first view
    new = of("anonymous_id", "anon-7f3a")
    assert [b["type"] for b in new] == ["page_view", "cart", "identity_link", "order"]
    assert parse_time(new[-1]["occurred_at"]) - parse_time(new[0]["occurred_at"]) < 600
    # the mother orders stage-1 formula
    mother = of("customer_id", "cust-3007")
    assert any(
        b["type"] == "order" and b["lines"][0]["product_id"] == "sku-formula-s1" for b in mother
    )
    # the father views three different premium strollers and never carts or orders
    father = of("customer_id", "cust-4410")
    assert {b["type"] for b in father} == {"page_view"}
    assert len({b["product_id"] for b in father if catalog[b["product_id"]]["price"] >= 3000}) == 3
    # one customer carts and never orders, another carts and orders later
    assert {b["type"] for b in of("customer_id", "cust-5123")} == {"page_view", "cart"}
    later = [b["type"] for b in of("customer_id", "cust-6088")]
    assert later.index("cart") < later.index("order")


# ---------------------------------------------------------------------------- rejections

LONG = "x" * 129
REJECTIONS: list[tuple[str, bytes | None, str, str]] = [
    ("too_large", raw(secret_page_view(title="x" * MAX_PAYLOAD_BYTES)), "too_large", "bytes"),
    ("not_utf8", raw(secret_page_view())[:-2] + b'\xff"}', "not_utf8", "UTF-8"),
    ("truncated", raw(secret_page_view())[:-1], "not_json", ""),
    ("empty", b"", "not_json", "empty"),
    ("none", None, "not_json", "null"),
    ("nan_literal", b'{"price": NaN}', "not_json", ""),
    ("array", raw([secret_page_view()]), "not_object", "array"),
    ("string", raw(SECRET), "not_object", "string"),
    ("null", b"null", "not_object", "null"),
    ("no_type", raw(secret_page_view(type=_DROP)), "unknown_type", "type"),
    ("other_type", raw(secret_page_view(type=SECRET)), "unknown_type", "type"),
    ("type_not_str", raw(secret_page_view(type=["page_view"])), "unknown_type", "type"),
    ("output_type", raw(secret_page_view(type="dead_letter")), "unknown_type", "type"),
    ("new_version", raw(secret_page_view(version="2-0-0")), "unknown_type", "version"),
    ("version_number", raw(secret_page_view(version=1)), "unknown_type", "version"),
    ("missing_field", raw(secret_page_view(product_id=_DROP)), "schema_violation", "product_id"),
    ("price_string", raw(secret_page_view(price="12")), "schema_violation", "price"),
    ("price_bool", raw(secret_page_view(price=True)), "schema_violation", "price"),
    ("price_infinite", raw(secret_page_view())[:-1] + b',"x":1e400}', "schema_violation", "finite"),
    ("channel", raw(secret_page_view(channel="fax")), "schema_violation", "channel"),
    ("long_id", raw(secret_page_view(event_id=LONG)), "schema_violation", "event_id"),
    ("long_anon", raw(secret_page_view(anonymous_id=LONG)), "schema_violation", "anonymous_id"),
    ("long_text", raw(secret_page_view(title="t" * 1025)), "schema_violation", "title"),
    ("empty_id", raw(secret_page_view(product_id="")), "schema_violation", "product_id"),
    (
        "no_offset",
        raw(secret_page_view(occurred_at="2026-11-02T20:05:12")),
        "schema_violation",
        "occurred_at",
    ),
    ("epoch_time", raw(secret_page_view(occurred_at=NOW)), "schema_violation", "occurred_at"),
    (
        "feb_30",
        raw(secret_page_view(occurred_at="2026-02-30T10:00:00Z")),
        "schema_violation",
        "occurred_at",
    ),
    (
        "offset_minutes",
        raw(secret_page_view(occurred_at="2026-11-02T10:00:00+05:75")),
        "schema_violation",
        "occurred_at",
    ),
    (
        "leap_second",
        raw(secret_page_view(occurred_at="2026-11-02T10:00:60Z")),
        "schema_violation",
        "occurred_at",
    ),
    (
        "before_2000",
        raw(secret_page_view(occurred_at="1999-12-31T23:59:59Z")),
        "schema_violation",
        "2000",
    ),
    (
        "year_0",
        raw(secret_page_view(occurred_at="0000-01-01T00:00:00Z")),
        "schema_violation",
        "occurred_at",
    ),
    ("bad_version_string", raw(secret_page_view(version="1-0-0\n")), "unknown_type", "version"),
    ("cart_action", raw(with_changes("cart", action="empty")), "schema_violation", "action"),
    (
        "cart_quantity_float",
        raw(with_changes("cart", quantity=1.5)),
        "schema_violation",
        "quantity",
    ),
    (
        "cart_quantity_huge",
        raw(with_changes("cart", quantity=2**40)),
        "schema_violation",
        "quantity",
    ),
    ("order_no_lines", raw(with_changes("order", lines=[])), "schema_violation", "lines"),
    (
        "order_many_lines",
        raw(with_changes("order", lines=[example("order")["lines"][0]] * 501)),
        "schema_violation",
        "lines",
    ),
    (
        "order_line_zero",
        raw(with_changes("order", lines=[{"product_id": "p", "quantity": 0, "unit_price": 1.0}])),
        "schema_violation",
        "lines[0].quantity",
    ),
    (
        "order_line_missing",
        raw(with_changes("order", lines=[{"product_id": "p", "quantity": 1}])),
        "schema_violation",
        "unit_price",
    ),
    ("currency", raw(with_changes("order", currency="cny")), "schema_violation", "currency"),
    (
        "path_slash",
        raw(with_changes("catalog_item", category_path=["baby/strollers"])),
        "schema_violation",
        "category_path[0]",
    ),
    (
        "path_empty",
        raw(with_changes("catalog_item", category_path=[])),
        "schema_violation",
        "category_path",
    ),
    (
        "path_deep",
        raw(with_changes("catalog_item", category_path=["c"] * 11)),
        "schema_violation",
        "category_path",
    ),
    (
        "attributes_list",
        raw(with_changes("catalog_item", attributes=[1])),
        "schema_violation",
        "attributes",
    ),
    (
        "link_reason",
        raw(with_changes("identity_link", reason="merge")),
        "schema_violation",
        "reason",
    ),
    ("negative_price", raw(secret_page_view(price=-1)), "negative_value", "price"),
    (
        "negative_cart_quantity",
        raw(with_changes("cart", quantity=-2)),
        "negative_value",
        "quantity",
    ),
    ("negative_cart_price", raw(with_changes("cart", price=-0.5)), "negative_value", "price"),
    ("negative_total", raw(with_changes("order", total=-585.9)), "negative_value", "total"),
    (
        "negative_unit_price",
        raw(with_changes("order", lines=[{"product_id": "p", "quantity": 1, "unit_price": -0.01}])),
        "negative_value",
        "lines[0].unit_price",
    ),
    ("negative_stock", raw(with_changes("catalog_item", stock=-3)), "negative_value", "stock"),
    (
        "negative_catalog_price",
        raw(with_changes("catalog_item", price=-1.0)),
        "negative_value",
        "price",
    ),
    (
        "future",
        raw(secret_page_view(occurred_at=format_time(NOW + FUTURE_TOLERANCE_S + 1))),
        "future_time",
        "occurred_at",
    ),
    (
        "no_ids",
        raw(secret_page_view(anonymous_id=_DROP, customer_id=_DROP)),
        "missing_identity",
        "anonymous_id",
    ),
    (
        "null_ids",
        raw(secret_page_view(anonymous_id=None, customer_id=None)),
        "missing_identity",
        "customer_id",
    ),
    (
        "blocked_ids",
        raw(secret_page_view(anonymous_id="undefined", customer_id="NULL")),
        "missing_identity",
        "customer_id",
    ),
    ("cart_no_ids", raw(with_changes("cart", customer_id=_DROP)), "missing_identity", "id"),
    ("order_blocked", raw(with_changes("order", customer_id=" -1 ")), "missing_identity", "id"),
    (
        "link_one_side",
        raw(with_changes("identity_link", customer_id=_DROP)),
        "missing_identity",
        "identity_link",
    ),
    (
        "link_blocked_side",
        raw(with_changes("identity_link", anonymous_id="Anonymous")),
        "missing_identity",
        "identity_link",
    ),
]


@pytest.mark.parametrize(
    ("payload", "category", "names"),
    [pytest.param(p, c, n, id=i) for i, p, c, n in REJECTIONS],
)
def test_rejection(payload: bytes | None, category: str, names: str) -> None:
    result = decode(payload, NOW)
    assert isinstance(result, Rejection), result
    assert result.category == category, result
    assert category in CATEGORIES
    assert names in result.message, result
    assert SECRET not in result.message  # privacy: field names and rules only


def test_every_category_is_exercised() -> None:
    assert {c for _, _, c, _ in REJECTIONS} == set(CATEGORIES)


def test_size_limit_is_inclusive_and_configurable() -> None:
    body = raw(secret_page_view())
    assert isinstance(decode(body, NOW, max_bytes=len(body)), PageView)
    assert decode(body, NOW, max_bytes=len(body) - 1) == Rejection(
        "too_large", f"payload is {len(body)} bytes, limit {len(body) - 1}"
    )


def test_future_tolerance_edge_and_parameter() -> None:
    inside = raw(secret_page_view(occurred_at=format_time(NOW + FUTURE_TOLERANCE_S)))
    assert isinstance(decode(inside, NOW), PageView)
    result = decode(inside, NOW, future_tolerance=10.0)
    assert isinstance(result, Rejection) and result.category == "future_time"
    assert isinstance(decode(inside, NOW + 1e6), PageView)  # the past is never "future"


@pytest.mark.parametrize("blocked", sorted(BLOCKED_IDS))
def test_blocked_ids_count_as_absent(blocked: str) -> None:
    for spelling in (blocked, blocked.upper(), f" {blocked.title()} "):
        event = decode(raw(secret_page_view(customer_id=spelling, anonymous_id="a-1")), NOW)
        assert isinstance(event, PageView)
        assert (event.customer_id, event.anonymous_id) == (None, "a-1")
        alone = decode(raw(secret_page_view(customer_id=spelling, anonymous_id=_DROP)), NOW)
        assert isinstance(alone, Rejection) and alone.category == "missing_identity"


def test_near_blocked_ids_are_kept() -> None:
    for value in ("00", "nulls", "anonymous-7", "-10", "noneX"):
        event = decode(raw(secret_page_view(customer_id=value)), NOW)
        assert isinstance(event, PageView) and event.customer_id == value


def test_lenient_inputs_decode_to_typed_values() -> None:
    event = decode(
        raw(
            with_changes(
                "cart",
                quantity=2.0,
                price=1699,
                category=None,
                channel=None,
                extra_field={"ignored": True},
                occurred_at="2026-11-02t06:12:40.123456789z",
            )
        ),
        NOW,
    )
    assert isinstance(event, CartChange)
    assert event.quantity == 2 and type(event.quantity) is int
    assert event.price == 1699.0 and type(event.price) is float
    assert event.category is None and event.channel is None
    assert event.occurred_at == parse_time("2026-11-02T06:12:40.123456Z")
    catalog = decode(raw(with_changes("catalog_item", attributes=None, version=None)), NOW)
    assert isinstance(catalog, CatalogItem) and catalog.attributes == {}
    order = decode(
        raw(
            with_changes(
                "order", total=536, lines=[{"product_id": "p", "quantity": 2.0, "unit_price": 268}]
            )
        ),
        NOW,
    )
    assert isinstance(order, Order) and order.total == 536.0 and type(order.total) is float
    line = order.lines[0]
    assert (type(line.quantity), type(line.unit_price), line.category) == (int, float, None)
    link = decode(raw(with_changes("identity_link", reason=_DROP)), NOW)
    assert isinstance(link, IdentityLink) and link.reason == "login"


def test_buffers_other_than_bytes() -> None:
    body = raw(secret_page_view())
    assert decode(bytearray(body), NOW) == decode(body, NOW) == decode(memoryview(body), NOW)
    result = decode(body.decode(), NOW)  # type: ignore[arg-type]
    assert result == Rejection("not_json", "payload is str, not bytes")


# ------------------------------------------------------------------------ time and encode


def test_format_and_parse_time() -> None:
    assert format_time(NOW + 0.25) == "2026-11-02T12:05:12.250000+00:00"
    assert format_time(NOW) == "2026-11-02T12:05:12.000000+00:00"
    assert format_time(NOW + 0.9999996) == "2026-11-02T12:05:13.000000+00:00"
    assert parse_time("2026-11-02T20:05:12+08:00") == NOW
    assert parse_time("2026-11-02T12:05:12Z") == NOW
    assert parse_time("2026-11-02T07:05:12.5-05:00") == NOW + 0.5
    for bad in ("2026-11-02", "2026-11-02T12:05:12", "20261102T120512Z", "2026-11-02 12:05:12Z"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_encode_writes_the_wire_form() -> None:
    event = decode(raw(example("order")), NOW)
    assert isinstance(event, Order)
    wire = to_wire(event)
    assert list(wire)[:4] == ["type", "version", "event_id", "occurred_at"]
    assert wire["type"] == "order" and wire["version"] == "1-0-0"
    assert wire["occurred_at"] == "2026-11-02T04:33:05.000000+00:00"
    assert "anonymous_id" not in wire  # None fields are left out
    assert wire["lines"][0] == {
        "product_id": "sku-formula-s1",
        "quantity": 2,
        "unit_price": 268.0,
        "category": "baby/formula",
    }
    assert orjson.loads(encode(event)) == wire
    validator_for("order")(orjson.loads(encode(event)))
    assert decode(encode(event), NOW) == event


# ----------------------------------------------------------------------------- dead letters


def test_dead_letter_from_a_topic() -> None:
    record = dead_letter(
        "not_json",
        "unexpected character at char 0",
        original=b"\x00oops",
        key=b"c:42",
        topic="events.page-view",
        partition=3,
        offset=1234,
        now=NOW,
    )
    validator_for("dead_letter")(copy.deepcopy(record))
    expected_id = hashlib.sha1(b"events.page-view|3|1234|not_json").hexdigest()[:20]
    assert record == {
        "type": "dead_letter",
        "version": "1-0-0",
        "id": expected_id,
        "category": "not_json",
        "message": "unexpected character at char 0",
        "source": {"topic": "events.page-view", "partition": 3, "offset": 1234},
        "original_b64": base64.b64encode(b"\x00oops").decode(),
        "original_key_b64": "Yzo0Mg==",
        "occurred_at": "2026-11-02T12:05:12.000000+00:00",
    }


def test_dead_letter_from_a_file_line() -> None:
    record = dead_letter(
        "adapter_row",
        "m" * 5000,
        original=None,
        key=None,
        topic="orders.csv",
        partition=None,
        offset=None,
        line=17,
        now=NOW,
    )
    validator_for("dead_letter")(copy.deepcopy(record))
    assert record["id"] == hashlib.sha1(b"orders.csv|17|adapter_row").hexdigest()[:20]
    assert record["source"] == {
        "topic": "orders.csv",
        "partition": None,
        "offset": None,
        "line": 17,
    }
    assert record["original_b64"] is None and record["original_key_b64"] is None
    assert len(record["message"]) == 1024
    missing_line = dict(record, source={"topic": "f", "partition": None, "offset": None})
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validator_for("dead_letter")(missing_line)


def test_dead_letter_ids_are_deterministic_and_distinct() -> None:
    def make(category: str, offset: int) -> str:
        record = dead_letter(
            category, "m", original=b"x", key=None, topic="t", partition=0, offset=offset, now=NOW
        )
        return str(record["id"])

    assert make("not_json", 1) == make("not_json", 1)
    assert len({make("not_json", 1), make("not_json", 2), make("too_large", 1)}) == 3
    with pytest.raises(ValueError):
        make("bogus", 1)
    assert set(load_schema("dead_letter")["properties"]["category"]["enum"]) == set(
        DEAD_LETTER_CATEGORIES
    )


def test_dead_letter_example_validates() -> None:
    body = example("dead_letter")
    validator_for("dead_letter")(body)
    assert base64.b64decode(body["original_b64"]).startswith(b"{")


def test_a_rejection_can_be_dead_lettered() -> None:
    for _, payload, _, _ in REJECTIONS:
        result = decode(payload, NOW)
        assert isinstance(result, Rejection)
        record = dead_letter(
            result.category,
            result.message,
            original=payload,
            key=None,
            topic="events.page-view",
            partition=0,
            offset=7,
            now=NOW,
        )
        validator_for("dead_letter")(record)


# ------------------------------------------------------------------------------- hypothesis

SAFE_TEXT = st.characters(blacklist_categories=("Cs",))
IDS = st.text(SAFE_TEXT, min_size=1, max_size=128).filter(
    lambda s: s.strip().lower() not in BLOCKED_IDS
)
TEXT = st.text(SAFE_TEXT, min_size=1, max_size=60) | st.text(
    SAFE_TEXT, min_size=1024, max_size=1024
)
OPT_TEXT = st.none() | TEXT
MONEY = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
TIMES = st.integers(946684800 * 10**6, 4102444800 * 10**6).map(lambda us: us / 10**6)
CHANNELS = st.sampled_from([None, "web", "app", "mini_program", "pos", "other"])
INT32 = 2**31 - 1
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(SAFE_TEXT, max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(SAFE_TEXT, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def envelope(with_both: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Common customer-event fields with at least one usable id."""
    ids = st.tuples(IDS, IDS) if with_both else st.tuples(st.none() | IDS, st.none() | IDS)
    return st.fixed_dictionaries(
        {
            "event_id": IDS,
            "occurred_at": TIMES,
            "ids": ids.filter(lambda pair: pair != (None, None)),
            "channel": CHANNELS,
            "store_id": st.none() | IDS,
            "session_id": st.none() | IDS,
        }
    ).map(lambda d: {**{k: v for k, v in d.items() if k != "ids"}, **_ids(d["ids"])})


def _ids(pair: tuple[str | None, str | None]) -> dict[str, str | None]:
    return {"anonymous_id": pair[0], "customer_id": pair[1]}


def build(cls: Callable[..., Event], common: st.SearchStrategy[dict[str, Any]], **own: Any) -> Any:
    """Events of a record class from common and own field strategies."""
    return st.builds(lambda c, o: cls(**c, **o), common, st.fixed_dictionaries(own))


LINES = st.lists(
    st.builds(
        OrderLine,
        product_id=IDS,
        quantity=st.integers(1, INT32),
        unit_price=MONEY,
        category=OPT_TEXT,
    ),
    min_size=1,
    max_size=5,
).map(tuple)
SEGMENTS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=100
)
EVENTS = st.one_of(
    build(
        PageView,
        envelope(),
        product_id=IDS,
        category=TEXT,
        price=MONEY,
        brand=OPT_TEXT,
        title=OPT_TEXT,
    ),
    build(
        CartChange,
        envelope(),
        action=st.sampled_from(["add", "remove", "set_quantity"]),
        product_id=IDS,
        quantity=st.integers(0, INT32),
        price=st.none() | MONEY,
        category=OPT_TEXT,
    ),
    build(
        Order,
        envelope(),
        action=st.sampled_from(["placed", "cancelled"]),
        order_id=IDS,
        lines=LINES,
        total=MONEY,
        currency=st.none() | st.from_regex(r"[A-Z]{3}", fullmatch=True),
    ),
    build(IdentityLink, envelope(with_both=True), reason=st.sampled_from(["login", "signup"])),
    st.builds(
        CatalogItem,
        event_id=IDS,
        occurred_at=TIMES,
        product_id=IDS,
        title=TEXT,
        category_path=st.lists(SEGMENTS, min_size=1, max_size=10).map(tuple),
        price=MONEY,
        stock=st.integers(0, INT32),
        attributes=st.dictionaries(st.text(SAFE_TEXT, max_size=8), JSON_VALUES, max_size=4),
    ),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(EVENTS)
def test_round_trip(event: Event) -> None:
    wire = encode(event)
    validator_for(type_name(event))(orjson.loads(wire))
    again = decode(wire, event.occurred_at)
    assert again == event
    assert not isinstance(again, Rejection) and encode(again) == wire


@FUZZ
@given(st.floats(min_value=946684800.0, max_value=4102444800.0))
def test_time_text_is_stable_at_microseconds(ts: float) -> None:
    text = format_time(ts)
    assert abs(parse_time(text) - ts) <= 5e-7
    assert format_time(parse_time(text)) == text


def assert_clean(result: Event | Rejection) -> None:
    """Decoded, or rejected with a decode category (never the internal-error safety net)."""
    if isinstance(result, Rejection):
        assert result.category in CATEGORIES, result
        assert result.message


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    assert_clean(decode(payload, NOW))


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_never_raises(value: Any) -> None:
    assert_clean(decode(raw(value), NOW))


FIELDS = st.sampled_from(
    [
        "version",
        "event_id",
        "occurred_at",
        "anonymous_id",
        "customer_id",
        "channel",
        "price",
        "quantity",
        "lines",
        "total",
        "category_path",
        "stock",
        "attributes",
        "reason",
        "action",
        "product_id",
        "currency",
        "title",
    ]
)


@FUZZ
@given(st.sampled_from(INPUTS), st.dictionaries(FIELDS, JSON_VALUES, max_size=3))
def test_mutated_examples_never_raise_and_agree_with_the_schema(
    name: str, changes: dict[str, Any]
) -> None:
    body = {**example(name), **changes}
    result = decode(raw(body), NOW)
    assert_clean(result)
    try:
        validator_for(name)(copy.deepcopy(body))
    except fastjsonschema.JsonSchemaValueException:
        assert isinstance(result, Rejection)  # decode is never laxer than the schema


def test_refs_resolve_inside_the_package_only() -> None:
    from schemas.contracts import _resolve_local

    assert _resolve_local(f"{SCHEMA_BASE_URI}cart/1-0-0.json#/properties") == load_schema("cart")
    with pytest.raises(LookupError):
        _resolve_local("https://example.org/schemas/cart/1-0-0.json")
