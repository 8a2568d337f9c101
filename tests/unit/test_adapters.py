"""Tests of replay.adapters: real samples (counts computed independently here) and small files."""

from __future__ import annotations

import csv
import gzip
import io
import math
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from replay.adapters import (
    FORMATS,
    AdapterRejection,
    ColumnMapping,
    read_events,
    retail_category,
    sort_key,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REES46 = "rees46-2019-Oct-first-17k.csv"
RETAIL = "online-retail-2010-12-to-2011-08.csv.gz"
GAP = 300.0

REQUIRED = {
    "page_view": ("event_id", "occurred_at", "product_id", "category", "price"),
    "cart": ("event_id", "occurred_at", "action", "product_id", "quantity"),
    "order": ("event_id", "occurred_at", "action", "order_id", "lines", "total"),
    "catalog_item": ("event_id", "occurred_at", "product_id", "title", "category_path", "price"),
    "identity_link": ("event_id", "occurred_at", "anonymous_id", "customer_id"),
}


def shared(name: str) -> Path:
    """A real-data sample of ../shared/data, or skip."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"../shared/data not found: {path} is absent (real-data samples live there)")
    return path


def assert_valid(events: Iterable[dict[str, Any]]) -> None:
    """Every event passes schemas.contracts.decode, or (without it) has its required fields."""
    try:
        from schemas.contracts import Rejection, decode
    except ImportError:
        decode = None  # type: ignore[assignment]
    for event in events:
        if decode is not None:
            result = decode(orjson.dumps(event), sort_key(event) + 60.0)
            assert not isinstance(result, Rejection), (result, event)
        else:
            for name in REQUIRED[event["type"]]:
                assert event.get(name) not in (None, ""), (name, event)
            assert (
                "customer_id" in event
                or "anonymous_id" in event
                or event["type"] == ("catalog_item")
            )


def split(items: Iterable[Any]) -> tuple[list[dict[str, Any]], list[AdapterRejection]]:
    events: list[dict[str, Any]] = []
    rejections: list[AdapterRejection] = []
    for item in items:
        (rejections if isinstance(item, AdapterRejection) else events).append(item)
    return events, rejections


Rows = tuple[list[str], list[list[str]], bytes]
Output = tuple[list[dict[str, Any]], list[AdapterRejection]]
RetailOutput = tuple[list[dict[str, Any]], list[AdapterRejection], float]


def epoch(text: str) -> float:
    """Seconds of a source time like '2019-10-01 00:00:00 UTC' or '2010-12-01 08:26:00' (UTC)."""
    return datetime.strptime(text[:19] + "+0000", "%Y-%m-%d %H:%M:%S%z").timestamp()


# --------------------------------------------------------------------------- REES46 sample


@pytest.fixture(scope="module")
def rees46_rows() -> Rows:
    path = shared(REES46)
    data = path.read_bytes()
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    return header, rows, data


@pytest.fixture(scope="module")
def rees46_output() -> Output:
    return split(read_events(shared(REES46), "rees46"))


@pytest.mark.shared_data
def test_rees46_views_and_carts_match_an_independent_count(
    rees46_rows: Rows, rees46_output: Output
) -> None:
    header, rows, _ = rees46_rows
    events, _ = rees46_output
    complete = [r for r in rows if len(r) == len(header)]
    kinds = Counter(r[header.index("event_type")] for r in complete)
    got = Counter(e["type"] for e in events)
    assert got["page_view"] == kinds["view"] > 17_000
    # no quantities in REES46: a cart row puts the product in the cart (set to 1, so carting it
    # twice and buying it once empties the line), a remove_from_cart row takes it out (set to 0)
    carts = Counter((e["action"], e["quantity"]) for e in events if e["type"] == "cart")
    assert carts[("set_quantity", 1)] == kinds["cart"]
    assert carts[("set_quantity", 0)] == kinds["remove_from_cart"]
    assert sum(carts.values()) == kinds["cart"] + kinds["remove_from_cart"]
    views = [e for e in events if e["type"] == "page_view"]
    assert all(v["customer_id"] and v["session_id"] for v in views)
    assert_valid(events)


@pytest.mark.shared_data
def test_rees46_orders_follow_the_documented_grouping(
    rees46_rows: Rows, rees46_output: Output
) -> None:
    header, rows, _ = rees46_rows
    events, _ = rees46_output
    i_type, i_time = header.index("event_type"), header.index("event_time")
    i_session, i_price = header.index("user_session"), header.index("price")
    # An order starts at a purchase row whose session's previous row is not a purchase, or is a
    # purchase more than 5 minutes earlier; the following purchase rows of that run join it.
    previous: dict[str, tuple[str, float]] = {}
    expected_orders = 0
    purchase_rows = 0
    purchase_amount = 0.0
    sessions_with_purchases: set[str] = set()
    for row in rows:
        if len(row) != len(header):
            continue
        session, kind, when = row[i_session], row[i_type], epoch(row[i_time])
        if kind == "purchase":
            purchase_rows += 1
            purchase_amount += float(row[i_price])
            sessions_with_purchases.add(session)
            before = previous.get(session)
            if before is None or before[0] != "purchase" or when - before[1] > GAP:
                expected_orders += 1
        previous[session] = (kind, when)
    orders = [e for e in events if e["type"] == "order"]
    assert len(orders) == expected_orders
    assert 0 < len(orders) < purchase_rows  # some sessions really bought several items at once
    assert sum(len(o["lines"]) for o in orders) == purchase_rows
    assert {o["session_id"] for o in orders} == sessions_with_purchases
    assert math.isclose(sum(o["total"] for o in orders), purchase_amount, rel_tol=1e-9)
    assert len({o["order_id"] for o in orders}) == len(orders)
    for order in orders:
        assert order["action"] == "placed"
        assert all(line["quantity"] == 1 for line in order["lines"])
        lines_total = sum(line["unit_price"] for line in order["lines"])
        assert math.isclose(order["total"], lines_total, abs_tol=1e-6)


@pytest.mark.shared_data
def test_rees46_order_precedes_later_rows_of_its_session(rees46_output: Output) -> None:
    events, _ = rees46_output
    last_seen: dict[str, float] = {}
    for event in events:
        session, when = event["session_id"], sort_key(event)
        assert when >= last_seen.get(session, -math.inf), event
        last_seen[session] = when
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)


@pytest.mark.shared_data
def test_rees46_truncated_last_line_is_one_rejection(
    rees46_rows: Rows, rees46_output: Output
) -> None:
    _, _, data = rees46_rows
    _, rejections = rees46_output
    physical_lines = data.split(b"\n")
    if physical_lines[-1] == b"":
        physical_lines.pop()
    assert len(rejections) == 1
    rejection = rejections[0]
    assert rejection.line == len(physical_lines)
    assert rejection.category == "adapter_row"
    assert rejection.raw == physical_lines[-1].rstrip(b"\r")
    assert "field" in rejection.message


@pytest.mark.shared_data
def test_rees46_time_and_category_conversion(rees46_rows: Rows, rees46_output: Output) -> None:
    header, rows, _ = rees46_rows
    events, _ = rees46_output
    first_row, first = rows[0], events[0]
    assert first["event_id"] == "rees46-L2"
    stamp = first_row[header.index("event_time")]  # e.g. "2019-10-01 00:00:00 UTC"
    assert first["occurred_at"] == stamp[:10] + "T" + stamp[11:19] + "+00:00"
    code = first_row[header.index("category_code")]
    cat_id = first_row[header.index("category_id")]
    assert first["category"] == (code or f"cat-{cat_id}")
    assert first["customer_id"] == first_row[header.index("user_id")]


# --------------------------------------------------------------------------- online retail sample


@pytest.fixture(scope="module")
def retail_output() -> RetailOutput:
    path = shared(RETAIL)
    started = time.perf_counter()
    events, rejections = split(read_events(path, "online-retail"))
    return events, rejections, time.perf_counter() - started


@pytest.fixture(scope="module")
def retail_truth() -> dict[str, Any]:
    """Independent reading: valid lines per invoice, following the documented row rules."""
    path = shared(RETAIL)
    valid: dict[str, list[int]] = {}
    guests: set[str] = set()
    invalid = 0
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            invoice = row["InvoiceNo"]
            cancel = invoice.startswith("C")
            try:
                quantity = int(row["Quantity"])
                price = float(row["UnitPrice"])
            except ValueError:
                invalid += 1
                continue
            ok = quantity != 0 and price >= 0 and (quantity < 0) == cancel and row["StockCode"]
            if not ok:
                invalid += 1
                continue
            valid.setdefault(invoice, []).append(abs(quantity))
            if not row["CustomerID"]:
                guests.add(invoice)
    return {"valid": valid, "guests": guests, "invalid": invalid}


@pytest.mark.shared_data
def test_retail_placed_orders_equal_invoices_with_valid_lines(
    retail_output: RetailOutput, retail_truth: dict[str, Any]
) -> None:
    events, _, _ = retail_output
    valid: dict[str, list[int]] = retail_truth["valid"]
    placed_invoices = {i for i in valid if not i.startswith("C")}
    cancelled_invoices = {i for i in valid if i.startswith("C")}
    placed = [e for e in events if e["action"] == "placed"]
    cancelled = [e for e in events if e["action"] == "cancelled"]
    assert {e["order_id"].split("#")[0] for e in placed} == placed_invoices
    assert {e["order_id"].split("#")[0] for e in cancelled} == cancelled_invoices
    # invoices over the schema's 500-line limit come in parts
    assert len(placed) == sum(math.ceil(len(valid[i]) / 500) for i in placed_invoices)
    assert len(events) == len(placed) + len(cancelled)
    assert all(e["type"] == "order" for e in events)
    assert all(len(e["lines"]) <= 500 for e in events)
    assert sum(line["quantity"] for e in events for line in e["lines"]) == sum(
        sum(quantities) for quantities in valid.values()
    )
    assert len({e["event_id"] for e in events}) == len(events)


@pytest.mark.shared_data
def test_retail_guest_orders_and_ids(
    retail_output: RetailOutput, retail_truth: dict[str, Any]
) -> None:
    events, _, _ = retail_output
    guests: set[str] = retail_truth["guests"]
    placed_guests = {i for i in guests if not i.startswith("C")}
    got_guests = {
        e["order_id"].split("#")[0]
        for e in events
        if e["action"] == "placed" and "anonymous_id" in e
    }
    assert got_guests == placed_guests
    assert len(placed_guests) > 1000
    for event in events:
        if "anonymous_id" in event:
            assert event["anonymous_id"] == "guest-" + event["order_id"].split("#")[0]
            assert "customer_id" not in event
        else:
            assert event["customer_id"].isdigit()
        assert event["channel"] == "web"
        assert event["store_id"]
        assert all(line["quantity"] > 0 for line in event["lines"])


@pytest.mark.shared_data
def test_retail_rejections_and_speed(
    retail_output: RetailOutput, retail_truth: dict[str, Any]
) -> None:
    events, rejections, seconds = retail_output
    assert len(rejections) == retail_truth["invalid"]
    assert all(r.category == "adapter_row" and r.line > 1 for r in rejections)
    assert seconds < 20.0, f"reading 320k rows took {seconds:.1f}s"
    assert_valid(events[:2000])
    assert_valid(e for e in events if len(e["lines"]) >= 400)


# --------------------------------------------------------------------------- small files: jsonl


def test_jsonl_passes_objects_and_rejects_other_lines(tmp_path: Path) -> None:
    good = {"type": "page_view", "event_id": "e1", "occurred_at": "2026-01-01T00:00:00Z"}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(good) + b"\n\n  \n[1, 2]\n{broken\n" + orjson.dumps(good))
    items = list(read_events(path, "jsonl"))
    assert items[0] == good and items[-1] == good
    rejections = [i for i in items if isinstance(i, AdapterRejection)]
    assert [r.line for r in rejections] == [4, 5]
    assert rejections[0].raw == b"[1, 2]" and rejections[1].raw == b"{broken"
    assert len(items) == 4


def test_gzip_is_detected_for_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert list(read_events(path, "jsonl")) == [{"a": 1}, {"a": 2}]


# --------------------------------------------------------------------------- small files: rees46

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return path


def test_rees46_grouping_rules(tmp_path: Path) -> None:
    rows = [
        REES46_HEADER,
        "2019-10-01 00:00:00 UTC,view,1,10,electronics.phone,acme,5.00,u1,s1",  # 2
        "2019-10-01 00:01:00 UTC,purchase,1,10,electronics.phone,acme,5.00,u1,s1",  # 3
        "2019-10-01 00:02:00 UTC,purchase,2,20,,,2.50,u1,s1",  # 4: same order
        "2019-10-01 00:02:30 UTC,view,3,30,,,1.00,u2,s2",  # 5: other session
        "2019-10-01 00:03:00 UTC,view,1,10,electronics.phone,acme,5.00,u1,s1",  # 6: closes s1
        "2019-10-01 00:04:00 UTC,purchase,1,10,electronics.phone,acme,5.00,u1,s1",  # 7: new
        "2019-10-01 00:20:00 UTC,purchase,2,20,,,2.50,u1,s1",  # 8: > 5 min later: new
        "2019-10-01 00:21:00 UTC,cart,3,30,,,1.00,u2,s2",  # 9
        "2019-10-01 00:22:00 UTC,remove_from_cart,3,30,,,x,u2,s2",  # 10: bad price
        "2019-10-01 00:23:00 UTC,remove_from_cart,3,30,,,1.00,u2,s2",  # 11
        "2019-10-01 00:24:00 UTC,purchase,3,30,,,1.00,u2,s2",  # 12: open at end of file
        "2019-10-01 00:25:00 UTC,view,3,30",  # 13: truncated
    ]
    items = list(read_events(write(tmp_path / "r.csv", rows), "rees46"))
    kinds = [
        (i.line, "rejected") if isinstance(i, AdapterRejection) else (i["event_id"], i["type"])
        for i in items
    ]
    assert kinds == [
        ("rees46-L2", "page_view"),
        ("rees46-L5", "page_view"),
        ("rees46-L3", "order"),
        ("rees46-L6", "page_view"),
        ("rees46-L7", "order"),  # flushed when row 8 is read, 16 minutes later
        ("rees46-L9", "cart"),
        (10, "rejected"),
        ("rees46-L11", "cart"),
        (13, "rejected"),
        ("rees46-L8", "order"),
        ("rees46-L12", "order"),
    ]
    by_id = {i["event_id"]: i for i in items if isinstance(i, dict)}
    first = by_id["rees46-L3"]
    assert first["order_id"] == "rees46-s1-1"
    assert first["occurred_at"] == "2019-10-01T00:02:00+00:00"
    assert first["customer_id"] == "u1" and first["session_id"] == "s1"
    assert first["lines"] == [
        {"product_id": "1", "quantity": 1, "unit_price": 5.0, "category": "electronics.phone"},
        {"product_id": "2", "quantity": 1, "unit_price": 2.5, "category": "cat-20"},
    ]
    assert first["total"] == 7.5
    assert by_id["rees46-L7"]["order_id"] == "rees46-s1-2"
    assert by_id["rees46-L8"]["order_id"] == "rees46-s1-3"
    assert by_id["rees46-L2"]["brand"] == "acme" and "brand" not in by_id["rees46-L5"]
    carted, removed = by_id["rees46-L9"], by_id["rees46-L11"]
    assert (carted["action"], carted["quantity"]) == ("set_quantity", 1)
    assert (removed["action"], removed["quantity"]) == ("set_quantity", 0)
    assert by_id["rees46-L2"]["occurred_at"] == "2019-10-01T00:00:00+00:00"
    rejected = [i for i in items if isinstance(i, AdapterRejection)]
    assert "price" in rejected[0].message
    assert rejected[1].raw == b"2019-10-01 00:25:00 UTC,view,3,30"
    assert_valid(by_id.values())


def test_rees46_header_must_have_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", ["a,b,c", "1,2,3"])
    with pytest.raises(ValueError, match="header lacks"):
        list(read_events(path, "rees46"))


# --------------------------------------------------------------------------- small files: retail

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def test_online_retail_invoices(tmp_path: Path) -> None:
    rows = [
        RETAIL_HEADER,
        "1001,A1,RED LUNCH BAG,2,2011-01-02 10:00:00,1.50,12345.0,United Kingdom",  # 2
        "1001,B2,GIFT VOUCHER \u00a35.00,1,2011-01-02 10:00:00,5.00,12345.0,United Kingdom",  # 3
        "1002,A1,RED LUNCH BAG,0,2011-01-02 10:00:00,1.50,,France",  # 4: quantity 0
        '1002,C3,"PINK, LARGE MUG",3,2011-01-02 10:00:00,2.00,,France',  # 5
        "1001,D4,DOORMAT HEARTS,1,2011-01-02 10:01:00,7.95,12345.0,United Kingdom",  # 6
        "C1003,A1,RED LUNCH BAG,-2,2011-01-02 10:02:00,1.50,12345.0,United Kingdom",  # 7
        "1004,E5,DAMAGED,-5,2011-01-02 10:03:00,0.0,,United Kingdom",  # 8: stock adjust
        "1004,F6,BAD DEBT,1,2011-01-02 10:03:00,-9.00,,United Kingdom",  # 9: negative price
        "1005,A1,RED LUNCH BAG,1,not a date,1.50,,United Kingdom",  # 10
        "1006,A1,RED LUNCH BAG,1,2011-01-02 10:30:00,1.50,555.0,United Kingdom",  # 11
    ]
    path = tmp_path / "retail.csv.gz"
    path.write_bytes(gzip.compress("\r\n".join(rows).encode("latin-1") + b"\r\n"))
    events, rejections = split(read_events(path, "online-retail"))
    assert [r.line for r in rejections] == [4, 8, 9, 10]
    assert [e["order_id"] for e in events] == ["1002", "1001", "C1003", "1006"]
    guest, first, cancel, last = events
    assert first["customer_id"] == "12345" and "anonymous_id" not in first
    assert first["store_id"] == "United Kingdom" and first["channel"] == "web"
    assert [line["product_id"] for line in first["lines"]] == ["A1", "B2", "D4"]
    assert first["occurred_at"] == "2011-01-02T10:01:00+00:00"
    assert math.isclose(first["total"], 2 * 1.5 + 5.0 + 7.95)
    assert first["lines"][0]["category"] == "bag"
    assert first["lines"][2]["category"] == "doormat"
    assert guest["anonymous_id"] == "guest-1002" and "customer_id" not in guest
    assert guest["lines"] == [
        {"product_id": "C3", "quantity": 3, "unit_price": 2.0, "category": "mug"}
    ]
    assert cancel["action"] == "cancelled" and cancel["lines"][0]["quantity"] == 2
    assert last["customer_id"] == "555"
    assert_valid(events)


def test_online_retail_splits_orders_over_500_lines(tmp_path: Path) -> None:
    rows = [RETAIL_HEADER] + [
        f"2001,P{n},THING,1,2011-01-02 10:00:00,1.00,1.0,UK" for n in range(1203)
    ]
    events, _ = split(read_events(write(tmp_path / "big.csv", rows), "online-retail"))
    assert [len(e["lines"]) for e in events] == [500, 500, 203]
    assert [e["order_id"] for e in events] == ["2001", "2001#2", "2001#3"]
    assert len({e["event_id"] for e in events}) == 3
    assert sum(e["total"] for e in events) == 1203.0


def test_retail_category_picks_a_product_noun() -> None:
    assert retail_category("JUMBO BAG RED RETROSPOT") == "bag"
    assert retail_category("SET OF 3 CAKE TINS PANTRY DESIGN") == "tin"
    assert retail_category("LUNCH BOXES") == "box"
    assert retail_category("POSTAGE") == "postage"
    assert retail_category("") is None


# --------------------------------------------------------------------------- small files: csv


def test_column_mapping_from_spec() -> None:
    spec = (
        "customer=user_id,product=item,type=action,time=ts,price=amount,category=cat,"
        "types=view:view;addtocart:cart_add;transaction:purchase"
    )
    mapping = ColumnMapping.from_spec(spec)
    assert mapping.customer == "user_id" and mapping.product == "item"
    assert mapping.event_type == "action" and mapping.time == "ts"
    assert mapping.price == "amount" and mapping.category == "cat"
    assert mapping.time_format == "iso" and mapping.anonymous is None
    assert mapping.type_map == {"view": "view", "addtocart": "cart_add", "transaction": "purchase"}
    default = ColumnMapping.from_spec("anonymous=a,product=p,type=t,time=ts,price=x")
    targets = ("view", "cart_add", "cart_remove", "purchase", "favourite")
    assert default.type_map == {t: t for t in targets}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("customer=u,product=p,type=t,price=x", "time"),
        ("customer=u,type=t,time=ts", "product"),
        ("customer=u,product=p,time=ts,header=u;p;ts", "type"),
        ("customer=u,product=p,type=t,time=ts,header=u;p;t", "header names no column ts"),
        ("product=p,type=t,time=ts,price=x", "customer or an anonymous"),
        ("customer=u,product=p,type=t,time=ts,price=x,colour=c", "unknown mapping key"),
        ("customer=u,customer=v,product=p,type=t,time=ts,price=x", "twice"),
        ("customer=u,product=p,type=t,time=ts,price=x,types=a:buy", "not one of"),
        ("customer=u,product=p,type=t,time=ts,price=x,timefmt=yesterday", "time format"),
        ("customer,product=p,type=t,time=ts,price=x", "key=value"),
    ],
)
def test_column_mapping_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnMapping.from_spec(spec)


def test_csv_mapping_reads_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ts", "user_id", "device", "action", "item", "amount", "cat", "qty", "sess"])
    base = 1_700_000_000_000
    writer.writerows(
        [
            [base, "", "d1", "view", "p1", "10.5", "home/kitchen", "", "s1"],  # 2
            [base + 60_000, "", "d1", "addtocart", "p1", "10.5", "home/kitchen", "2", "s1"],
            [base + 90_000, "u1", "d1", "transaction", "p1", "10.5", "home/kitchen", "2", "s1"],
            [base + 95_000, "u1", "d1", "transaction", "p2", "3", "", "1", "s1"],  # 5
            [base + 99_000, "u1", "d1", "wishlist", "p2", "3", "", "1", "s1"],  # 6: unmapped
            [base + 120_000, "u1", "d1", "removefromcart", "p3", "1", "", "1", "s1"],  # 7
            [base + 130_000, "", "", "view", "", "1", "", "", "s9"],  # 8: no product
        ]
    )
    path.write_text(out.getvalue(), encoding="utf-8")
    mapping = ColumnMapping.from_spec(
        "customer=user_id,anonymous=device,product=item,type=action,time=ts,timefmt=epoch_ms,"
        "price=amount,category=cat,quantity=qty,session=sess,prefix=shop,"
        "types=view:view;addtocart:cart_add;transaction:purchase;removefromcart:cart_remove"
    )
    events, rejections = split(read_events(path, "csv", mapping=mapping))
    assert [r.line for r in rejections] == [6, 8]
    assert [(e["type"], e["event_id"]) for e in events] == [
        ("page_view", "shop-L2"),
        ("cart", "shop-L3"),
        ("order", "shop-L4"),
        ("cart", "shop-L7"),
    ]
    view, add, order, remove = events
    assert view["anonymous_id"] == "d1" and "customer_id" not in view
    assert view["occurred_at"] == "2023-11-14T22:13:20+00:00"
    assert view["category"] == "home/kitchen" and view["price"] == 10.5
    assert add["quantity"] == 2 and add["action"] == "add"
    assert order["customer_id"] == "u1" and order["order_id"] == "shop-s1-1"
    assert [(line["product_id"], line["quantity"]) for line in order["lines"]] == [
        ("p1", 2),
        ("p2", 1),
    ]
    assert order["lines"][1]["category"] == "uncategorized"
    assert order["total"] == 24.0
    assert remove["action"] == "remove"
    assert_valid(events)


def test_csv_mapping_groups_by_order_column_and_strptime(tmp_path: Path) -> None:
    path = write(
        tmp_path / "orders.csv",
        [
            "when,who,kind,sku,price,order",
            "02/01/2024 10:00,c1,buy,a,1.0,o-1",
            "02/01/2024 10:00,c2,buy,b,2.0,o-2",
            "02/01/2024 10:01,c1,buy,c,3.0,o-1",
        ],
    )
    mapping = ColumnMapping.from_spec(
        "customer=who,product=sku,type=kind,time=when,timefmt=%d/%m/%Y %H:%M,price=price,"
        "order=order,types=buy:purchase"
    )
    events, rejections = split(read_events(path, "csv", mapping=mapping))
    assert rejections == []
    assert [(e["order_id"], len(e["lines"])) for e in events] == [("o-2", 1), ("o-1", 2)]
    assert events[1]["occurred_at"] == "2024-01-02T10:01:00+00:00"


# --------------------------------------------------------------------------- helpers and errors


def test_sort_key_parses_rfc3339() -> None:
    assert sort_key({"occurred_at": "2026-11-02T09:00:00+08:00"}) == sort_key(
        {"occurred_at": "2026-11-02T01:00:00Z"}
    )
    assert sort_key({"occurred_at": "1970-01-01T00:00:01.5+00:00"}) == 1.5
    assert sort_key({}) == math.inf
    assert sort_key({"occurred_at": "yesterday"}) == math.inf


def test_read_events_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    assert FORMATS == ("jsonl", "rees46", "online-retail", "csv")
    with pytest.raises(ValueError, match="unknown format"):
        read_events(path, "parquet")
    with pytest.raises(ValueError, match="mapping"):
        read_events(path, "csv")
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "missing.csv", "rees46")
