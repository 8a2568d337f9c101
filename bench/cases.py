"""The benchmark cases; each returns plain numbers (the runner takes medians and ratios)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.measure import (
    BenchError,
    GroupTiming,
    ModuleProcess,
    disk_mb,
    memory_mb,
    percentile,
    pid_of,
    time_group,
    total,
)
from bench.workloads import REPO, Workload, first_touch_event
from harness.broker import free_port
from harness.process import create_topics, produce, wire_key
from harness.worker import WorkerProcess
from streams import topics
from streams.settings import Settings
from streams.topics import TopicNames

READY_TIMEOUT = 120.0


@dataclass
class Input:
    """Pre-produced events on a deployment's topics (all on the page-view input topic)."""

    bootstrap: str
    url: str
    prefix: str
    partitions: int
    targets: dict[TopicPartition, int]
    workload: Workload
    produce_seconds: float

    @property
    def names(self) -> TopicNames:
        """The deployment's topic names."""
        return TopicNames(self.prefix)

    @property
    def events(self) -> int:
        """Messages produced."""
        return total(self.targets)

    @property
    def topic(self) -> str:
        """The topic holding the events."""
        return self.names(topics.PAGE_VIEW)

    def timeout(self, floor_rate: float = 300.0) -> float:
        """A generous limit for consuming everything."""
        return 120.0 + self.events / floor_rate


def all_topics(names: TopicNames) -> list[str]:
    """Every topic of a deployment (inputs, catalog, internal, outputs)."""
    return [*names.inputs(), names(topics.CATALOG), names(topics.INTERNAL), *names.outputs()]


def prepare(bootstrap: str, url: str, prefix: str, partitions: int, workload: Workload) -> Input:
    """Create a deployment's topics and produce the workload keyed by customer key."""
    names = TopicNames(prefix)
    asyncio.run(create_topics(bootstrap, all_topics(names), partitions))
    started = time.monotonic()
    targets = asyncio.run(produce(bootstrap, names, workload.events, one_topic=True))
    return Input(bootstrap, url, prefix, partitions, targets, workload, time.monotonic() - started)


def worker_settings(inp: Input, app_id: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of one worker of a deployment (defaults except what is given)."""
    return Settings.from_env(
        {},
        broker=inp.url,
        app_id=app_id,
        topic_prefix=inp.prefix,
        partitions=inp.partitions,
        data_dir=data_dir,
        web_port=free_port(),
        **overrides,
    )


def is_ready(proc: WorkerProcess) -> bool:
    """One /ready probe."""
    try:
        with urllib.request.urlopen(proc.base_url + "/ready", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_all_ready(procs: list[WorkerProcess], timeout: float = READY_TIMEOUT) -> None:
    """Wait until every process answers /ready 200 in the same sweep."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.wait_ready(timeout=timeout)
    while not all(is_ready(p) for p in procs):
        if time.monotonic() > deadline:
            raise BenchError("workers never ready together")
        time.sleep(0.1)


# --------------------------------------------------------------------------- 1. raw aiokafka


async def _raw(inp: Input, fetch_max_wait_ms: int) -> tuple[int, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=inp.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        consumer.assign(list(inp.targets))
        await consumer.seek_to_beginning(*inp.targets)
        remaining = set(inp.targets)
        count = 0
        deadline = time.monotonic() + inp.timeout()
        started = time.monotonic()
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, msgs in batch.items():
                count += len(msgs)
                if msgs and msgs[-1].offset >= inp.targets[tp]:
                    remaining.discard(tp)
            if time.monotonic() > deadline:
                raise BenchError(f"raw consumer stuck at {count} messages")
        return count, time.monotonic() - started
    finally:
        await consumer.stop()


def raw_aiokafka(inp: Input) -> dict[str, Any]:
    """A plain AIOKafkaConsumer reading every message (no group, no decoding)."""
    count, seconds = asyncio.run(_raw(inp, Settings().fetch_max_wait_ms))
    return {"rate": count / seconds, "seconds": seconds, "events": count}


# --------------------------------------------------------------------------- 2. no-op Faust


def noop_faust(inp: Input, workdir: Path, run_id: str, *, stock: bool = False) -> dict[str, Any]:
    """The no-op Faust agent: group throughput, and its own first-to-last batch timing.

    `stock`: Faust's own drain loop and `take_events` (the stock ceiling); else journeystream's.
    """
    name = f"noop{'-stock' if stock else ''}-{run_id}"
    # Faust's own take_events with within=0 waits for a full batch forever: the old 10 ms
    settings = worker_settings(
        inp, name, workdir / name, **({"batch_within_s": 0.01} if stock else {})
    )
    result = workdir / f"{name}.json"
    env = {"BENCH_EXPECTED": str(inp.events), "BENCH_RESULT": str(result)}
    if stock:
        env["BENCH_FAUST_STOCK"] = "1"
    proc = ModuleProcess("bench.noop_app", settings, workdir / f"{name}.log", env).start()
    try:
        proc.wait_ready(timeout=READY_TIMEOUT)
        timing = asyncio.run(
            time_group(
                inp.bootstrap,
                settings.app_id,
                inp.targets,
                alive=proc.alive,
                timeout=inp.timeout(),
                what="no-op Faust app",
            )
        )
        out = _timing(timing)
        if result.exists():
            own = orjson.loads(result.read_bytes())
            out["self_rate"] = own["events"] / own["seconds"]
            out["mean_batch"] = own["events"] / max(1, own.get("batches", 0))
        return out
    finally:
        proc.stop()


def _timing(timing: GroupTiming) -> dict[str, Any]:
    """Group figures; no rate when everything was committed at the first commit (N too small)."""
    rate = timing.rate if timing.events > 0 and timing.seconds > 0.5 else None
    return {"rate": rate, "seconds": timing.seconds, "events": timing.events}


# --------------------------------------------------------------------------- 3. the pipeline


def pipeline(
    inp: Input, workdir: Path, run_id: str, workers: int, *, recovery: bool = False
) -> dict[str, Any]:
    """The journeystream workers (event-time clock, as for replays) on the pre-produced input.

    One worker: timed from its first commit (like the no-op app). Several: timed from the
    moment all are ready, counting the events committed after that moment. Then peak RSS and
    state size; with `recovery`, the worker is stopped and restarted on its data directory and
    the time to /ready is measured.
    """
    app_id = f"js-{run_id}-{workers}w"
    base = worker_settings(inp, app_id, workdir / f"{app_id}-0", clock="event")
    procs: list[WorkerProcess] = []
    out: dict[str, Any] = {}
    try:
        started = time.monotonic()
        for i in range(workers):
            settings = replace(base, web_port=free_port(), data_dir=workdir / f"{app_id}-{i}")
            procs.append(WorkerProcess(settings, workdir / f"{app_id}-{i}.log").start())
        if workers == 1:
            procs[0].wait_ready(timeout=READY_TIMEOUT)
            out["cold_start_s"] = time.monotonic() - started
            t0 = None
        else:
            wait_all_ready(procs)
            t0 = time.monotonic()
        timing = asyncio.run(
            time_group(
                inp.bootstrap,
                app_id,
                inp.targets,
                alive=lambda: all(p.alive() for p in procs),
                timeout=inp.timeout(),
                what="journeystream worker",
                t0=t0,
            )
        )
        out.update(_timing(timing))
        out["rss_mb"] = max(memory_mb(pid_of(p))["VmHWM"] for p in procs)
        out["disk_mb"] = sum(disk_mb(p.settings.data_dir) for p in procs)
        if recovery:
            out["recovery_s"] = restart_time(procs[0], workdir / f"{app_id}-restart.log")
        return out
    finally:
        for p in procs:
            p.stop()


def restart_time(proc: WorkerProcess, log_path: Path) -> float:
    """Stop a worker gracefully, start it again on its data directory: seconds to /ready."""
    proc.stop()
    again = WorkerProcess(replace(proc.settings, web_port=free_port()), log_path)
    started = time.monotonic()
    again.start()
    try:
        again.wait_ready(timeout=READY_TIMEOUT)
        return time.monotonic() - started
    finally:
        again.stop()


# --------------------------------------------------------------------------- 4. Quix Streams


def quix_available() -> str | None:
    """None when quixstreams imports, else why not."""
    if importlib.util.find_spec("quixstreams") is None:
        return "quixstreams is not installed (pip install -e '.[bench]')"
    return None


def quix(inp: Input, workdir: Path, run_id: str, *, stateful: bool) -> dict[str, Any]:
    """Quix Streams on the same topic: count per customer (stateful) or decode only."""
    kind = "stateful" if stateful else "stateless"
    group = f"quix-{kind}-{run_id}"
    result = workdir / f"{group}.json"
    env = {
        "BENCH_BOOTSTRAP": inp.bootstrap,
        "BENCH_TOPIC": inp.topic,
        "BENCH_GROUP": group,
        "BENCH_STATE_DIR": str(workdir / group),
        "BENCH_STATEFUL": "1" if stateful else "0",
        "BENCH_COMMIT_INTERVAL_S": str(Settings().commit_interval_s),
        "BENCH_FETCH_MAX_WAIT_MS": str(Settings().fetch_max_wait_ms),
        "BENCH_SESSION_TIMEOUT_MS": str(int(Settings().session_timeout_s * 1000)),
        "BENCH_HEARTBEAT_MS": str(int(Settings().heartbeat_interval_s * 1000)),
        "BENCH_EXPECTED": str(inp.events),
        "BENCH_RESULT": str(result),
    }
    dummy = worker_settings(inp, group, workdir / group)
    proc = ModuleProcess("bench.quix_app", dummy, workdir / f"{group}.log", env).start()
    try:
        timing = asyncio.run(
            time_group(
                inp.bootstrap,
                group,
                inp.targets,
                alive=proc.alive,
                timeout=inp.timeout(),
                what=f"Quix Streams ({kind})",
            )
        )
        out = _timing(timing)
        if result.exists():
            own = orjson.loads(result.read_bytes())
            out["self_rate"] = own["events"] / own["seconds"]
        out["rss_mb"] = memory_mb(pid_of(proc))["VmHWM"]
        return out
    except BenchError as exc:
        raise BenchError(f"{exc}; log {proc.log_path}:\n{proc.log_tail(15)}") from None
    finally:
        proc.stop()


# --------------------------------------------------------------------------- 5. latency


async def _latency(
    bootstrap: str, names: TopicNames, partitions: int, rate: float, duration: float, run: str
) -> dict[str, float]:
    out_topic = names(topics.TRANSITIONS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = asyncio.Event()

    async def consume() -> None:
        tps = [TopicPartition(out_topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for msgs in batch.values():
                for msg in msgs:
                    key = orjson.loads(msg.value).get("customer_key")
                    if key in sent and key not in seen:
                        seen[key] = now - sent[key]

    reader = asyncio.ensure_future(consume())
    try:
        await asyncio.sleep(0.5)
        topic = names(topics.PAGE_VIEW)
        futures = []
        start = time.monotonic()
        i = 0
        count = int(rate * duration)
        while i < count:
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            while i < due:
                occurred = time.time()
                event = first_touch_event(i, occurred, run)
                sent[f"c:{event['customer_id']}"] = occurred
                value = orjson.dumps(event)
                futures.append(await producer.send(topic, value, key=wire_key(event)))
                i += 1
            await asyncio.sleep(0.001)
        send_seconds = time.monotonic() - start
        await asyncio.gather(*futures)
        grace = time.monotonic() + 15.0
        while len(seen) < len(sent) and time.monotonic() < grace:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await reader
        await producer.stop()
        await consumer.stop()
    warm = sorted(sent.values())[min(len(sent) - 1, int(rate * 2.0))]  # skip the first 2 s
    ordered = sorted((t, seen[k] * 1000.0) for k, t in sent.items() if k in seen and t >= warm)
    samples = [ms for _, ms in ordered]
    if not samples:
        raise BenchError("no journey transition came back")
    quarter = max(1, len(samples) // 4)
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        # a worker that does not keep up shows a growing latency: first vs last quarter
        "p50_first_quarter_ms": percentile(samples[:quarter], 50),
        "p50_last_quarter_ms": percentile(samples[-quarter:], 50),
        "sent": float(len(sent)),
        "missing": float(len(sent) - len(seen)),
        "achieved_rate": len(sent) / send_seconds,
    }


def latency(
    bootstrap: str,
    url: str,
    workdir: Path,
    run_id: str,
    *,
    rate: float,
    duration: float,
    partitions: int,
    **overrides: Any,
) -> dict[str, float]:
    """Event time to journey transition at a fixed rate: live clock, one worker, new customers."""
    prefix = f"lat{run_id}."
    names = TopicNames(prefix)
    asyncio.run(create_topics(bootstrap, all_topics(names), partitions))
    inp = Input(bootstrap, url, prefix, partitions, {}, Workload([], "", 0), 0.0)
    settings = worker_settings(inp, f"lat-{run_id}", workdir / f"lat-{run_id}", **overrides)
    proc = WorkerProcess(settings, workdir / f"lat-{run_id}.log").start()
    try:
        proc.wait_ready(timeout=READY_TIMEOUT)
        return asyncio.run(_latency(bootstrap, names, partitions, rate, duration, run_id))
    finally:
        proc.stop()


# --------------------------------------------------------------------------- 7. profile


def profile(inp: Input, workdir: Path, run_id: str, seconds: float) -> dict[str, Any]:
    """py-spy record (speedscope, --nonblocking) on a worker processing the pre-produced input."""
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if pyspy is None:
        raise BenchError("py-spy not found (pip install py-spy)")
    app_id = f"prof-{run_id}"
    settings = worker_settings(inp, app_id, workdir / app_id, clock="event")
    proc = WorkerProcess(settings, workdir / f"{app_id}.log").start()
    out_file = workdir / f"{app_id}.speedscope.json"
    try:
        proc.wait_ready(timeout=READY_TIMEOUT)
        cmd = [
            pyspy,
            "record",
            "--pid",
            str(pid_of(proc)),
            "--duration",
            str(int(seconds)),
            "--rate",
            "100",
            "--nonblocking",
            "--format",
            "speedscope",
            "--output",
            str(out_file),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0 or not out_file.exists():
            raise BenchError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    finally:
        proc.stop()
    return {"file": str(out_file), "seconds": seconds, **top_functions(out_file)}


# inclusive time of the worker's main steps: (what, function, file)
BREAKDOWN = (
    (
        "the customer agent's batch processing, all of it",
        "process_batch",
        "streams/agents/customers.py",
    ),
    ("decode + JSON Schema validation", "decode", "schemas/contracts.py"),
    ("customer state read (RocksDB get, orjson, from_dict)", "load", "streams/tables/customers.py"),
    ("pure journey core", "apply", "journey/customer.py"),
    ("deadlines as the partition's time passes", "fire_due", "streams/agents/customers.py"),
    ("output records: build and route", "route_outputs", "streams/routing.py"),
    (
        "output records: send (up to the await of the acks)",
        "send_all",
        "streams/agents/customers.py",
    ),
    (
        "customer state write (to_dict, orjson, changelog, RocksDB, position)",
        "commit",
        "streams/agents/partitions.py",
    ),
)


def top_functions(path: Path, limit: int = 15) -> dict[str, Any]:
    """Top functions (name and file, all lines together) by self time, with inclusive time.

    Speedscope stacks run root -> leaf; py-spy weights samples in seconds.
    """
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    ids = [(str(f.get("name", "?")), str(f.get("file", ""))) for f in frames]
    self_time: Counter[tuple[str, str]] = Counter()
    incl_time: Counter[tuple[str, str]] = Counter()
    threads: Counter[str] = Counter()
    sampled = 0.0
    for prof in data["profiles"]:
        weights = prof.get("weights") or [0.01] * len(prof["samples"])
        for stack, weight in zip(prof["samples"], weights, strict=False):
            if not stack:
                continue
            sampled += weight
            threads[str(prof.get("name", "?"))] += weight
            self_time[ids[stack[-1]]] += weight
            for fid in {ids[i] for i in stack}:
                incl_time[fid] += weight
    if not sampled:
        raise BenchError("the profile has no samples")

    def share(value: float) -> float:
        return 100.0 * value / sampled

    top = [
        {
            "function": f"{name} ({_short(file)})",
            "self_pct": share(t),
            "total_pct": share(incl_time[(name, file)]),
        }
        for (name, file), t in self_time.most_common(limit)
    ]
    by_package: Counter[str] = Counter()
    for (_, file), t in self_time.items():
        by_package[_package_of(file)] += t
    packages = [{"package": n, "self_pct": share(t)} for n, t in by_package.most_common(12)]
    thread_shares = [{"thread": n, "pct": share(t)} for n, t in threads.most_common()]
    mine = sum(t for n, t in by_package.items() if n.startswith("journeystream"))
    breakdown = []
    for label, name, suffix in BREAKDOWN:
        spent = sum(t for (n, f), t in incl_time.items() if n == name and f.endswith(suffix))
        breakdown.append({"what": label, "function": name, "file": suffix, "pct": share(spent)})
    return {
        "breakdown": breakdown,
        "sampled_s": sampled,
        "top": top,
        "packages": packages,
        "threads": thread_shares,
        "journeystream_pct": share(mine),
    }


def _short(file: str) -> str:
    for marker in ("site-packages/", f"{REPO}/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return "generated code" if file == "<string>" else file


def _package_of(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0]
    if f"{REPO}/" in file:
        return "journeystream: " + file.split(f"{REPO}/", 1)[1].split("/", 1)[0]
    if "lib/python3" in file:
        return "stdlib: " + file.rsplit("/", 1)[-1]
    if file == "<string>":
        return "fastjsonschema validators (generated code)"
    return file or "?"
