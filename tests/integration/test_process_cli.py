"""`journeystream process` on the sample store day, run as the real console command.

Every expectation is derived here from `schemas/examples/sample.jsonl` itself (the rules of
docs/ARCHITECTURE.md and schemas/README.md applied by hand), never from the command's output.

One ID is involved for two visitors who browse anonymously, log in and buy. With every event
produced at once, a customer's order can be processed before the anonymous history (sent through
the internal topic) is merged; docs/ARCHITECTURE.md accepts that purchase paths then depend on
arrival order, so only for those two customers the path may be either first-order path.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import orjson
import pytest

from schemas.contracts import BLOCKED_IDS, validator_for

pytestmark = pytest.mark.broker
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "schemas" / "examples" / "sample.jsonl"
GAP = 1800.0  # session gap (s)
CART_DELAY = 3600.0  # cart abandonment delay (s)
RECOVERY_WINDOW = 7 * 86400.0
SEED_VIEWS = 3  # views of one category in a session that seed interest
BROWSE_MIN = 3  # distinct products of one category for a browse abandonment
HIGH_ABOVE_MEDIAN = 1.25  # price tiers: "high" above 1.25 x the category's median price
FIRST_PATHS = {"touch→purchase", "touch→seed→purchase"}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def rfc3339_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def usable(value: Any) -> str | None:
    return None if value is None or str(value).strip().lower() in BLOCKED_IDS else str(value)


def key_of(event: dict[str, Any]) -> str:
    cust, anon = usable(event.get("customer_id")), usable(event.get("anonymous_id"))
    if event["type"] == "identity_link" and anon:
        return f"a:{anon}"
    return f"c:{cust}" if cust else f"a:{anon}"


class Story:
    """What the sample day must produce, computed from its events."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.catalog = [e for e in events if e["type"] == "catalog_item"]
        self.events = sorted(
            (e for e in events if e["type"] != "catalog_item"),
            key=lambda e: epoch(e["occurred_at"]),
        )
        # One ID: a person is a customer key plus the anonymous keys first linked to it
        self.person_of: dict[str, str] = {}
        for e in self.events:
            cust, anon = usable(e.get("customer_id")), usable(e.get("anonymous_id"))
            if cust and anon:
                self.person_of.setdefault(f"a:{anon}", f"c:{cust}")
        linked = {e["anonymous_id"] for e in self.events if e["type"] == "identity_link"}
        anonymous_history = {
            usable(e.get("anonymous_id")) for e in self.events if key_of(e)[0] == "a"
        }
        # customers whose journey was partly built under an anonymous key (merge races apply)
        self.merged = {self.person_of[f"a:{a}"] for a in linked & anonymous_history}
        self.by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in self.events:
            self.by_person[self.person(key_of(e))].append(e)

    def person(self, key: str) -> str:
        return self.person_of.get(key, key)

    def placed_orders(self) -> Counter[tuple[str, str, float]]:
        return Counter(
            (e["customer_id"], e["order_id"], e["total"])
            for e in self.events
            if e["type"] == "order" and e["action"] == "placed"
        )

    def journey_records(self, person: str) -> Counter[tuple[Any, ...]]:
        """Stage, segment and purchase records of a person whose events all had one key."""
        out: Counter[tuple[Any, ...]] = Counter()
        stage: str | None = None
        segment: str | None = None
        last = session_id = None
        sessions = orders = 0
        session_views: Counter[str] = Counter()
        cart: Counter[str] = Counter()
        for e in self.by_person[person]:
            t, sid, triggers = epoch(e["occurred_at"]), e.get("session_id"), []
            if e["type"] == "identity_link":
                continue
            if stage is None:
                triggers.append("first_contact")
                sessions, session_id = 1, sid
            elif t - last >= GAP or (sid and session_id and sid != session_id):
                triggers.append("return_visit")
                sessions, session_id = sessions + 1, sid
                session_views.clear()
            last = t
            if e["type"] == "page_view":
                session_views[e["category"]] += 1
                if session_views[e["category"]] == SEED_VIEWS:
                    triggers.append("category_interest")
            elif e["type"] == "cart":
                had = cart[e["product_id"]]
                if e["action"] == "add":
                    cart[e["product_id"]] += e["quantity"]
                elif e["action"] == "set_quantity":
                    cart[e["product_id"]] = e["quantity"]
                else:
                    cart[e["product_id"]] = had - e["quantity"] if e["quantity"] > 0 else 0
                if cart[e["product_id"]] > had:
                    triggers.append("add_to_cart")
            elif e["action"] == "placed":
                triggers.append("order_placed")
                # the path: by the visitor type at the order (bought before, came back, first)
                order_path = (
                    "repurchase"
                    if orders
                    else "touch→seed→purchase"
                    if sessions >= 2
                    else "touch→purchase"
                )
                orders += 1
            for trigger in triggers:
                before = stage
                if trigger == "first_contact":
                    stage = "touch"
                elif trigger in ("return_visit", "add_to_cart", "category_interest"):
                    stage = "seed" if stage == "touch" else stage
                elif trigger == "order_placed":
                    stage = "purchase" if stage in ("touch", "seed") else "repurchase"
                if stage != before:
                    out[(person, "stage", before, stage, trigger, None)] += 1
                if trigger == "order_placed":
                    out[(person, "purchase", before, stage, trigger, order_path)] += 1
            new_segment = (
                "customer" if orders else "returning_visitor" if sessions >= 2 else "new_visitor"
            )
            if new_segment != segment:
                trigger = next(
                    (t for t in ("order_placed", "return_visit", "first_contact") if t in triggers),
                    "activity",
                )
                out[(person, "segment", segment, new_segment, trigger, None)] += 1
                segment = new_segment
        return out

    def abandoned_carts(self) -> list[tuple[str, float, frozenset[str]]]:
        """(person, due, products left) of carts left with lines and no cart activity in the delay.

        journey/cart.py: an order removes the units it bought and leaves the other lines; cart
        activity is a cart change or an order that bought from the cart (an order of other
        products is not). A deadline fires once; only new cart activity schedules again.
        """
        found: list[tuple[str, float, frozenset[str]]] = []
        for person, events in self.by_person.items():
            cart: Counter[str] = Counter()
            last_activity: float | None = None
            for e in events:
                if e["type"] == "identity_link":
                    continue  # not cart or session activity
                t = epoch(e["occurred_at"])
                if cart and last_activity is not None and t >= last_activity + CART_DELAY:
                    found.append((person, last_activity + CART_DELAY, frozenset(cart)))
                    last_activity = None  # fired; only new cart activity schedules again
                if e["type"] == "cart":
                    p, quantity = e["product_id"], e["quantity"]
                    if e["action"] == "remove":
                        cart[p] = cart[p] - quantity if 0 < quantity < cart[p] else 0
                    elif quantity <= 0:
                        cart[p] = 0
                    else:
                        cart[p] = cart[p] + quantity if e["action"] == "add" else quantity
                    cart = +cart
                    last_activity = t if cart else None
                elif e["type"] == "order" and e["action"] == "placed":
                    bought = [ln for ln in e["lines"] if cart[ln["product_id"]] > 0]
                    for line in bought:
                        cart[line["product_id"]] -= line["quantity"]
                    cart = +cart
                    if bought:  # an order that bought nothing from the cart leaves it as it was
                        last_activity = t if cart else None
            if cart and last_activity is not None:
                found.append((person, last_activity + CART_DELAY, frozenset(cart)))
        return found

    def cart_abandonments(self) -> Counter[tuple[str, str]]:
        """(person, due) of every abandoned cart."""
        return Counter((person, rfc3339_ms(due)) for person, due, _ in self.abandoned_carts())

    def recovered(self) -> set[str]:
        """Persons who, within the window after a cart abandonment, ordered one of its products."""
        persons = set()
        for person, at, products in self.abandoned_carts():
            for e in self.by_person[person]:
                placed = e["type"] == "order" and e["action"] == "placed"
                if (
                    placed
                    and at <= epoch(e["occurred_at"]) <= at + RECOVERY_WINDOW
                    and products & {ln["product_id"] for ln in e["lines"]}
                ):
                    persons.add(person)
        return persons

    def browse_abandonments(self) -> list[tuple[str, str, frozenset[str], int]]:
        """(person, category, products, high-priced count) of sessions that qualify."""
        # price tiers: the category's distinct product prices, catalog prices first
        prices: dict[str, dict[str, float]] = defaultdict(dict)
        for item in self.catalog:
            prices["/".join(item["category_path"])][item["product_id"]] = item["price"]
        for e in self.events:
            if e["type"] == "page_view":
                prices[e["category"]].setdefault(e["product_id"], e["price"])
        found = []
        for person, events in self.by_person.items():
            sessions: list[list[dict[str, Any]]] = []
            last = sid = None
            for e in events:
                if e["type"] == "identity_link":
                    continue  # not session activity
                t, s = epoch(e["occurred_at"]), e.get("session_id")
                if not sessions or t - last >= GAP or (s and sid and s != sid):
                    sessions.append([])
                    sid = s
                sid = sid or s
                last = t
                sessions[-1].append(e)
            for session in sessions:
                if any(
                    (e["type"] == "cart" and e["action"] != "remove" and e["quantity"] > 0)
                    or (e["type"] == "order" and e["action"] == "placed")
                    for e in session
                ):
                    continue
                viewed: dict[str, dict[str, float]] = defaultdict(dict)
                for e in session:
                    if e["type"] == "page_view":
                        viewed[e["category"]][e["product_id"]] = e["price"]
                for category, products in viewed.items():
                    if len(products) >= BROWSE_MIN:
                        cut = HIGH_ABOVE_MEDIAN * median(prices[category].values())
                        high = sum(1 for p in products.values() if p > cut)
                        found.append((person, category, frozenset(products), high))
        return found


@pytest.fixture(scope="module")
def processed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("process") / "out.jsonl"
    command = Path(sys.executable).parent / "journeystream"
    run = subprocess.run(
        [
            str(command),
            "process",
            str(SAMPLE),
            "--format",
            "jsonl",
            "--output",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return run, out


def test_process_exits_zero_and_every_record_is_valid(
    processed: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, out = processed
    assert run.returncode == 0, run.stderr
    lines = SAMPLE.read_bytes().splitlines()
    assert f"processed {sum(1 for x in lines if x.strip())} events" in run.stdout
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert records
    for record in records:
        # each record against the schema version it declares (abandonment_recovered is 1-0-1)
        validator_for(record["type"], record["version"])(record)  # raises on a violation
    by_id: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for record in records:
        by_id[(record["type"], record["id"])].add(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
    assert all(len(v) == 1 for v in by_id.values())  # a repeated id is the identical record
    assert not [r for r in records if r["type"] == "dead_letter"]  # the sample is all valid


def test_process_tells_the_sample_story(
    processed: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, out = processed
    assert run.returncode == 0, run.stderr
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    story = Story([orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()])
    transitions = [r for r in records if r["type"] == "journey_transition"]
    purchases = [r for r in transitions if r["kind"] == "purchase"]

    # one purchase record per placed order, for the customer who placed it
    expected_orders = story.placed_orders()
    assert Counter((r["customer_id"], r["order_id"], r["order_value"]) for r in purchases) == (
        expected_orders
    )
    buyers = {cust for cust, _, _ in expected_orders}
    reached_purchase = {
        r["customer_id"]
        for r in transitions
        if r["kind"] == "stage" and r["to_stage"] == "purchase"
    }
    assert reached_purchase == buyers
    assert len({r["customer_id"] for r in purchases if r["path"]}) == len(buyers) == 4
    assert sum(1 for r in purchases if r["path"]) == sum(expected_orders.values())

    # every customer whose events all had one key: exactly the journey the rules give
    for person in sorted(set(story.by_person) - story.merged):
        expected = story.journey_records(person)
        got = Counter(
            (
                r["customer_key"],
                r["kind"],
                r["from_segment" if r["kind"] == "segment" else "from_stage"],
                r["to_segment" if r["kind"] == "segment" else "to_stage"],
                r["trigger"],
                r["path"],
            )
            for r in transitions
            if story.person(r["customer_key"]) == person and r["customer_key"] == person
        )
        assert got == expected, person
    # customers who logged in mid-journey: a first-order path (which one depends on the merge race)
    for r in purchases:
        if r["customer_key"] in story.merged:
            assert r["path"] in FIRST_PATHS

    # the father's evening: three premium strollers viewed, nothing carted -> browse abandoned
    browse = [r for r in records if r["type"] == "browse_abandoned"]
    expected_browse = story.browse_abandonments()
    assert sorted(
        (
            story.person(r["customer_key"]),
            r["category"],
            frozenset(p["product_id"] for p in r["products"]),
            r["high_priced_count"],
        )
        for r in browse
    ) == sorted(expected_browse)
    assert ("c:cust-4410", "baby/strollers") in {(p, c) for p, c, _, _ in expected_browse}
    father = next(r for r in browse if r["customer_key"] == "c:cust-4410")
    assert father["distinct_products"] == 3 and father["high_priced_count"] == 3

    # carts left with lines and no order within an hour, by person (One ID) and deadline;
    # a visitor who logs in and buys what their anonymous cart held has no abandoned cart
    carts = Counter(
        (story.person(r["customer_key"]), r["occurred_at"])
        for r in records
        if r["type"] == "cart_abandoned"
    )
    assert carts == story.cart_abandonments()
    recovered = Counter(
        story.person(r["customer_key"]) for r in records if r["type"] == "abandonment_recovered"
    )
    expected_recovered = story.recovered()
    assert set(recovered) <= expected_recovered and max(recovered.values(), default=1) == 1
    assert expected_recovered - story.merged <= set(recovered)  # no race for the others


def test_process_timeout_says_how_far_it_got(tmp_path: Path) -> None:
    # 0.5 s cannot be enough: after the inputs are applied, the internal topic must be seen
    # settled three times 0.3 s apart (harness.applied.wait_settled) before the flush phase
    rows = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    customer_events = sum(1 for e in rows if e["type"] != "catalog_item")
    command = Path(sys.executable).parent / "journeystream"
    run = subprocess.run(
        [
            *(str(command), "process", str(SAMPLE), "-o", str(tmp_path / "out.jsonl")),
            *("--timeout", "0.5", "--progress"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 1, run.stderr
    err = run.stderr
    assert "Error: gave up after 0.5 s (--timeout) waiting for the workers" in err
    assert "phase 'processed'" in err
    assert f" of {customer_events} events applied" in err
    assert f"read {len(rows)} rows (0 not converted), produced {len(rows)} events" in err
    assert "journeystream process: logs kept in " in err
    # the bars of the phases it went through (tqdm on stderr, asked for with --progress)
    assert "produce    : 100%" in err and f"{len(rows)}/{len(rows)}" in err
    assert "read       : " in err and "processed  : " in err
    assert not (tmp_path / "out.jsonl").exists()
