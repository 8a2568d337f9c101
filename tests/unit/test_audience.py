"""Audiences (journey.audience, journey.audience_export): hand-written states, keys by hand."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from harness.cli import cli
from journey.audience import (
    AudienceError,
    AudiencePage,
    AudienceQuery,
    AudienceRow,
    merge_pages,
    parse_query,
    select,
)
from journey.audience_export import COLUMNS, csv_lines, jsonl, row_dict, row_from_dict
from journey.config import JourneyConfig

DAY = 86400.0
NOW = 20_000_000.0  # 1970-08-20T11:33:20Z
CONFIG = JourneyConfig()  # lapsed after 90 days, high value from 1000 spent


def journey(key: str, **fields: Any) -> dict[str, Any]:
    """A stored journey with the fields that matter here (the others take their defaults)."""
    return {
        "customer_key": key,
        "customer_id": key[2:] if key.startswith("c:") else None,
        "anonymous_id": key[2:] if key.startswith("a:") else None,
        "sessions": 1,
        "first_seen": NOW - 200 * DAY,
        **fields,
    }


STATES: dict[str, Any] = {
    # a buyer: high value, favourites, one cart abandoned two days ago (then recovered)
    "c:ann": {
        "journey": journey(
            "c:ann",
            stage="purchase",
            orders=1,
            orders_placed=1,
            total_spend=1200.0,
            last_seen=NOW - DAY,
            last_order_at=NOW - DAY,
            favourites={"p1": ["toys", NOW - DAY]},
        ),
        "abandonment": {"fired": [["f1", "cart", NOW - 2 * DAY, True, ["p1"], None]]},
    },
    # a returning visitor who never bought: a cart ten days ago, a browse five days ago
    "c:bob": {
        "journey": journey("c:bob", stage="seed", sessions=2, last_seen=NOW - 3600),
        "abandonment": {
            "fired": [
                ["f2", "cart", NOW - 10 * DAY, False, ["p2"], None],
                ["f3", "browse", NOW - 5 * DAY, False, ["p3"], "garden"],
            ]
        },
    },
    # bought twice, inactive for 100 days: lapsed; a new parent
    "c:cat": {
        "journey": journey(
            "c:cat",
            stage="repurchase",
            orders=2,
            orders_placed=2,
            total_spend=80.0,
            last_seen=NOW - 100 * DAY,
            new_parent=True,
        ),
        "abandonment": None,
    },
    # an anonymous new visitor; its changelog record still carries an outbox
    "a:dan": {
        "journey": journey("a:dan", stage="touch", last_seen=NOW - 7200),
        "outbox": {"batch": 3, "records": []},
    },
    # an anonymous key aliased to a customer: no journey of its own
    "a:eve": {"journey": None, "identity": {"alias_of": "c:fay"}},
    # placed one order and cancelled it: still a buyer (the customer segment counts it too)
    "c:fay": {
        "journey": journey(
            "c:fay", stage="purchase", orders=0, orders_placed=1, last_seen=NOW - 10
        ),
    },
}
# a state as stored bytes, with a fired marker in the older four-field form
GUS = {
    "journey": journey("c:gus", stage="touch", last_seen=NOW - 50),
    "abandonment": {"fired": [["f4", "cart", NOW - 3 * DAY, False]]},
}


def items() -> list[tuple[str | bytes, Any]]:
    return [*STATES.items(), (b"c:gus", orjson.dumps(GUS))]


def keys(**params: str) -> list[str]:
    page = select(items(), parse_query(params), NOW, CONFIG)
    return [row.customer_key for row in page.rows]


def test_without_conditions_every_key_with_a_journey_sorted() -> None:
    assert keys() == ["a:dan", "c:ann", "c:bob", "c:cat", "c:fay", "c:gus"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"segment": "customer"}, ["c:ann", "c:fay"]),
        ({"segment": "lapsed"}, ["c:cat"]),
        ({"segment": "returning_visitor"}, ["c:bob"]),
        ({"segment": "new_visitor"}, ["a:dan", "c:gus"]),
        ({"stage": "seed"}, ["c:bob"]),
        ({"stage": "purchase"}, ["c:ann", "c:fay"]),
        ({"tag": "high_value"}, ["c:ann"]),
        ({"tag": "favourites"}, ["c:ann"]),
        ({"tag": "new_parent"}, ["c:cat"]),
        ({"tag": "price_sensitive"}, []),
        ({"bought": "true"}, ["c:ann", "c:cat", "c:fay"]),
        ({"bought": "no"}, ["a:dan", "c:bob", "c:gus"]),
        # last seen in [NOW - 1 day, NOW - 60 s): ann's NOW - 1 day is in, fay's and gus's after
        ({"seen_from": str(NOW - DAY), "seen_to": str(NOW - 60)}, ["a:dan", "c:ann", "c:bob"]),
        ({"seen_to": str(NOW - 2 * DAY)}, ["c:cat"]),
        # carts abandoned in [NOW - 4 days, NOW - 2 days): gus's (older marker form); ann's is
        # at the excluded end; bob's browse abandonment is not a cart
        (
            {"abandoned_cart_from": str(NOW - 4 * DAY), "abandoned_cart_to": str(NOW - 2 * DAY)},
            ["c:gus"],
        ),
        (
            {"abandoned_cart_from": str(NOW - 4 * DAY), "abandoned_cart_to": str(NOW - DAY)},
            ["c:ann", "c:gus"],
        ),
        ({"abandoned_cart_from": str(NOW - 11 * DAY), "bought": "false"}, ["c:bob", "c:gus"]),
        ({"abandoned_cart_to": str(NOW - 6 * DAY)}, ["c:bob"]),
        ({"segment": "new_visitor", "bought": "false", "stage": "touch"}, ["a:dan", "c:gus"]),
        ({"segment": "customer", "tag": "new_parent"}, []),
    ],
)
def test_conditions_select_the_expected_customers(
    params: dict[str, str], expected: list[str]
) -> None:
    assert keys(**params) == expected


def test_the_segment_is_taken_at_now() -> None:
    # 89.5 days on: ann (last seen a day before NOW) has lapsed too, fay (10 s before) not yet
    later = NOW + 89.5 * DAY
    page = select(items(), AudienceQuery(segment="lapsed"), later, CONFIG)
    assert [r.customer_key for r in page.rows] == ["c:ann", "c:cat"]


def test_pages_follow_the_key_cursor() -> None:
    assert keys(limit="2") == ["a:dan", "c:ann"]
    page = select(items(), AudienceQuery(limit=2), NOW, CONFIG)
    assert page.next_after == "c:ann"
    page = select(items(), AudienceQuery(limit=2, after="c:ann"), NOW, CONFIG)
    assert [r.customer_key for r in page.rows] == ["c:bob", "c:cat"]
    assert page.next_after == "c:cat"
    page = select(items(), AudienceQuery(limit=2, after="c:cat"), NOW, CONFIG)
    assert [r.customer_key for r in page.rows] == ["c:fay", "c:gus"]
    assert page.next_after is None  # exactly the last two: no further page
    page = select(items(), AudienceQuery(limit=2, after="c:gus"), NOW, CONFIG)
    assert page.rows == () and page.next_after is None
    # a filtered audience pages the same way
    page = select(items(), AudienceQuery(bought=True, limit=1, after="c:ann"), NOW, CONFIG)
    assert [r.customer_key for r in page.rows] == ["c:cat"] and page.next_after == "c:cat"


def test_a_row_carries_the_profile_fields() -> None:
    (ann,) = select(items(), AudienceQuery(tag="high_value"), NOW, CONFIG).rows
    assert ann == AudienceRow(
        customer_key="c:ann",
        customer_id="ann",
        anonymous_id=None,
        segment="customer",
        stage="purchase",
        tags=("favourites", "high_value"),
        first_seen=NOW - 200 * DAY,
        last_seen=NOW - DAY,
        sessions=1,
        orders=1,
        revenue=1200.0,
        last_order_at=NOW - DAY,
        last_cart_abandoned_at=NOW - 2 * DAY,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"segment": "vip"},
            "unknown segment 'vip': one of new_visitor, returning_visitor, customer, lapsed",
        ),
        ({"stage": "browse"}, "unknown stage 'browse': one of touch, seed, purchase, repurchase"),
        (
            {"tag": "vip"},
            "unknown tag 'vip': one of favourites, high_value, new_parent, price_sensitive",
        ),
        ({"segement": "customer"}, "unknown parameter 'segement'"),
        ({"bought": "maybe"}, "bought must be true or false, not 'maybe'"),
        ({"seen_from": "yesterday"}, "seen_from must be epoch seconds or an ISO 8601 time"),
        ({"seen_from": "nan"}, "seen_from must be a finite time"),
        ({"seen_from": "10", "seen_to": "10"}, "seen_from must be before seen_to"),
        (
            {"abandoned_cart_from": "2026-11-03", "abandoned_cart_to": "2026-11-02"},
            "abandoned_cart_from must be before abandoned_cart_to",
        ),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"limit": "ten"}, "limit must be a whole number, not 'ten'"),
    ],
)
def test_bad_parameters_are_rejected_with_what_is_accepted(
    params: dict[str, str], message: str
) -> None:
    with pytest.raises(AudienceError) as err:
        parse_query(params)
    assert message in str(err.value)


def test_parameters_parse() -> None:
    day = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    query = parse_query(
        {
            "segment": "customer",
            "seen_from": "2026-11-02",  # a date: its midnight, UTC
            "seen_to": "2026-11-02T02:00:00+01:00",  # 01:00 UTC
            "bought": "Yes",
            "abandoned_cart_from": "1800000000",
            "abandoned_cart_to": "2027-01-15T10:00:00Z",
            "limit": "50",
            "after": "c:ann",
            "tag": "",  # empty: not given
        }
    )
    assert query == AudienceQuery(
        segment="customer",
        seen_from=day,
        seen_to=day + 3600,
        bought=True,
        abandoned_cart_from=1_800_000_000.0,
        abandoned_cart_to=datetime(2027, 1, 15, 10, tzinfo=UTC).timestamp(),
        limit=50,
        after="c:ann",
    )
    assert parse_query({"bought": "0"}).bought is False
    with pytest.raises(AudienceError, match="limit must be at most 1000"):
        parse_query({"limit": "1001"}, max_limit=1000)


def rows() -> list[AudienceRow]:
    return list(select(items(), AudienceQuery(), NOW, CONFIG).rows)


def test_json_lines_have_every_column_and_rfc3339_times() -> None:
    lines = b"".join(jsonl(rows())).splitlines()
    assert len(lines) == 6
    ann = orjson.loads(lines[1])
    assert list(ann) == list(COLUMNS)
    assert ann["customer_key"] == "c:ann" and ann["tags"] == ["favourites", "high_value"]
    assert ann["last_seen"] == "1970-08-19T11:33:20.000Z"
    assert ann["last_cart_abandoned_at"] == "1970-08-18T11:33:20.000Z"
    assert orjson.loads(lines[0])["last_order_at"] is None


def test_csv_has_a_header_and_one_line_per_customer() -> None:
    text = "".join(csv_lines(rows()))
    header, *body = text.splitlines()
    assert header == (
        "customer_key,customer_id,anonymous_id,segment,stage,tags,first_seen,last_seen,"
        "sessions,orders,revenue,last_order_at,last_cart_abandoned_at"
    )
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["customer_key"] for r in parsed] == [
        "a:dan",
        "c:ann",
        "c:bob",
        "c:cat",
        "c:fay",
        "c:gus",
    ]
    assert parsed[1]["tags"] == "favourites high_value" and parsed[1]["revenue"] == "1200.0"
    assert parsed[0]["customer_id"] == "" and parsed[0]["anonymous_id"] == "dan"
    assert len(body) == 6
    assert "".join(csv_lines([])) == header + "\n"  # nobody: the header alone


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    row = rows()[1]
    evil = replace(row, customer_id="=HYPERLINK(1)", tags=())
    (parsed,) = csv.DictReader(io.StringIO("".join(csv_lines([evil]))))
    assert parsed["customer_id"] == "'=HYPERLINK(1)"


def test_the_command_rejects_a_bad_query_before_reaching_a_broker() -> None:
    result = CliRunner().invoke(cli, ["audience", "--segment", "vip", "-o", "-"])
    assert result.exit_code == 2
    assert "unknown segment 'vip': one of new_visitor, returning_visitor" in result.output
    result = CliRunner().invoke(cli, ["audience", "--seen-from", "soon", "-o", "-"])
    assert result.exit_code == 2 and "seen_from must be epoch seconds" in result.output


def audience_row(key: str, **over: Any) -> AudienceRow:
    """A row with every field set (times on whole milliseconds, as served)."""
    fields_ = dict(
        customer_key=key,
        customer_id=key[2:],
        anonymous_id=None,
        segment="customer",
        stage="purchase",
        tags=("favourites", "price_sensitive"),
        first_seen=1_762_077_600.125,
        last_seen=1_762_081_200.5,
        sessions=2,
        orders=1,
        revenue=20.0,
        last_order_at=1_762_077_630.0,
        last_cart_abandoned_at=None,
    )
    fields_.update(over)
    return AudienceRow(**fields_)  # type: ignore[arg-type]


def test_a_served_row_reads_back_as_the_same_row() -> None:
    row = audience_row("c:u01", anonymous_id="dev-1", last_cart_abandoned_at=1_762_080_000.25)
    assert row_from_dict(orjson.loads(orjson.dumps(row_dict(row)))) == row


def test_merged_pages_are_the_first_keys_of_the_union() -> None:
    a = AudiencePage((audience_row("c:01"), audience_row("c:04"), audience_row("c:05")), "c:05")
    b = AudiencePage((audience_row("c:02"), audience_row("c:03")), None)
    page = merge_pages([a, b], 3)
    assert [r.customer_key for r in page.rows] == ["c:01", "c:02", "c:03"]
    assert page.next_after == "c:03"
    # the last page: nobody has more and the union fits
    last = merge_pages([AudiencePage((audience_row("c:09"),), None), b], 3)
    assert [r.customer_key for r in last.rows] == ["c:02", "c:03", "c:09"]
    assert last.next_after is None
    # a worker with more rows than fit says so even when the union is exactly the limit
    full = merge_pages([AudiencePage((audience_row("c:07"),), "c:07"), b], 3)
    assert full.next_after == "c:07"
    assert merge_pages([AudiencePage((), None)], 3) == AudiencePage((), None)
    assert merge_pages([a, b], None).next_after is None
