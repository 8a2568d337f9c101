"""The reliability scenarios: a workload, faults while it flows, the check against the reference.

Used by `test_kill_restart.py` (one run each in `make test`) and by `soak.py` (`make soak`).

A run starts two workers on the event-time clock, produces the workload in chunks while a fault
function acts on the workers, waits until everything is processed and the deadlines flushed,
then compares:

* every customer's whole state (`CustomerState.to_dict()`: reorder window, journey, identity,
  dedupe memory, abandonment state with its pending deadlines, recommendation state) with the
  latest value of its key in the table's changelog (`reference.compare_states`);
* the set of ids on the abandonment topic, and on the two recommendation topics, with the
  reference's sets: missing ids, extra ids, and ids sent twice with different content.

Nothing the worker computes is used as an expected value.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from harness.changelog import latest_changelog
from harness.process import _drain, produce
from journey.figures import PERIODS
from streams import kpis as operations
from streams import topics
from streams.recovery import confirmed_ends
from tests.reliability.reference import (
    ABANDONMENT_TYPES,
    ID_TOPICS,
    Reference,
    comparable,
    compare_states,
    first_difference,
    reference,
    suite_rules,
)
from tests.reliability.report import write_section

EVENTS = 50_000
CUSTOMERS = 4_000
PARTITIONS = 4
CHUNK = 5_000
DRAIN_TIMEOUT = 150.0
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp()
RESULTS_ENV = "JOURNEYSTREAM_SOAK_RESULTS"  # set by soak.py: append each run's figures there
SEED_ENV = "JOURNEYSTREAM_SOAK_SEED"  # set by soak.py: other fault timings at every run


def workload(seed: int = 11, events: int = EVENTS) -> list[dict[str, Any]]:
    """Deterministic views, carts and orders of CUSTOMERS customers over about two days.

    A customer never orders a product twice and an order has one line: see
    `reference.suite_rules` for why (no store-wide repeat share, no co-purchase pair).
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    orders: Counter[int] = Counter()
    t = T0
    for i in range(events):
        t += rng.expovariate(1 / 3.0)  # mean 3 s apart: sessions, gaps and abandonments occur
        c = rng.randrange(CUSTOMERS)
        product = f"p{rng.randrange(300)}"
        base = {
            "event_id": f"rel-{i}",
            "occurred_at": datetime.fromtimestamp(t, UTC).isoformat(),
            "customer_id": f"r{c}",
        }
        roll = rng.random()
        if roll < 0.80:
            out.append(
                {
                    **base,
                    "type": "page_view",
                    "product_id": product,
                    "category": f"cat{int(product[1:]) % 12}",
                    "price": float(5 + int(product[1:]) % 90),
                }
            )
        elif roll < 0.93:
            out.append(
                {**base, "type": "cart", "action": "add", "product_id": product, "quantity": 1}
            )
        else:
            bought = f"p{(c * 37 + orders[c]) % 300}"  # this customer's next unbought product
            orders[c] += 1
            out.append(
                {
                    **base,
                    "type": "order",
                    "action": "placed",
                    "order_id": f"o{i}",
                    "lines": [{"product_id": bought, "quantity": 1, "unit_price": 20.0}],
                    "total": 20.0,
                }
            )
    return out


def suite_overrides(tmp: Path) -> dict[str, Any]:
    """Settings of the suite's deployments: event-time clock, the suite's rules file."""
    return {"clock": "event", "rules_file": str(suite_rules(tmp / "suite-rules.toml"))}


# ---------------------------------------------------------------------------------------------
# reading what the workers wrote


async def read_all(
    bootstrap: str, topic: str, partitions: int = PARTITIONS, confirm_timeout: float = 5.0
) -> list[tuple[str, dict[str, Any] | None]]:
    """Every (key, value) of a topic up to its confirmed end; a tombstone's value is None."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await confirmed_ends(bootstrap, tps, timeout=confirm_timeout)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    records: list[tuple[str, dict[str, Any] | None]] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for msgs in batch.values():
                records.extend(
                    ((m.key or b"").decode(), orjson.loads(m.value) if m.value else None)
                    for m in msgs
                )
    finally:
        await consumer.stop()
    return records


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass
class IdCheck:
    """Ids on output topics against the reference set."""

    expected: int = 0
    received: int = 0  # distinct ids
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    duplicates: int = 0  # repeated records with an id already seen (at-least-once)
    conflicting: list[str] = field(default_factory=list)  # one id, records that differ

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.conflicting)


def check_ids(records: list[dict[str, Any]], expected: set[str]) -> IdCheck:
    """Compare the records' ids with `expected`; repeats must be identical records."""
    by_id: dict[str, set[bytes]] = defaultdict(set)
    count: Counter[str] = Counter()
    for r in records:
        by_id[r["id"]].add(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
        count[r["id"]] += 1
    return IdCheck(
        expected=len(expected),
        received=len(count),
        missing=sorted(expected - set(count)),
        extra=sorted(set(count) - expected),
        duplicates=sum(n - 1 for n in count.values()),
        conflicting=sorted(i for i, v in by_id.items() if len(v) > 1),
    )


@dataclass
class Verification:
    """The whole comparison of one run."""

    customers: int = 0
    differing: list[str] = field(default_factory=list)
    differing_fields: dict[str, int] = field(default_factory=dict)  # top-level field -> customers
    examples: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    extra_keys: list[str] = field(default_factory=list)
    abandonment: IdCheck = field(default_factory=IdCheck)
    recommendation: IdCheck = field(default_factory=IdCheck)
    late_dead_letters: int = 0
    # periods (e.g. "day 2026-11-02") whose operations view differs from the reference's
    kpi_periods: int = 0
    kpi_differing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not (self.differing or self.missing_keys or self.extra_keys or self.kpi_differing)
            and self.abandonment.ok
            and self.recommendation.ok
        )

    def failures(self) -> list[str]:
        """One line per failed check."""
        out = []
        if self.differing:
            fields = ", ".join(f"{k} {n}" for k, n in sorted(self.differing_fields.items()))
            out.append(
                f"{len(self.differing)} of {self.customers} customers differ from the reference"
                f" (by field: {fields}); e.g. {'; '.join(self.examples[:3])}"
            )
        if self.missing_keys:
            out.append(f"{len(self.missing_keys)} customers missing, e.g. {self.missing_keys[:3]}")
        if self.extra_keys:
            out.append(f"{len(self.extra_keys)} unexpected keys, e.g. {self.extra_keys[:3]}")
        checks = (("abandonment", self.abandonment), ("recommendation", self.recommendation))
        for name, ids in checks:
            if ids.missing or ids.extra:
                out.append(
                    f"{name} ids: {len(ids.missing)} missing, {len(ids.extra)} extra "
                    f"(of {ids.expected}); e.g. missing {ids.missing[:3]}, extra {ids.extra[:3]}"
                )
            if ids.conflicting:
                out.append(f"{name} ids with differing records: {ids.conflicting[:3]}")
        if self.kpi_differing:
            out.append(
                f"operations view: {len(self.kpi_differing)} of {self.kpi_periods} periods differ"
                f" from the reference's, e.g. {self.kpi_differing[:3]}"
            )
        return out


def compare(
    ref: Reference, latest: dict[str, dict[str, Any]], outputs: dict[str, list[dict[str, Any]]]
) -> Verification:
    """Compare the reference with the changelog's latest values and the output records."""
    states = compare_states(ref.states, latest)
    fields: Counter[str] = Counter()
    examples = []
    for key in states.differing:
        expected, actual = comparable(ref.states[key]), comparable(latest[key])
        assert expected is not None and actual is not None
        for name in sorted(set(expected) | set(actual)):
            if expected.get(name) != actual.get(name):
                fields[name] += 1
        if len(examples) < 5:
            examples.append(f"{key} {first_difference(expected, actual)}")
    abandonment = outputs.get(topics.ABANDONMENT, [])
    recommendation = [
        r for t in (topics.GOODS_FIND_PEOPLE, topics.DISCOUNT_TRIGGERS) for r in outputs.get(t, [])
    ]
    expected_kpis = operations.view(ref.states.items(), "UTC")
    actual_kpis = operations.view(latest.items(), "UTC")
    kpi_periods = [(p, f) for p in PERIODS for f in expected_kpis[p]]
    actual_periods = {(p, f["period"]): f for p in PERIODS for f in actual_kpis[p]}
    kpi_differing = [
        f"{p} {f['period']}" for p, f in kpi_periods if actual_periods.get((p, f["period"])) != f
    ]
    kpi_differing += [
        f"{p} {k} (not in the reference)"
        for p, k in actual_periods
        if not any(p == q and k == f["period"] for q, f in kpi_periods)
    ]
    return Verification(
        kpi_periods=len(kpi_periods),
        kpi_differing=kpi_differing,
        customers=states.compared,
        differing=states.differing,
        differing_fields=dict(fields),
        examples=examples,
        missing_keys=states.missing,
        extra_keys=states.extra,
        abandonment=check_ids(abandonment, ref.ids_of(ABANDONMENT_TYPES)),
        recommendation=check_ids(
            recommendation,
            ref.ids_of(ID_TOPICS[topics.GOODS_FIND_PEOPLE] + ID_TOPICS[topics.DISCOUNT_TRIGGERS]),
        ),
        late_dead_letters=sum(
            1 for r in outputs.get(topics.DEAD_LETTERS, []) if r.get("category") == "late_event"
        ),
    )


def verify(d: Any, ref: Reference, confirm_timeout: float = 5.0) -> Verification:
    """Read the changelog and the output topics of deployment `d` and compare them with `ref`."""
    changelog = f"{d.settings.app_id}-customers-changelog"
    parts = d.settings.partitions
    latest = asyncio.run(latest_changelog(d.bootstrap, changelog, parts, confirm_timeout))
    outputs = {
        topic: [
            v
            for _, v in asyncio.run(read_all(d.bootstrap, d.names(topic), parts, confirm_timeout))
            if v is not None
        ]
        for topic in (*ID_TOPICS, topics.DEAD_LETTERS)
    }
    return compare(ref, latest, outputs)


# ---------------------------------------------------------------------------------------------
# faults (each gets the deployment with workers 0 and 1 started, while the driver produces)


@dataclass
class Fault:
    """What a fault function did."""

    what: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the fault could not be applied as meant


def no_fault(d: Any, rng: random.Random) -> Fault:
    """Nothing: the control run (what differs here is not caused by a fault)."""
    return Fault("2 workers; no fault (control)")


KILLS = 3


def kill_three_times(d: Any, rng: random.Random) -> Fault:
    """SIGKILL worker 1 three times at random points; restart it on its own local state."""
    victim = d.workers[1]
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 3.0))
        victim.kill()
        victim = d.start_worker(index=1)
    return Fault(f"2 workers; worker 1 SIGKILLed and restarted {KILLS} times")


def add_and_remove_workers(d: Any, rng: random.Random) -> Fault:
    """Add a third worker while events flow, then stop the second one gracefully."""
    time.sleep(rng.uniform(1.0, 3.0))
    d.start_worker(index=2)
    time.sleep(rng.uniform(1.0, 3.0))
    d.workers[1].stop()
    return Fault("2 workers; a third added, then the second stopped, while events flowed")


def lose_local_state(d: Any, rng: random.Random) -> Fault:
    """SIGKILL worker 1, delete its RocksDB directory, restart it: restore from changelog only."""
    time.sleep(rng.uniform(1.0, 3.0))
    victim = d.workers[1]
    victim.kill()
    shutil.rmtree(victim.settings.data_dir, ignore_errors=True)
    d.start_worker(index=1)
    return Fault("2 workers; worker 1 SIGKILLed, its RocksDB directory deleted, restarted")


def kill_both(d: Any, rng: random.Random) -> Fault:
    """SIGKILL both workers at once mid-stream, then restart both on their local state."""
    time.sleep(rng.uniform(1.0, 4.0))
    first, second = d.workers[0], d.workers[1]
    first.kill()
    second.kill()
    down = rng.uniform(0.0, 1.0)
    time.sleep(down)
    d.start_worker(index=0)
    d.start_worker(index=1)
    return Fault(
        "2 workers; both SIGKILLed at once mid-stream, restarted on their local state",
        {"seconds both were down before the restart": f"{down:.1f}"},
    )


RESTORE_STARTED = "Restoring state from changelog topics"
RESTORE_DONE = ("Done reading from changelog topics", "Recovery complete", "Worker ready")


def kill_during_restore(d: Any, rng: random.Random) -> Fault:
    """SIGKILL worker 1 and delete its state; restart it and SIGKILL it while it restores from
    the changelog; delete its state again and restart it for good.

    Worker 1 stays down for a few seconds first so that worker 0 takes its partitions and writes
    their changelog on: the restore has more to read. The kill is sent as soon as the restarted
    worker logs that its restore started (plus up to 0.3 s). Whether the restore had finished by
    then is read from its log; the run fails when no kill hit a restore (3 attempts).
    """
    time.sleep(rng.uniform(1.0, 3.0))
    victim = d.workers[1]
    victim.kill()
    shutil.rmtree(victim.settings.data_dir, ignore_errors=True)
    time.sleep(rng.uniform(3.0, 5.0))
    hits, attempts = 0, 0
    while attempts < 3 and not hits:
        attempts += 1
        log = victim.log_path
        start = log.stat().st_size if log.exists() else 0
        victim = start_unready(d, 1)
        text = wait_for_log(victim, start, RESTORE_STARTED, timeout=60)
        if text is None:
            break
        time.sleep(rng.uniform(0.0, 0.3))
        victim.kill()
        after = log.read_bytes()[start:].decode(errors="replace")
        restore = after[after.find(RESTORE_STARTED) :]
        if not any(done in restore for done in RESTORE_DONE):
            hits += 1
        shutil.rmtree(victim.settings.data_dir, ignore_errors=True)
    d.start_worker(index=1)
    fault = Fault(
        "2 workers; worker 1 SIGKILLed, its state deleted; restarted and SIGKILLed during its "
        "restore from the changelog; its state deleted again; restarted",
        {"kills during a restore (attempts)": f"{hits} ({attempts})"},
    )
    if not hits:
        fault.problems.append(f"no kill hit a restore in {attempts} attempts")
    return fault


def start_unready(d: Any, index: int) -> Any:
    """`Deployment.start_worker` without waiting until the worker is ready."""
    from harness.broker import free_port
    from harness.worker import WorkerProcess
    from streams.settings import Settings

    fields = {f: getattr(d.settings, f) for f in d.settings.__dataclass_fields__}
    fields.update(web_port=free_port(), data_dir=d.tmp / f"state-{index}")
    worker = WorkerProcess(Settings(**fields), d.tmp / f"worker-{index}.log").start()
    d.workers.append(worker)
    return worker


def wait_for_log(worker: Any, start: int, needle: str, timeout: float) -> str | None:
    """The worker's log from byte `start` once it contains `needle` (None: exited or timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = worker.log_path.read_bytes()[start:].decode(errors="replace")
        if needle in text:
            return text
        if not worker.alive():
            return None
        time.sleep(0.02)
    return None


SCENARIOS: dict[str, Callable[[Any, random.Random], Fault]] = {
    "No fault": no_fault,
    "Kill and restart": kill_three_times,
    "Rebalance": add_and_remove_workers,
    "Local state loss": lose_local_state,
    "Kill both workers": kill_both,
    "Kill during restore": kill_during_restore,
}


# ---------------------------------------------------------------------------------------------
# a run


@dataclass
class Run:
    """One scenario run: what was done and what was found."""

    scenario: str
    what: str
    events: int
    seconds: float
    verification: Verification
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # drain timeouts, faults not applied

    @property
    def ok(self) -> bool:
        return not self.problems and self.verification.ok

    def failures(self) -> list[str]:
        return [*self.problems, *self.verification.failures()]


def fault_seed() -> int:
    """The fault-timing seed: fixed in `make test`, one per run in the soak."""
    return int(os.environ.get(SEED_ENV, "5"))


def run_scenario(d: Any, scenario: str, events: list[dict[str, Any]] | None = None) -> Run:
    """Two workers, the workload in chunks, the scenario's fault meanwhile; drain; compare."""
    events = workload() if events is None else events
    for worker in (start_unready(d, 0), start_unready(d, 1)):  # both start at once
        worker.wait_ready(timeout=90)
    produced: dict[TopicPartition, int] = {}
    errors: list[BaseException] = []

    def drive() -> None:
        chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]

        async def run() -> None:
            # every input on one topic: each key's order is the produce order, as in the reference
            for chunk in chunks:
                for tp, off in (await produce(d.bootstrap, d.names, chunk, one_topic=True)).items():
                    produced[tp] = max(produced.get(tp, -1), off)
                await asyncio.sleep(1.0)

        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    driver = threading.Thread(target=drive)
    started = time.time()
    driver.start()
    fault = SCENARIOS[scenario](d, random.Random(fault_seed()))
    driver.join()
    problems = [*fault.problems, *(f"driver failed: {e!r}" for e in errors)]
    parts = d.settings.partitions
    try:
        asyncio.run(_drain(d.bootstrap, d.settings, d.names, produced, parts, DRAIN_TIMEOUT))
    except TimeoutError as exc:  # compared all the same: the figures show what was missed
        problems.append(f"not drained in {DRAIN_TIMEOUT:.0f}s: {exc}")
    elapsed = time.time() - started
    ref = reference(events, d.settings)
    run = Run(scenario, fault.what, len(events), elapsed, verify(d, ref), fault.figures, problems)
    record(run)
    return run


def record(run: Run) -> None:
    """Append the run's figures to the soak's results file (when the soak runs this)."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    v = run.verification
    line = {
        "scenario": run.scenario,
        "ok": run.ok,
        "seconds": round(run.seconds, 1),
        "customers": v.customers,
        "differing": len(v.differing) + len(v.missing_keys) + len(v.extra_keys),
        "differing_fields": v.differing_fields,
        "abandonment": {k: _count(x) for k, x in asdict(v.abandonment).items()},
        "recommendation": {k: _count(x) for k, x in asdict(v.recommendation).items()},
        "figures": run.figures,
        "failures": run.failures(),
    }
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(line) + b"\n")


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else value


def write_report(run: Run, partitions: int = PARTITIONS) -> None:
    """Write the run's figures to the scenario's section of RELIABILITY.md."""
    v = run.verification
    rows = {
        "what happened": run.what,
        "events": run.events,
        "customers compared (whole state)": v.customers,
        "partitions": partitions,
        **run.figures,
        "seconds, produce to drained": f"{run.seconds:.1f}",
        "customers whose state differs from the reference": len(v.differing),
        "customers missing / unexpected": f"{len(v.missing_keys)} / {len(v.extra_keys)}",
        "abandonment ids: reference, missing, extra": (
            f"{v.abandonment.expected}, {len(v.abandonment.missing)}, {len(v.abandonment.extra)}"
        ),
        "recommendation ids: reference, missing, extra": (
            f"{v.recommendation.expected}, {len(v.recommendation.missing)}, "
            f"{len(v.recommendation.extra)}"
        ),
        "duplicate records (same id, identical)": (
            v.abandonment.duplicates + v.recommendation.duplicates
        ),
        "result": "passed" if run.ok else "FAILED: " + " | ".join(run.failures())[:600],
    }
    table = "".join(f"| {k} | {val} |\n" for k, val in rows.items())
    write_section(
        run.scenario,
        "| figure | value |\n|---|---|\n" + table + "\n" + METHOD,
    )


METHOD = (
    "The reference (`tests/reliability/reference.py`) applies the pure cores to the same events\n"
    "in one process as the agent does (per-partition event-time clock, deadlines fired when\n"
    "the partition's time passes them, then flushed), and the whole customer state is compared,\n"
    "nothing left out, with what a restore of the changelog yields (the latest value of each\n"
    "key, fenced by owner markers: `streams.tables.state.restored`). Ids on the abandonment\n"
    "topic and on the two recommendation topics must be the reference sets. Delivery is\n"
    "at-least-once with deterministic ids: duplicates are repeated identical records.\n"
)
