"""Audiences through a real worker (`/audience`) and the command line (`journeystream audience`).

Sixty customers `u00`..`u59`, each visiting once at B + i minutes; by construction (i mod 4):
0 places an order 30 s after the visit, 1 adds to the cart 10 s after it and never orders (the
cart is abandoned at + 10 s + the cart delay), 2 comes back three hours later, 3 only visits.
Every fifth customer (i mod 5 == 0) also adds a product to the favourites 5 s after the visit.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from harness.applied import wait_applied, wait_settled
from harness.cli import main
from harness.process import produce, send_flush
from streams import topics

pytestmark = pytest.mark.broker
TOKEN = "audience-token"
B = datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
N = 60
CART_DELAY = 3600.0


def at(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def events_of(i: int) -> list[dict[str, Any]]:
    """The customer's events (see the module docstring)."""
    c, t = f"u{i:02d}", B + 60 * i
    base = {"customer_id": c, "product_id": f"p{i % 5}", "category": "home/kitchen"}
    out = [{"type": "page_view", "event_id": f"v-{c}", "occurred_at": at(t), **base, "price": 20.0}]
    if i % 5 == 0:
        fav = {"type": "page_view", "event_id": f"f-{c}", "occurred_at": at(t + 5), **base}
        out.append({**fav, "version": "1-0-1", "price": 20.0, "action": "favourite"})
    if i % 4 == 0:
        out.append(
            {
                "type": "order",
                "event_id": f"o-{c}",
                "occurred_at": at(t + 30),
                "customer_id": c,
                "action": "placed",
                "order_id": f"order-{c}",
                "lines": [{"product_id": f"p{i % 5}", "quantity": 1, "unit_price": 20.0}],
                "total": 20.0,
            }
        )
    elif i % 4 == 1:
        cart = {"type": "cart", "event_id": f"c-{c}", "occurred_at": at(t + 10), **base}
        out.append({**cart, "action": "add", "quantity": 1, "price": 20.0})
    elif i % 4 == 2:
        again = {"type": "page_view", "event_id": f"r-{c}", "occurred_at": at(t + 3 * 3600)}
        out.append({**again, **base, "price": 20.0})
    return out


def key(i: int) -> str:
    return f"c:u{i:02d}"


def expected(rule: Any) -> list[str]:
    return [key(i) for i in range(N) if rule(i)]


def get(url: str, token: str | None = TOKEN) -> tuple[int, bytes, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def audience(worker: Any, **params: Any) -> dict[str, Any]:
    status, body, _ = get(f"{worker.base_url}/audience?{urllib.parse.urlencode(params)}")
    assert status == 200, body[:300]
    return orjson.loads(body)


def keys(worker: Any, **params: Any) -> list[str]:
    return [c["customer_key"] for c in audience(worker, limit=1000, **params)["customers"]]


def test_audiences_on_the_worker_and_from_the_command_line(
    deployment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN, cart_abandon_delay_s=CART_DELAY)
    worker = d.start_worker()
    events = sorted(
        (e for i in range(N) for e in events_of(i)), key=lambda e: (e["occurred_at"], e["event_id"])
    )
    last = asyncio.run(produce(d.bootstrap, d.names, events, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    internal = [TopicPartition(d.names(topics.INTERNAL), p) for p in range(2)]
    flushed = asyncio.run(send_flush(d.bootstrap, internal))  # fire the carts still open
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, flushed, 60))
    asyncio.run(wait_settled(d.bootstrap, d.settings.app_id, internal, 60))

    # the worker: its partitions (both here), behind the token, 400 on bad parameters
    assert get(f"{worker.base_url}/audience", None)[0] == 401
    body = audience(worker)
    assert body["partitions"] == [0, 1] and body["count"] == 60 and body["next"] is None
    assert [c["customer_key"] for c in body["customers"]] == expected(lambda i: True)
    assert keys(worker, segment="customer") == expected(lambda i: i % 4 == 0)
    assert keys(worker, segment="returning_visitor") == expected(lambda i: i % 4 == 2)
    assert keys(worker, segment="new_visitor") == expected(lambda i: i % 4 in (1, 3))
    assert keys(worker, stage="touch") == expected(lambda i: i % 4 == 3 and i % 5 != 0)
    assert keys(worker, tag="favourites") == expected(lambda i: i % 5 == 0)
    # every order's unit price (20) is below the low price band (25): price sensitive
    assert keys(worker, tag="price_sensitive") == expected(lambda i: i % 4 == 0)
    assert keys(worker, bought="true") == expected(lambda i: i % 4 == 0)
    assert keys(worker, bought="false") == expected(lambda i: i % 4 != 0)
    # last seen in [B + 10 min, B + 20 min): customers 10..19 but those who came back later
    window = {"seen_from": at(B + 600), "seen_to": at(B + 1200)}
    assert keys(worker, **window) == expected(lambda i: 10 <= i < 20 and i % 4 != 2)
    # carts abandoned at B + i min + 10 s + 1 h, in [B + 1 h 20 min, B + 1 h 30 min): 21, 25, 29
    carts = {"abandoned_cart_from": at(B + 4800), "abandoned_cart_to": at(B + 5400)}
    assert keys(worker, **carts) == [key(21), key(25), key(29)]
    assert keys(worker, abandoned_cart_from=at(B), bought="false") == expected(lambda i: i % 4 == 1)
    row = audience(worker, after=key(20), limit=1)["customers"][0]
    assert row["customer_key"] == key(21) and row["segment"] == "new_visitor"
    assert row["stage"] == "seed" and row["last_cart_abandoned_at"] == "2026-11-02T11:21:10.000Z"

    # pages: 7 at a time, following `next`, give every customer once
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 7, **({"after": after} if after else {})}
        page = audience(worker, **params)
        seen += [c["customer_key"] for c in page["customers"]]
        after = page["next"]
        if after is None:
            break
    assert seen == expected(lambda i: True)

    # JSON lines and CSV from the worker, the next page in a header
    status, text, headers = get(f"{worker.base_url}/audience?format=csv&bought=true&limit=10")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert [r["customer_key"] for r in csv.DictReader(io.StringIO(text.decode()))] == expected(
        lambda i: i % 4 == 0 and i < 40
    )
    assert headers["Audience-Next"] == urllib.parse.quote(key(36), safe="")
    assert headers["Audience-Partitions"] == "0,1"
    status, text, _ = get(f"{worker.base_url}/audience?format=jsonl&tag=favourites")
    assert [orjson.loads(line)["customer_key"] for line in text.splitlines()] == expected(
        lambda i: i % 5 == 0
    )
    for bad, message in (
        ("segment=vip", b"one of new_visitor, returning_visitor, customer, lapsed"),
        ("limit=0", b"limit must be at least 1"),
        ("limit=5000", b"limit must be at most 1000"),
        ("format=xml", b"format must be one of json, jsonl, csv"),
        ("seen_from=later", b"seen_from must be epoch seconds or an ISO 8601 time"),
        ("bought=true&bought=false", b"more than once"),
    ):
        status, body_, _ = get(f"{worker.base_url}/audience?{bad}")
        assert status == 400 and message in body_, (bad, status, body_)

    # the command line reads every partition of the changelog
    common = ["audience", "--broker", d.bootstrap, "--app-id", d.settings.app_id]
    now = ["--now", at(B + 86400)]
    out = tmp_path / "bought.jsonl"
    assert main([*common, *now, "--bought", "--format", "jsonl", "-o", str(out)]) == 0
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["customer_key"] for r in rows] == expected(lambda i: i % 4 == 0)
    assert {r["segment"] for r in rows} == {"customer"} and rows[0]["revenue"] == 20.0
    out = tmp_path / "carts.csv"
    args = ["--abandoned-cart-from", at(B + 4800), "--abandoned-cart-to", at(B + 5400)]
    assert main([*common, *now, *args, "--not-bought", "--format", "csv", "-o", str(out)]) == 0
    parsed = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["customer_key"] for r in parsed] == [key(21), key(25), key(29)]
    capsys.readouterr()
    assert main([*common, *now, "--segment", "returning_visitor", "-o", "-"]) == 0
    captured = capsys.readouterr()
    printed = [orjson.loads(line)["customer_key"] for line in captured.out.splitlines()]
    assert printed == expected(lambda i: i % 4 == 2)
    assert "15 of 60 customer keys written" in captured.err
    # lapsed 90 days after: every buyer, taken at the given time
    assert main([*common, "--now", at(B + 91 * 86400), "--segment", "lapsed", "-o", "-"]) == 0
    printed = [orjson.loads(line)["customer_key"] for line in capsys.readouterr().out.splitlines()]
    assert printed == expected(lambda i: i % 4 == 0)
    # a changelog that is not there is named, with the likely cause
    assert main(["audience", "--broker", d.bootstrap, "--app-id", "nobody", "-o", "-"]) == 1
    assert "no topic nobody-customers-changelog on the broker" in capsys.readouterr().err


def test_an_audience_across_two_workers_is_the_whole_store(deployment: Any) -> None:
    """Each worker answers for its partitions, asks the other for its part and merges by key."""
    d = deployment(partitions=4, clock="event", api_token=TOKEN, cart_abandon_delay_s=CART_DELAY)
    first, second = d.start_worker(index=0), d.start_worker(index=1)
    events = sorted(
        (e for i in range(N) for e in events_of(i)), key=lambda e: (e["occurred_at"], e["event_id"])
    )
    last = asyncio.run(produce(d.bootstrap, d.names, events, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 90))

    def local(worker: Any) -> dict[str, Any]:
        return audience(worker, scope="local", limit=1000)

    # after the rebalance each worker holds a part: the two parts are the store, without overlap
    for _ in range(60):
        parts = [local(first), local(second)]
        if all(p["partitions"] for p in parts) and sorted(
            parts[0]["partitions"] + parts[1]["partitions"]
        ) == [0, 1, 2, 3]:
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"the workers never split the 4 partitions: {parts}")
    mine = [[c["customer_key"] for c in p["customers"]] for p in parts]
    assert mine[0] and mine[1] and not set(mine[0]) & set(mine[1])
    assert sorted(mine[0] + mine[1]) == expected(lambda i: True)

    for worker in (first, second):
        body = audience(worker, limit=1000)
        assert body["partitions"] == [0, 1, 2, 3]
        assert [c["customer_key"] for c in body["customers"]] == expected(lambda i: True)
        assert keys(worker, segment="customer") == expected(lambda i: i % 4 == 0)
        assert keys(worker, tag="favourites") == expected(lambda i: i % 5 == 0)
        # pages of 7 following `next` give every customer once, whichever worker owns it
        seen: list[str] = []
        after: str | None = None
        while True:
            page = audience(worker, limit=7, **({"after": after} if after else {}))
            assert len(page["customers"]) <= 7
            seen += [c["customer_key"] for c in page["customers"]]
            after = page["next"]
            if after is None:
                break
        assert seen == expected(lambda i: True)
        status, text, headers = get(f"{worker.base_url}/audience?format=csv&bought=true&limit=10")
        assert status == 200 and headers["Audience-Partitions"] == "0,1,2,3"
        assert [r["customer_key"] for r in csv.DictReader(io.StringIO(text.decode()))] == expected(
            lambda i: i % 4 == 0 and i < 40
        )
    assert get(f"{first.base_url}/audience?scope=everything")[0] == 400
