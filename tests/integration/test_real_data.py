"""Real shop exports through `process_file` (adapter -> broker -> worker -> outputs).

The expectations are computed here from the raw files with the csv module, following the
documented rules (replay/README.md for orders, journey/stages.py for sessions and paths,
journey/cart.py and journey/abandonment.py for carts), independently of the adapters and the
pipeline.

- REES46, 2019-10-01 00:00-02:50 (17,435 rows): the truncated last line is the one adapter dead
  letter; purchase records = orders (purchase rows grouped per session); buyers reach `purchase`;
  purchase paths; abandoned carts.
- UCI Online Retail: placed orders = purchase records, cancellations never count, guest invoices
  are orders of their own anonymous key. Only the first RETAIL_INVOICES invoices are played
  (2010-12-01 to 12-23, 41,621 rows, ~1,600 order events, 13 of them parts of invoices over 500
  lines): the whole file (320,705 rows, ~15,500 orders) takes over 3 minutes, nearly all of it
  the worker's co-purchase counting (recommend/copurchase.py, ~165 s of CPU for its orders).
"""

from __future__ import annotations

import base64
import csv
import gzip
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.process_run import process_file
from tests.conftest import shared_file

pytestmark = [pytest.mark.broker, pytest.mark.shared_data]
REES46 = "rees46-2019-Oct-first-17k.csv"
RETAIL = "online-retail-2010-12-to-2011-08.csv.gz"
ORDER_GAP = 300.0  # purchase rows more than 5 minutes apart start a new order
SESSION_GAP = 1800.0
SEED_VIEWS = 3
CART_DELAY = 3600.0
MAX_LINES = 500
RETAIL_INVOICES = 2000


def run(path: Path, fmt: str, out: Path, bootstrap: str) -> list[dict[str, Any]]:
    summary = process_file(path, fmt=fmt, output=out, bootstrap=bootstrap, progress=False)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sum(summary.outputs.values()) == len(records)
    return records


# ------------------------------------------------------------------------------------- REES46


def rees46_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp()


class Rees46:
    """The REES46 slice read with the csv module: rows, orders and per-user event sequences."""

    def __init__(self, path: Path) -> None:
        self.bad_lines: list[int] = []
        rows: list[tuple[int, list[str]]] = []
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            assert header[:2] == ["event_time", "event_type"]
            for row in reader:
                if len(row) != len(header):
                    self.bad_lines.append(reader.line_num)
                else:
                    rows.append((reader.line_num, row))
        self.physical_lines = path.read_bytes().splitlines()
        self.buyers = {row[7] for _, row in rows if row[1] == "purchase"}
        # Events in the order the pipeline gets them: an order is complete (and emitted) at the
        # row that closes it -- its session's next non-purchase row, or the first row more than
        # 5 minutes after its last purchase row, or the end -- then everything is stably sorted
        # by time. A customer's events stay in that order (one key, one partition).
        emitted: list[tuple[float, int, str, str, dict[str, Any]]] = []
        open_orders: dict[str, dict[str, Any]] = {}

        def close(sessions: list[str]) -> None:
            done = sorted(
                (open_orders.pop(s) for s in sessions), key=lambda o: (o["t"], o["first"])
            )
            for o in done:
                emitted.append((o["t"], len(emitted), o["user"], "order", o))

        for line, row in rows:
            t, kind, user, session = rees46_time(row[0]), row[1], row[7], row[8]
            close([s for s, o in open_orders.items() if t - o["t"] > ORDER_GAP])
            if kind == "purchase":
                o = open_orders.setdefault(
                    session, {"user": user, "t": t, "first": line, "session": session}
                )
                o["t"] = max(o["t"], t)
                o.setdefault("products", []).append(row[2])
                continue
            if session in open_orders:
                close([session])
            category = row[4] or (f"cat-{row[3]}" if row[3] else "uncategorized")
            data = {"session": session, "product": row[2], "category": category, "line": line}
            emitted.append((t, len(emitted), user, kind, data))
        close(list(open_orders))
        emitted.sort(key=lambda e: (e[0], e[1]))
        self.orders = [e for e in emitted if e[3] == "order"]
        self.by_user: dict[str, list[tuple[float, str, dict[str, Any]]]] = defaultdict(list)
        for t, _, user, kind, data in emitted:
            self.by_user[user].append((t, kind, data))

    def paths(self) -> Counter[str]:
        """Purchase path of every order, by the visitor type at the order (the seed's rules).

        A buyer who bought before: `repurchase`; else one in a second session or later (a gap
        of SESSION_GAP or a new session id): `touch→seed→purchase`; else `touch→purchase`.
        """
        paths: Counter[str] = Counter()
        for events in self.by_user.values():
            sessions = 0
            orders = 0
            last = 0.0
            session: str | None = None
            for t, kind, data in events:
                if sessions == 0 or t - last >= SESSION_GAP or data["session"] != session:
                    sessions += 1
                    session = data["session"]
                last = t
                if kind == "order":
                    if orders:
                        paths["repurchase"] += 1
                    elif sessions >= 2:
                        paths["touch→seed→purchase"] += 1
                    else:
                        paths["touch→purchase"] += 1
                    orders += 1
        return paths

    def first_order_in_first_session(self) -> int:
        """Orders that were the user's first, placed in the user's first session."""
        count = 0
        for events in self.by_user.values():
            last, session, sessions = 0.0, None, 0
            for t, kind, data in events:
                if sessions == 0 or t - last >= SESSION_GAP or data["session"] != session:
                    sessions += 1
                    session = data["session"]
                last = t
                if kind == "order":
                    count += sessions == 1
                    break
        return count

    def cart_abandonments(self) -> Counter[tuple[str, float, frozenset[str]]]:
        """(user, deadline, products left) of every abandoned cart, by the spec (not the code).

        - The cart is the set of products carted and not removed since: REES46 has no
          quantities, a `cart` row puts its product in the cart (carting it again changes
          nothing), a `remove_from_cart` row takes it out.
        - An order removes the products it bought from the cart and leaves the others.
        - A `cart` row at or before the latest purchase of its product does not put it back
          (journey/cart.py: an add processed after the order that bought it).
        - Cart activity (journey/cart.py `last_activity`: the latest change applied, a cart
          change or an order that bought from it): every other `cart` or `remove_from_cart`
          row, and an order that bought at least one product of the cart -- so a partial order
          restarts the delay for the products it left. An order that bought nothing from the
          cart is not cart activity.
        - A cart with products and no cart activity for CART_DELAY is abandoned once: the
          deadline passes at the user's first event at or after it (before that event counts)
          or at the end of the file; only new cart activity sets a new one. A cart that
          empties has none.
        """
        found: Counter[tuple[str, float, frozenset[str]]] = Counter()
        for user, events in self.by_user.items():
            cart: set[str] = set()
            bought: dict[str, float] = {}  # product -> time of its latest purchase
            due: float | None = None  # last cart activity + CART_DELAY, until it passes
            for t, kind, data in events:
                if due is not None and t >= due:
                    found[(user, due, frozenset(cart))] += 1
                    due = None
                if kind == "cart":
                    if bought.get(data["product"], -math.inf) >= t:
                        continue  # a late add of something bought: ignored, not activity
                    cart.add(data["product"])
                elif kind == "remove_from_cart":
                    cart.discard(data["product"])
                elif kind == "order":
                    bought.update(dict.fromkeys(data["products"], t))
                    taken = cart & set(data["products"])
                    if not taken:
                        continue  # bought nothing from the cart: not cart activity
                    cart -= taken
                else:
                    continue  # a view is not cart activity
                due = t + CART_DELAY if cart else None
            if due is not None:
                found[(user, due, frozenset(cart))] += 1  # the end passes every deadline
        return found


@pytest.fixture(scope="module")
def rees46(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Rees46, list[Any]]:
    path = shared_file(REES46)
    out = tmp_path_factory.mktemp("rees46") / "out.jsonl"
    return Rees46(path), run(path, "rees46", out, broker.bootstrap)


def test_rees46_truncated_last_line_is_the_only_adapter_dead_letter(
    rees46: tuple[Rees46, list[Any]],
) -> None:
    data, records = rees46
    letters = [r for r in records if r["type"] == "dead_letter"]
    assert data.bad_lines == [len(data.physical_lines)]  # the cut-off row is the last line
    assert [(r["category"], r["source"]["line"]) for r in letters] == [
        ("adapter_row", data.bad_lines[0])
    ]
    letter = letters[0]
    assert letter["source"]["topic"] == REES46
    assert base64.b64decode(letter["original_b64"]) == data.physical_lines[-1]


def test_rees46_orders_buyers_and_purchase_paths(rees46: tuple[Rees46, list[Any]]) -> None:
    data, records = rees46
    transitions = [r for r in records if r["type"] == "journey_transition"]
    purchases = [r for r in transitions if r["kind"] == "purchase"]
    assert len(purchases) == len(data.orders) > 150
    assert len({r["order_id"] for r in purchases}) == len(purchases)
    reached = {r["customer_id"] for r in transitions if r["to_stage"] == "purchase"}
    assert reached == data.buyers
    expected_paths = data.paths()
    assert Counter(r["path"] for r in purchases) == expected_paths
    # the simple reading "first order, in the first session" over-counts direct purchases:
    # an add-to-cart or three views of one category before the order also seed the journey
    assert expected_paths["touch→purchase"] <= data.first_order_in_first_session()


def test_rees46_abandoned_carts(rees46: tuple[Rees46, list[Any]]) -> None:
    data, records = rees46
    carts = Counter(
        (
            r["customer_id"],
            datetime.fromisoformat(r["occurred_at"].replace("Z", "+00:00")).timestamp(),
            frozenset(line["product_id"] for line in r["lines"]),
        )
        for r in records
        if r["type"] == "cart_abandoned"
    )
    expected = data.cart_abandonments()
    assert carts == expected
    assert sum(carts.values()) > 20
    # the sample has carts an order only partly bought (or bought none of): the products left
    # are abandoned, so the old rule (an order clears the whole cart) would not pass this test
    ordered = {
        (user, due)
        for user, due, _ in expected
        for t, kind, _ in data.by_user[user]
        if kind == "order" and due - CART_DELAY <= t < due
    }
    assert len(ordered) >= 3


# ------------------------------------------------------------------------------ Online Retail


def first_invoices(source: Path, target: Path, invoices: int) -> Path:
    """Copy the header and the rows of the file's first `invoices` invoices to a gzip file."""
    seen: set[bytes] = set()
    with gzip.open(source, "rb") as src, gzip.open(target, "wb") as dst:
        dst.write(next(src))
        for raw in src:
            invoice = raw.split(b",", 1)[0]
            if invoice not in seen:
                if len(seen) == invoices:
                    break
                seen.add(invoice)
            dst.write(raw)
    return target


def retail_rows(path: Path) -> Iterator[list[str]]:
    def lines() -> Iterator[str]:
        with gzip.open(path, "rb") as fh:
            for raw in fh:
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield raw.decode("latin-1")

    return csv.reader(lines())


def retail_expectations(path: Path) -> dict[str, Any]:
    """Rejected rows, placed order events (invoices, split per 500 lines), buyers, guests."""
    rows = retail_rows(path)
    header = next(rows)
    assert header[0] == "InvoiceNo" and len(header) == 8
    rejected = 0
    lines: Counter[str] = Counter()
    customer: dict[str, str] = {}
    span: dict[str, tuple[float, float]] = {}
    cancellations: set[str] = set()
    for row in rows:
        if not row:
            continue
        if len(row) != 8:
            rejected += 1
            continue
        invoice, stock, _, quantity, when, price, cust, _ = (x.strip() for x in row)
        try:
            q, p, t = float(quantity), float(price), datetime.fromisoformat(when).timestamp()
            whole = q == int(q)
        except (ValueError, OverflowError):
            rejected += 1
            continue
        cancel = invoice[:1] in ("C", "c")
        if (
            not invoice
            or not stock
            or not math.isfinite(p)
            or p < 0
            or not whole
            or q == 0
            or (q > 0) == cancel
        ):
            rejected += 1
            continue
        if cancel:
            cancellations.add(invoice)
            continue
        lines[invoice] += 1
        customer.setdefault(invoice, cust.removesuffix(".0"))  # the invoice's first row
        first, last = span.get(invoice, (t, t))
        span[invoice] = (min(first, t), max(last, t))
    # an invoice is one order when its rows are within 5 minutes (true of every invoice here)
    assert max(b - a for a, b in span.values()) <= ORDER_GAP
    parts = {inv: math.ceil(n / MAX_LINES) for inv, n in lines.items()}
    guests = [inv for inv in parts if not customer[inv]]
    return {
        "rejected": rejected,
        "orders": sum(parts.values()),
        "order_ids": {
            inv if k == 1 else f"{inv}#{k}" for inv, n in parts.items() for k in range(1, n + 1)
        },
        "buyers": {customer[inv] for inv in parts if customer[inv]}
        | {f"guest-{g}" for g in guests},
        "guest_orders": sum(parts[g] for g in guests),
        "cancellations": cancellations,
    }


def test_online_retail_orders_cancellations_and_guests(broker: Any, tmp_path: Path) -> None:
    path = first_invoices(shared_file(RETAIL), tmp_path / "retail.csv.gz", RETAIL_INVOICES)
    expected = retail_expectations(path)
    records = run(path, "online-retail", tmp_path / "out.jsonl", broker.bootstrap)

    letters = Counter(r["category"] for r in records if r["type"] == "dead_letter")
    assert letters == Counter({"adapter_row": expected["rejected"]})
    transitions = [r for r in records if r["type"] == "journey_transition"]
    purchases = [r for r in transitions if r["kind"] == "purchase"]
    # every placed invoice (part) is one purchase; no cancellation is
    assert len(purchases) == expected["orders"] > 1500
    assert {r["order_id"] for r in purchases} == expected["order_ids"]
    assert not {r["order_id"] for r in purchases} & expected["cancellations"]
    # guests: each invoice is an order of its own anonymous key
    guest = [r for r in purchases if r["customer_key"].startswith("a:guest-")]
    assert len(guest) == expected["guest_orders"] > 100
    assert all(r["customer_id"] is None for r in guest)
    # a buyer's first order is direct (orders only, no views), every later one a repurchase
    buyers = {r["customer_key"][2:] for r in transitions if r["to_stage"] == "purchase"}
    assert buyers == expected["buyers"]
    assert Counter(r["path"] for r in purchases) == {
        "touch→purchase": len(expected["buyers"]),
        "repurchase": expected["orders"] - len(expected["buyers"]),
    }
