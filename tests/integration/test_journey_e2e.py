"""One visitor's whole journey through the real broker, then SIGKILL and restore.

An anonymous visitor browses (session 1), leaves, comes back more than 30 minutes later
(session 2), logs in, buys and buys again. Each step is sent once the previous one has been
processed (as a person's clicks are seconds apart), so the expected records follow from the
rules alone: touch -> seed -> purchase -> repurchase, new_visitor -> returning_visitor ->
customer, paths touch→seed→purchase then repurchase, and one profile under the customer id
holding the anonymous views. The worker is then SIGKILLed; a worker on the same state directory
and one restoring from the changelog only must serve the identical profile.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker
T0 = time.time() - 3 * 3600  # event times: the last three hours (live clock)
ANON, CUST = "anon-e2e-7", "cust-e2e-7"


def at(offset_s: float) -> str:
    return datetime.fromtimestamp(T0 + offset_s, UTC).isoformat()


def view(eid: str, offset_s: float, product: str, category: str, session: str) -> dict[str, Any]:
    return {
        "type": "page_view",
        "event_id": eid,
        "occurred_at": at(offset_s),
        "anonymous_id": ANON,
        "session_id": session,
        "product_id": product,
        "category": category,
        "price": 35.0,
    }


def order(eid: str, offset_s: float, order_id: str, total: float) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": eid,
        "occurred_at": at(offset_s),
        "anonymous_id": ANON,  # still on the device, now logged in
        "customer_id": CUST,
        "session_id": "s2",
        "action": "placed",
        "order_id": order_id,
        "lines": [{"product_id": "shoe-2", "quantity": 1, "unit_price": total}],
        "total": total,
    }


SESSION_1 = [
    view("e2e-v1", 0, "shoe-1", "fashion/shoes", "s1"),
    view("e2e-v2", 120, "hat-1", "fashion/hats", "s1"),
]
SESSION_2 = [view("e2e-v3", 2 * 3600, "shoe-2", "fashion/shoes", "s2")]  # 2 h later
LOGIN = {
    "type": "identity_link",
    "event_id": "e2e-login",
    "occurred_at": at(2 * 3600 + 60),
    "anonymous_id": ANON,
    "customer_id": CUST,
    "session_id": "s2",
    "reason": "login",
}
ORDERS = [
    order("e2e-o1", 2 * 3600 + 300, "ord-1", 35.0),
    order("e2e-o2", 2 * 3600 + 900, "ord-2", 70.0),
]

A, C = f"a:{ANON}", f"c:{CUST}"
# (customer key, kind, from, to, trigger, path, event id); from/to are segments for "segment"
EXPECTED = [
    (A, "stage", None, "touch", "first_contact", None, "e2e-v1"),
    (A, "segment", None, "new_visitor", "first_contact", None, "e2e-v1"),
    (A, "stage", "touch", "seed", "return_visit", None, "e2e-v3"),
    (A, "segment", "new_visitor", "returning_visitor", "return_visit", None, "e2e-v3"),
    # the login merges the anonymous history into the customer key (One ID)
    (C, "stage", None, "seed", "identity_merge", None, "e2e-login"),
    (C, "segment", None, "returning_visitor", "identity_merge", None, "e2e-login"),
    (C, "stage", "seed", "purchase", "order_placed", None, "e2e-o1"),
    (C, "purchase", "seed", "purchase", "order_placed", "touch→seed→purchase", "e2e-o1"),
    (C, "segment", "returning_visitor", "customer", "order_placed", None, "e2e-o1"),
    (C, "stage", "purchase", "repurchase", "order_placed", None, "e2e-o2"),
    (C, "purchase", "purchase", "repurchase", "order_placed", "repurchase", "e2e-o2"),
]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return {"status": err.code}


def send_and_wait(d: Any, events: list[dict[str, Any]]) -> None:
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))


def poll(url: str, ok: Any, timeout: float = 20.0) -> Any:
    """GET url until ok(body) holds (the internal topic adds a hop); return the last body."""
    deadline = time.monotonic() + timeout
    while True:
        body = get_json(url)
        if ok(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def row(r: dict[str, Any]) -> tuple[Any, ...]:
    segment = r["kind"] == "segment"
    return (
        r["customer_key"],
        r["kind"],
        r["from_segment" if segment else "from_stage"],
        r["to_segment" if segment else "to_stage"],
        r["trigger"],
        r["path"],
        r["event_id"],
    )


def served(worker: Any) -> tuple[Any, Any]:
    """The customer's and the anonymous id's profiles as the worker serves them."""
    customer = get_json(f"{worker.base_url}/customers/{CUST}")
    anonymous = get_json(f"{worker.base_url}/customers/{ANON}?anonymous=1")
    return customer, anonymous


def test_anonymous_visit_login_purchases_and_restore(deployment: Any) -> None:
    d = deployment(partitions=4)
    worker = d.start_worker()
    customer_url = f"{worker.base_url}/customers/{CUST}"

    send_and_wait(d, SESSION_1 + SESSION_2)  # one key, one topic: kept in order
    send_and_wait(d, [LOGIN])
    merged = poll(customer_url, lambda b: ANON in ((b.get("identity") or {}).get("merged") or []))
    assert merged.get("journey") and merged["journey"]["views"] == 3, merged
    send_and_wait(d, ORDERS)
    profile = poll(customer_url, lambda b: (b.get("journey") or {}).get("orders_placed") == 2)

    records = asyncio.run(read_topics(d.bootstrap, [d.names(topics.TRANSITIONS)]))
    assert Counter(row(r) for r in records) == Counter(EXPECTED)
    assert len({r["id"] for r in records}) == len(records)
    # the stage and segment sequences, read across both keys in time order
    ordered = sorted(records, key=lambda r: (r["occurred_at"], r["kind"] != "stage"))
    stages = [
        r["to_stage"] for r in ordered if r["kind"] == "stage" and r["trigger"] != "identity_merge"
    ]
    segments = [
        r["to_segment"]
        for r in ordered
        if r["kind"] == "segment" and r["trigger"] != "identity_merge"
    ]
    assert stages == ["touch", "seed", "purchase", "repurchase"]
    assert segments == ["new_visitor", "returning_visitor", "customer"]
    assert [r["path"] for r in ordered if r["kind"] == "purchase"] == [
        "touch→seed→purchase",
        "repurchase",
    ]

    # one profile under the customer id, holding the views made before the login
    journey = profile["journey"]
    assert profile["customer_key"] == C
    assert journey["stage"] == "repurchase" and journey["segment"] == "customer"
    assert journey["sessions"] == 2
    assert journey["views"] == 3
    assert journey["views_by_category"] == {"fashion/shoes": 2, "fashion/hats": 1}
    assert set(journey["recent_views"]) == {"shoe-1", "hat-1", "shoe-2"}
    assert journey["orders"] == 2 and journey["total_spend"] == 105.0
    assert list(journey["recent_orders"]) == ["ord-1", "ord-2"]
    assert journey["anonymous_id"] == ANON
    assert profile["identity"]["merged"] == [ANON]
    assert journey["first_seen"] == datetime.fromisoformat(SESSION_1[0]["occurred_at"]).timestamp()
    before = served(worker)
    assert before[1]["identity"]["alias_of"] == C and before[1]["journey"] is None

    # SIGKILL, then the same state directory: the identical profile
    time.sleep(1.5)  # the last table write reaches its changelog (producer linger, commit)
    worker.kill()
    same_dir = d.start_worker(index=0)
    assert served(same_dir) == before
    same_dir.stop()
    # a fresh state directory: restored from the changelog alone
    assert not (d.tmp / "state-5").exists()
    fresh = d.start_worker(index=5)
    assert served(fresh) == before

    # nothing was re-emitted by the restarts (or only identical records, by id)
    again = asyncio.run(read_topics(d.bootstrap, [d.names(topics.TRANSITIONS)]))
    assert {r["id"] for r in again} == {r["id"] for r in records}
    first = {r["id"]: r for r in records}
    assert all(r == first[r["id"]] for r in again)
