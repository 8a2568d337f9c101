"""Benchmark inputs: REES46-shaped events scaled to N events and C customers, or synthetic.

`rees46_events(n, customers)` reads ``../shared/data/rees46-2019-Oct-first-17k.csv`` through
`replay.adapters.read_events` (page views, cart changes and grouped orders, about 98% page
views) and repeats it: copy k has its times shifted by k x the sample's span, and its session,
event and order ids suffixed, so the copies follow each other in time. The source users of all
copies are numbered in order of first appearance and mapped round-robin onto `customers`
customer ids, so each customer gets the streams of several source users at different times
(return visits). When the sample is absent, `synthetic_events` makes page views of the same
shape from a seeded generator and the result says so.

`first_touch_events(n)` makes page views of `n` distinct new customers (each yields a
journey transition): the latency and memory-scaling workloads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.adapters import AdapterRejection, read_events, sort_key

REPO = Path(__file__).resolve().parents[1]
REES46_SAMPLE = REPO.parent / "shared" / "data" / "rees46-2019-Oct-first-17k.csv"
CUSTOMER_ID_BASE = 700_000_000


@dataclass
class Workload:
    """Events in produce order, and how they were made."""

    events: list[dict[str, Any]]
    source: str
    customers: int
    note: str = ""

    def type_counts(self) -> dict[str, int]:
        """Events per wire type."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
        return counts


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def load_sample(path: Path = REES46_SAMPLE) -> list[dict[str, Any]]:
    """The sample's events sorted by time (the one malformed row is dropped)."""
    events = [e for e in read_events(path, "rees46") if not isinstance(e, AdapterRejection)]
    events.sort(key=sort_key)
    return events


def rees46_events(n: int, customers: int, path: Path = REES46_SAMPLE) -> Workload:
    """N REES46-shaped events over (at most) `customers` customers; synthetic when absent."""
    if not path.exists():
        work = synthetic_events(n, customers)
        work.note = f"{path} not found: synthetic page views instead of the REES46 sample"
        return work
    sample = load_sample(path)
    times = [sort_key(e) for e in sample]
    span = times[-1] - times[0] + 1.0
    number: dict[tuple[int, str], int] = {}
    out: list[dict[str, Any]] = []
    copy = 0
    while len(out) < n:
        shift = copy * span
        for event, ts in zip(sample, times, strict=True):
            if len(out) >= n:
                break
            source_user = (copy, str(event.get("customer_id")))
            index = number.setdefault(source_user, len(number))
            e = dict(event)
            e["customer_id"] = str(CUSTOMER_ID_BASE + index % customers)
            e["occurred_at"] = _iso(ts + shift)
            suffix = f"-k{copy}"
            e["event_id"] = f"{e['event_id']}{suffix}"
            if e.get("session_id"):
                e["session_id"] = f"{e['session_id']}{suffix}"
            if e.get("order_id"):
                e["order_id"] = f"{e['order_id']}{suffix}"
            out.append(e)
        copy += 1
    distinct = min(customers, len(number))
    return Workload(out, f"REES46 sample x{copy} ({path.name})", distinct)


CATEGORIES = [
    "electronics.smartphone",
    "appliances.kitchen.washer",
    "computers.notebook",
    "furniture.living_room.sofa",
    "apparel.shoes",
    "kids.toys",
    "sport.bicycle",
    "auto.accessories.player",
]


def synthetic_events(n: int, customers: int, seed: int = 46) -> Workload:
    """Page views of the REES46 shape from a seeded generator (fallback without the sample)."""
    rng = random.Random(seed)
    start = 1_569_888_000.0  # 2019-10-01T00:00:00Z, like the sample
    out: list[dict[str, Any]] = []
    for i in range(n):
        cust = rng.randrange(customers)
        category = rng.choice(CATEGORIES)
        out.append(
            {
                "type": "page_view",
                "event_id": f"synthetic-{i}",
                "occurred_at": _iso(start + i * 0.5),
                "customer_id": str(CUSTOMER_ID_BASE + cust),
                "session_id": f"s-{cust}-{i // 5000}",
                "product_id": str(1_000_000 + rng.randrange(6500)),
                "category": category,
                "price": round(rng.uniform(5, 900), 2),
            }
        )
    return Workload(out, "synthetic page views", min(customers, n))


def first_touch_event(i: int, occurred_at: float, run: str) -> dict[str, Any]:
    """A page view of a brand-new customer (its first touch yields a journey transition)."""
    return {
        "type": "page_view",
        "event_id": f"bench-{run}-{i}",
        "occurred_at": _iso(occurred_at),
        "customer_id": f"new-{run}-{i}",
        "session_id": f"s-{run}-{i}",
        "product_id": str(1_000_000 + i % 6500),
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price": 10.0 + i % 500,
    }


def first_touch_events(n: int, run: str, start: float = 1_569_888_000.0) -> Workload:
    """N page views, each the first touch of a new customer, one per 10 ms of event time."""
    events = [first_touch_event(i, start + i * 0.01, run) for i in range(n)]
    return Workload(events, "first touches of new customers (synthetic)", n)
