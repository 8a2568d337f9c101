"""The csv column mapping without a price column, favourites, and headerless behaviour logs."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey import customer as core
from journey.config import JourneyConfig
from journey.customer import CustomerState
from replay.adapters import AdapterRejection, ColumnMapping, read_events, sort_key
from schemas.contracts import Rejection, decode
from schemas.records import CartChange, CustomerEvent, PageView

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# a Taobao user-behaviour style log: no header, no price; behaviours pv, cart, fav, buy
BEHAVIOUR_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
BEHAVIOUR_SPEC = (
    "customer=user_id,product=item_id,category=category_id,type=behavior_type,time=timestamp,"
    "timefmt=epoch,prefix=tb,header=user_id;item_id;category_id;behavior_type;timestamp,"
    "types=pv:view;cart:cart_add;fav:favourite;buy:purchase"
)
EARLIEST = 946684800  # the contract's earliest event time (2000-01-01)


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    """A small file for one test."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def decoded(item: dict[str, Any]) -> CustomerEvent:
    """An adapter's wire dict through the pipeline's decoder (it must be valid)."""
    event = decode(orjson.dumps(item), sort_key(item) + 60.0)
    assert not isinstance(event, Rejection), (event, item)
    assert isinstance(event, PageView | CartChange), event
    return event


def test_mapping_without_a_price_column() -> None:
    mapping = ColumnMapping.from_spec("customer=u,product=p,type=t,time=ts")
    assert mapping.price is None and mapping.header is None
    assert "price" not in mapping.columns()


def test_header_key_names_the_columns_of_a_headerless_file() -> None:
    mapping = ColumnMapping.from_spec(BEHAVIOUR_SPEC)
    assert mapping.header == BEHAVIOUR_COLUMNS
    assert mapping.type_map == {
        "pv": "view",
        "cart": "cart_add",
        "fav": "favourite",
        "buy": "purchase",
    }


def test_headerless_behaviour_log_maps_to_priceless_events(tmp_path: Path) -> None:
    # user 7: views two items, favourites one, carts it, buys it; user 8: one view
    path = write(
        tmp_path,
        "7,100,55,pv,1511658000\n"
        "7,101,55,pv,1511658060\n"
        "7,100,55,fav,1511658120\n"
        "7,100,55,cart,1511658180\n"
        "7,100,55,buy,1511658240\n"
        "8,200,56,pv,1511658300\n",
    )
    items = list(read_events(path, "csv", mapping=ColumnMapping.from_spec(BEHAVIOUR_SPEC)))
    [buy] = [i for i in items if isinstance(i, AdapterRejection)]
    assert buy.line == 5 and buy.raw == b"7,100,55,buy,1511658240"
    assert buy.message == "purchase row without a price: map a price column"
    events = [i for i in items if not isinstance(i, AdapterRejection)]
    assert [e["event_id"] for e in events] == ["tb-L1", "tb-L2", "tb-L3", "tb-L4", "tb-L6"]
    assert events[0] == {
        "type": "page_view",
        "version": "1-0-1",
        "event_id": "tb-L1",
        "occurred_at": "2017-11-26T01:00:00+00:00",
        "customer_id": "7",
        "product_id": "100",
        "category": "55",
    }
    assert events[2]["action"] == "favourite" and "price" not in events[2]
    assert events[3] == {
        "type": "cart",
        "event_id": "tb-L4",
        "occurred_at": "2017-11-26T01:03:00+00:00",
        "customer_id": "7",
        "action": "add",
        "product_id": "100",
        "quantity": 1,
        "category": "55",
    }
    typed = [decoded(e) for e in events]
    assert [(type(e).__name__, e.price, getattr(e, "action", None)) for e in typed] == [
        ("PageView", None, "view"),
        ("PageView", None, "view"),
        ("PageView", None, "favourite"),
        ("CartChange", None, "add"),
        ("PageView", None, "view"),
    ]


def test_a_priced_mapping_keeps_version_1_0_0_and_marks_favourites(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "u,p,t,ts,amount\nu1,p1,view,2026-11-02T10:00:00Z,9.5\n"
        "u1,p1,fav,2026-11-02T10:01:00Z,9.5\n",
    )
    mapping = ColumnMapping.from_spec(
        "customer=u,product=p,type=t,time=ts,price=amount,types=view:view;fav:favourite"
    )
    first, second = read_events(path, "csv", mapping=mapping)
    assert isinstance(first, dict) and "version" not in first and first["price"] == 9.5
    assert isinstance(second, dict) and second["version"] == "1-0-1"
    assert second["action"] == "favourite" and second["price"] == 9.5
    fav = decoded(second)
    assert isinstance(fav, PageView) and fav.is_favourite and fav.price == 9.5


def test_a_mapped_price_column_still_rejects_an_empty_price(tmp_path: Path) -> None:
    path = write(tmp_path, "u,p,t,ts,amount\nu1,p1,view,2026-11-02T10:00:00Z,\n")
    mapping = ColumnMapping.from_spec("customer=u,product=p,type=t,time=ts,price=amount")
    [item] = read_events(path, "csv", mapping=mapping)
    assert isinstance(item, AdapterRejection) and "unparsable price" in item.message


# ----------------------------------------------------------------------- real behaviour logs


def behaviour_log() -> Path:
    """A Taobao user-behaviour style file in ../shared/data, or skip saying what is missing."""
    found = sorted(
        p
        for p in (SHARED_DATA.iterdir() if SHARED_DATA.is_dir() else ())
        if any(word in p.name.lower() for word in ("userbehavior", "user_behavior", "taobao"))
    )
    if not found:
        pytest.skip(
            f"no Taobao-style user-behaviour log (user,item,category,behaviour,time without a "
            f"header or a price; file name with 'UserBehavior' or 'taobao') in {SHARED_DATA}: "
            "../shared/data/README.md lists none"
        )
    return found[0]


def first_rows(path: Path, n: int) -> list[list[str]]:
    """The first `n` rows of a (possibly gzipped) csv, read with the csv module."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return list(itertools.islice(csv.reader(io.StringIO(raw.decode("utf-8"))), n))


@pytest.mark.shared_data
def test_real_behaviour_log_through_the_adapter_and_the_core(tmp_path: Path) -> None:
    rows = first_rows(behaviour_log(), 3000)
    rows = [r for r in rows if len(r) == 5 and r[4].isdigit() and int(r[4]) >= EARLIEST]
    sample = write(tmp_path, "".join(",".join(r) + "\n" for r in rows))
    expected = Counter(r[3] for r in rows)
    items = list(read_events(sample, "csv", mapping=ColumnMapping.from_spec(BEHAVIOUR_SPEC)))
    rejected = [i for i in items if isinstance(i, AdapterRejection)]
    events = [decoded(i) for i in items if not isinstance(i, AdapterRejection)]
    assert len(rejected) == expected["buy"]
    views = [e for e in events if isinstance(e, PageView)]
    assert sum(not e.is_favourite for e in views) == expected["pv"]
    assert sum(e.is_favourite for e in views) == expected["fav"]
    assert sum(isinstance(e, CartChange) for e in events) == expected["cart"]
    assert all(e.price is None for e in events)
    seeded_by_row = {r[0] for r in rows if r[3] in ("fav", "cart")}
    states: dict[str, CustomerState] = {}
    cfg = JourneyConfig()
    for event in sorted(events, key=lambda e: e.occurred_at):
        key = f"c:{event.customer_id}"
        state, _ = core.apply(states.get(key), event, event.occurred_at, cfg, key=key)
        states[key] = state
    for user in seeded_by_row:
        journey = states[f"c:{user}"].journey
        assert journey is not None and journey.stage == "seed", user
