"""`journeystream demo`: the scenario store's five days through a broker and one worker.

Starts an embedded Tansu broker and one worker process (state and logs under ./var/demo, wiped
at every start; event-time clock, so the scenario's days replay in seconds), prints the story,
produces `replay.scenario.generate(seed=7)` keyed by customer key, waits until the worker has
processed everything and the remaining deadlines are flushed, reads the output topics and prints
what came out: customers by segment and stage, orders by purchase path, abandonments,
recoveries. Then it prints the worker's URLs and, unless told not to, keeps both running until
Ctrl-C.

Pacing: the worker reads page views, carts and orders from separate topics and does not
interleave them by event time. Produced all at once, a customer's order could be processed
before the cart change it settles (wrong purchase path, lost recovery), or after other
customers' later events moved the partition's event clock past that cart's deadline (a false
abandonment). So the demo sends the events in runs (see `slices`): each spans less than the
shortest deadline delay and holds no two events of one customer on different topics, and each is
produced only once the worker has committed the previous one, as live traffic would arrive. The
summary is then the same at every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from types import FrameType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from harness.broker import EmbeddedBroker, free_port
from harness.process import _drain, create_topics, produce, read_topics, wire_key
from harness.worker import WorkerProcess
from replay.adapters import sort_key
from replay.scenario import DEFAULT_START, generate, scenario_story
from streams.settings import Settings
from streams.topics import TopicNames

SEED = 7
DEMO_DIR = Path("var/demo")
PREFERRED_WEB_PORT = 6066
PARTITIONS = 4
TIMEOUT_S = 60.0
STAGES = ("touch", "seed", "purchase", "repurchase")
SEGMENTS = ("new_visitor", "returning_visitor", "customer", "lapsed")
PATHS = ("touch→purchase", "touch→seed→purchase", "repurchase")

Record = dict[str, Any]


class _Stop(Exception):
    """SIGINT/SIGTERM arrived."""


def run_demo(keep_running: bool = True) -> int:
    """Play the demo scenario and print the summary; 0 on success, 1 on failure.

    With `keep_running`, the broker and the worker keep running after the summary until
    SIGINT/SIGTERM (Ctrl-C); they are stopped in every case before returning.
    """
    started = time.monotonic()
    root = DEMO_DIR
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_dir=root / "broker")
    worker: WorkerProcess | None = None
    summarized = False
    previous = _install_signal_handlers(_raise_stop)
    try:
        broker.start()
        settings = Settings.from_env(
            {},  # a fixed demo: JOURNEYSTREAM_* variables of the shell are not read
            broker=broker.url,
            app_id=f"demo-{uuid.uuid4().hex[:8]}",
            partitions=PARTITIONS,
            data_dir=root / "state",
            web_port=_web_port(),
            clock="event",
            commit_interval_s=0.05,  # the pacing waits for commits: keep them frequent
            log_level="warn",
        )
        names = TopicNames(settings.topic_prefix)
        boot = settings.bootstrap_servers
        all_topics = names.all()
        asyncio.run(create_topics(boot, all_topics, settings.partitions))
        worker = WorkerProcess(settings, root / "worker.log").start()
        events = generate(seed=SEED)
        _print_header(broker, worker, root, events)
        _heading(f"The story (seed {SEED}; store time, UTC+08:00)")
        for line in scenario_story(seed=SEED):
            print(f"  {line}")
        print()
        worker.wait_ready(timeout=90)
        print(f"Playing {len(events)} events through the worker ...", end="", flush=True)
        played = time.monotonic()
        asyncio.run(_play(boot, settings, names, events))
        records = asyncio.run(read_topics(boot, names.outputs(), settle=0.5))
        print(f" done in {time.monotonic() - played:.1f} s")
        print()
        print(summary(records, events))
        _print_links(worker, records, keep_running)
        print(f"(start to summary: {time.monotonic() - started:.1f} s)", flush=True)
        summarized = True
        if keep_running:
            _wait_for_stop(broker, worker)
        return 0
    except (_Stop, KeyboardInterrupt):
        if summarized:
            print("\nStopping the worker and the broker ...", flush=True)
            return 0
        print("\njourneystream demo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\njourneystream demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  worker log: {root / 'worker.log'}", file=sys.stderr)
        print(f"  broker log: {broker.log_path or root / 'broker'}", file=sys.stderr)
        return 1
    finally:
        _install_signal_handlers(signal.SIG_IGN)  # a second Ctrl-C must not orphan children
        try:
            if worker is not None:
                worker.stop()
            broker.stop()
        finally:
            _restore_signal_handlers(previous)


# --------------------------------------------------------------------------- running


def _web_port() -> int:
    """6066 when it is free on loopback, else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
        try:
            sock.bind(("127.0.0.1", PREFERRED_WEB_PORT))
        except OSError:
            return free_port()
    return PREFERRED_WEB_PORT


def slices(events: list[Record], width_s: float, names: TopicNames) -> Iterator[list[Record]]:
    """Consecutive runs of the (time-sorted) events that the worker cannot reorder.

    A run spans less than `width_s` of event time and never holds two events of one customer
    key on different topics (the worker may process those in either order).
    """
    current: list[Record] = []
    start = 0.0
    topic_of_key: dict[bytes, str] = {}
    for event in events:
        t = sort_key(event)
        key, topic = wire_key(event), names.for_input(str(event.get("type", "")))
        if current and (t >= start + width_s or topic_of_key.get(key, topic) != topic):
            yield current
            current = []
            topic_of_key.clear()
        if not current:
            start = t
        current.append(event)
        topic_of_key[key] = topic
    if current:
        yield current


async def _play(boot: str, settings: Settings, names: TopicNames, events: list[Record]) -> None:
    """Produce run after run, each once the worker committed the previous one; then drain."""
    width = min(settings.session_gap_s, settings.cart_abandon_delay_s)
    last: dict[TopicPartition, int] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=boot, group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        for part in slices(events, width, names):
            if last:
                await _committed_past(consumer, last, TIMEOUT_S)
            last = await produce(boot, names, part)
    finally:
        await consumer.stop()
    await _drain(boot, settings, names, last, settings.partitions, TIMEOUT_S)


async def _committed_past(
    consumer: AIOKafkaConsumer, last: dict[TopicPartition, int], timeout: float
) -> None:
    """Wait for the group's commits (they follow the stored positions) to pass `last`."""
    deadline = time.monotonic() + timeout
    pending = dict(last)
    while pending:
        for tp, offset in list(pending.items()):
            if ((await consumer.committed(tp)) or -1) >= offset + 1:
                del pending[tp]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker did not commit past {len(pending)} partitions: {pending}")
        await asyncio.sleep(0.02)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _install_signal_handlers(handler: Any) -> dict[int, Any]:
    """Set `handler` for SIGINT and SIGTERM; return the previous handlers."""
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(sig, handler)


def _wait_for_stop(broker: EmbeddedBroker, worker: WorkerProcess) -> None:
    """Sleep until SIGINT/SIGTERM (raised as _Stop) or a child process dies."""
    while broker.alive() and worker.alive():
        time.sleep(0.2)
    raise RuntimeError("the broker or the worker stopped on its own")


# --------------------------------------------------------------------------- printing


def _heading(text: str) -> None:
    print(text)
    print("-" * len(text))


def _print_header(
    broker: EmbeddedBroker, worker: WorkerProcess, root: Path, events: list[Record]
) -> None:
    title = "journeystream demo: a baby-and-home store, five days of events"
    print(title)
    print("=" * len(title))
    rows = [
        ("broker", f"{broker.bootstrap}  (embedded Tansu, memory only; log {broker.log_path})"),
        ("worker", f"{worker.base_url}  (app {worker.settings.app_id}; log {root / 'worker.log'})"),
        ("state", f"{root / 'state'}  (wiped at every start)"),
        ("input", f"{len(events)} events: " + _counts(Counter(e["type"] for e in events))),
    ]
    for label, text in rows:
        print(f"  {label:<7} {text}")
    print()


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counter.most_common())


def _print_links(worker: WorkerProcess, records: list[Record], keep_running: bool) -> None:
    base = worker.base_url
    keys = {r.get("customer_key", "") for r in records if r.get("type") == "journey_transition"}
    merged = merged_anonymous(records)
    rows = [
        (f"{base}/customers/{key[2:]}", f"profile of {key}")
        for key in ("c:c-father-1", "c:c-mother-1", "c:c-login-1")
        if key in keys
    ]
    anonymous = sorted(k for k in keys if k.startswith("a:") and k[2:] not in merged)
    if anonymous:
        rows.append((f"{base}/customers/{anonymous[0][2:]}?anonymous=1", "an anonymous visitor"))
    rows += [
        (f"{base}/dashboard", "the customer-operations page (live)"),
        (f"{base}/segments", "customers by segment and stage, KPIs (JSON)"),
        (f"{base}/experiments", "decisions, conversions and uplift per strategy and arm (JSON)"),
        (f"{base}/metrics", "Prometheus metrics"),
        (f"{base}/ready", "readiness"),
    ]
    _heading("The worker's pages" + (" (served while the demo runs)" if keep_running else ""))
    width = max(len(url) for url, _ in rows)
    for url, text in rows:
        print(f"  {url:<{width}}  {text}")
    print()
    if keep_running:
        print("Send more events to the running worker (default topic names, no prefix):")
        print(f"  journeystream replay FILE.jsonl --broker {worker.settings.bootstrap_servers}")
        print("Ctrl-C stops the worker and the broker.")
        print()


def merged_anonymous(records: list[Record]) -> dict[str, str]:
    """Anonymous ids seen on a customer's (c:) transitions -> that customer key."""
    merged: dict[str, str] = {}
    for r in records:
        key = str(r.get("customer_key", ""))
        if r.get("type") == "journey_transition" and key.startswith("c:") and r.get("anonymous_id"):
            merged[str(r["anonymous_id"])] = key
    return merged


def summary(records: list[Record], events: list[Record] | None = None) -> str:
    """The readable summary of a run's output records (`events`: its inputs, for context)."""
    out = _Summary(records, events or [])
    return out.render()


@dataclass
class _Summary:
    records: list[Record]
    events: list[Record]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unique: dict[tuple[str, str], Record] = {}
        for r in self.records:  # at-least-once delivery: deduplicate by type and id
            unique.setdefault((str(r.get("type")), str(r.get("id"))), r)
        self.records = list(unique.values())
        self.tz: tzinfo | None = DEFAULT_START.tzinfo  # the scenario store's local time
        currencies = {e.get("currency") for e in self.events if e.get("type") == "order"}
        self.currency = currencies.pop() if len(currencies) == 1 else ""

    def of(self, kind: str) -> list[Record]:
        return sorted(
            (r for r in self.records if r.get("type") == kind),
            key=lambda r: (r.get("occurred_at", ""), r.get("customer_key", "")),
        )

    def when(self, stamp: str | None) -> str:
        if not stamp:
            return "?"
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(self.tz)
        return t.strftime("%a %m-%d %H:%M")

    def money(self, value: Any) -> str:
        return "?" if value is None else f"{float(value):,.2f}"

    def heading(self, text: str) -> None:
        self.lines += [text, "-" * len(text)]

    def table(self, header: tuple[str, ...], rows: list[tuple[Any, ...]], right: set[int]) -> None:
        cells = [tuple(str(c) for c in header), *(tuple(str(c) for c in row) for row in rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for row in cells:
            parts = [
                c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)
            ]
            self.lines.append("  " + "  ".join(parts).rstrip())

    def render(self) -> str:
        self.customers()
        self.orders()
        self.carts()
        self.browses()
        self.recoveries()
        self.recommendations()
        self.dead_letters()
        return "\n".join(self.lines)

    # ------------------------------------------------------------------ sections

    def customers(self) -> None:
        stage: dict[str, str | None] = {}
        segment: dict[str, str | None] = {}
        for r in self.of("journey_transition"):  # time order; per key also offset order
            key = r.get("customer_key", "")
            stage[key] = r.get("to_stage") or stage.get(key)
            segment[key] = r.get("to_segment") or segment.get(key)
        merged = merged_anonymous(self.records)
        keys = [k for k in stage if not (k.startswith("a:") and k[2:] in merged)]
        grid: Counter[tuple[str, str]] = Counter(
            (segment.get(k) or "-", stage.get(k) or "-") for k in keys
        )
        segs = [s for s in SEGMENTS if any(g[0] == s for g in grid)]
        segs += sorted({g[0] for g in grid} - set(segs))
        self.heading("Customers by segment and stage (last journey_transition per customer key)")
        rows = [
            (s, *(grid[(s, st)] or "." for st in STAGES), sum(grid[(s, st)] for st in STAGES))
            for s in segs
        ]
        rows.append(("total", *(sum(grid[(s, st)] for s in segs) for st in STAGES), len(keys)))
        self.table(("segment", *STAGES, "total"), rows, right={1, 2, 3, 4, 5})
        known = sum(1 for k in keys if k.startswith("c:"))
        anonymous = len(keys) - known
        folded = sum(1 for k in stage if k.startswith("a:") and k[2:] in merged)
        note = f"  {known} logged-in customers (c:), {anonymous} anonymous visitors (a:)"
        if folded:
            note += f"; {folded} anonymous key(s) merged into a customer are not counted again"
        self.lines += [note, ""]

    def orders(self) -> None:
        purchases = [r for r in self.of("journey_transition") if r.get("kind") == "purchase"]
        by_path: dict[str, list[Record]] = defaultdict(list)
        for r in purchases:
            by_path[r.get("path") or "-"].append(r)
        unit = f" ({self.currency})" if self.currency else ""
        self.heading(f"Orders by purchase path ({len(purchases)} orders)")
        paths = [p for p in PATHS if p in by_path] + sorted(set(by_path) - set(PATHS))
        rows = [
            (
                p,
                len(by_path[p]),
                self.money(sum(float(r.get("order_value") or 0) for r in by_path[p])),
                ", ".join(_short(r["customer_key"]) for r in by_path[p][:4])
                + (", ..." if len(by_path[p]) > 4 else ""),
            )
            for p in paths
        ]
        self.table(("path", "orders", f"value{unit}", "for example"), rows, right={1, 2})
        self.lines.append("")
        named = [r for r in purchases if r.get("customer_key") in ("c:c-mother-1", "c:c-login-1")]
        if named:
            named_rows: list[tuple[Any, ...]] = [
                (
                    _short(r["customer_key"]),
                    r.get("order_id"),
                    self.money(r.get("order_value")),
                    r.get("path"),
                    self.when(r.get("occurred_at")),
                )
                for r in named
            ]
            self.lines.append("  orders of the named actors:")
            self.table(("customer", "order", "value", "path", "at"), named_rows, right={2})
            self.lines.append("")

    def carts(self) -> None:
        carts = self.of("cart_abandoned")
        self.heading(f"Abandoned carts ({len(carts)})")
        if not carts:
            self.lines += ["  none", ""]
            return
        rows = [
            (
                _short(r["customer_key"]),
                self.money(r.get("value")),
                r.get("item_count"),
                ", ".join(str(line.get("product_id")) for line in r.get("lines", [])),
                self.when(r.get("last_activity_at")),
                self.when(r.get("occurred_at")),
            )
            for r in carts
        ]
        header = ("customer", "value", "items", "products", "last activity", "abandoned at")
        self.table(header, rows, right={1, 2})
        self.lines.append("")

    def browses(self) -> None:
        browses = self.of("browse_abandoned")
        self.heading(f"Browse abandonments ({len(browses)})")
        if not browses:
            self.lines += ["  none", ""]
            return
        rows = [
            (
                _short(r["customer_key"]),
                r.get("category"),
                r.get("distinct_products"),
                r.get("high_priced_count"),
                ", ".join(str(p.get("product_id")) for p in r.get("products", [])),
                self.when(r.get("occurred_at")),
            )
            for r in browses
        ]
        header = ("customer", "category", "products", "high-priced", "viewed", "session ended")
        self.table(header, rows, right={2, 3})
        self.lines.append("")

    def recoveries(self) -> None:
        recovered = self.of("abandonment_recovered")
        self.heading(f"Recoveries: abandoners who came back and bought ({len(recovered)})")
        if not recovered:
            self.lines += ["  none", ""]
            return
        rows = [
            (
                _short(r["customer_key"]),
                r.get("kind"),
                r.get("order_id"),
                self.money(r.get("order_value")),
                f"{float(r.get('seconds_to_recover') or 0) / 3600:.1f} h",
                self.when(r.get("occurred_at")),
            )
            for r in recovered
        ]
        header = ("customer", "kind", "order", "value", "after", "ordered at")
        self.table(header, rows, right={3, 4})
        self.lines.append("")

    def recommendations(self) -> None:
        decisions = self.of("decision")
        if not decisions:
            self.lines += ["Recommendation and discount decisions: none", ""]
            return
        held = sum(1 for d in decisions if d.get("held_out_reason") == "holdout")
        denied = sum(1 for d in decisions if d.get("held_out_reason") == "discount_budget")
        budget = f", {denied} over the store's daily discount budget" if denied else ""
        self.heading(
            f"Recommendation and discount decisions ({len(decisions)}: "
            f"{len(decisions) - held - denied} sent, {held} held out as the experiment's control"
            f" group{budget})"
        )
        rows = [
            (
                _short(d.get("customer_key") or "") or "-",
                d.get("strategy"),
                d.get("arm"),
                _delivery(d),
                ", ".join(d.get("product_ids") or []) or "-",
                _reason(d),
            )
            for d in decisions
        ]
        header = ("customer", "strategy", "arm", "delivery", "products", "reason")
        self.table(header, rows, right=set())
        self.lines.append("")

    def dead_letters(self) -> None:
        dead = self.of("dead_letter")
        counts = Counter(str(r.get("category")) for r in dead)
        text = ", ".join(f"{c} {n}" for c, n in counts.most_common()) if dead else "none"
        self.lines += [f"Dead letters: {text}", ""]


def _delivery(decision: dict[str, Any]) -> str:
    """How a decision went: sent, held out, or over the store's daily discount budget."""
    if decision.get("delivered"):
        return "sent"
    return "no budget" if decision.get("held_out_reason") == "discount_budget" else "held out"


def _short(key: str) -> str:
    """`c:c-mother-1` -> `c-mother-1`; anonymous keys keep their `a:`."""
    return key[2:] if key.startswith("c:") else key


def _reason(record: Record) -> str:
    reason = record.get("reason") or record.get("reasons") or record.get("strategy") or "-"
    return ", ".join(map(str, reason)) if isinstance(reason, list) else str(reason)
