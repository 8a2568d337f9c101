"""`python -m bench.run --output BENCHMARKS.md`: measure journeystream and write the report.

Cases (``--only`` takes a comma-separated subset):

- ``raw``: a plain aiokafka consumer reading the N pre-produced events;
- ``noop-stock``: a no-op Faust agent (bench/noop_app.py) with Faust's own drain loop and
  ``take_events``: the stock Faust ceiling;
- ``noop``: the same agent on journeystream's consumer and stream subclasses: the raised ceiling;
- ``pipeline``: one journeystream worker on the same events, then its peak RSS, state size
  and the restart time on its local state (recovery);
- ``pipeline2``: two workers;
- ``quix``: Quix Streams counting per customer in RocksDB; ``quix-stateless``: decode only;
- ``latency``: event time to `journey.transitions` record at a fixed rate (new customers);
- ``latency-fetch10``: the same once with JOURNEYSTREAM_FETCH_MAX_WAIT_MS=10 (default 50);
- ``latency-100``: the same once at 100 events/s (the fixed delay without load);
- ``rss``: peak RSS and state size at larger customer counts (one run each);
- ``profile``: py-spy on one worker for a few seconds (once).

Every run starts a fresh embedded Tansu broker, creates topics with a unique prefix (4
partitions), produces the workload once (all events on the page-view topic, keyed by
customer key) and runs the throughput cases one after the other on the same topics, each with
its own consumer group; latency runs get a fresh broker of their own. Figures are medians over
``--runs`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cases, report
from bench.measure import cpu_seconds
from bench.workloads import first_touch_events, rees46_events
from harness.broker import EmbeddedBroker

CASES = (
    "raw",
    "noop-stock",
    "noop",
    "pipeline",
    "pipeline2",
    "quix",
    "quix-stateless",
    "latency",
    "latency-fetch10",
    "latency-100",
    "rss",
    "profile",
)
THROUGHPUT = ("raw", "noop-stock", "noop", "pipeline", "pipeline2", "quix", "quix-stateless")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--output", default="BENCHMARKS.md", help="report file (Markdown)")
    p.add_argument("--events", type=int, default=500_000, help="events per run (N)")
    p.add_argument("--customers", type=int, default=100_000, help="customers in the workload")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (medians are reported)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--latency-rate", type=float, default=1000.0, help="events/s")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument(
        "--rss-customers",
        default="20000,60000",
        help="customer counts of the memory-scaling case (comma-separated)",
    )
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="smoke run: small N, one run")
    p.add_argument("--json", default="", help="also write every run's raw results to this file")
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(CASES)}")
    args = p.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 5_000)
        args.customers = min(args.customers, 1_000)
        args.runs = 1
        args.latency_seconds = min(args.latency_seconds, 6.0)
        args.rss_customers = "2000,5000"
        args.profile_seconds = min(args.profile_seconds, 3.0)
    selected = [c.strip() for c in args.only.split(",") if c.strip()] or list(CASES)
    unknown = [c for c in selected if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    args.selected = selected
    args.cases = CASES
    args.rss_points = [int(x) for x in args.rss_customers.split(",") if x.strip()]
    return args


def log(message: str) -> None:
    """Progress on stderr with a timestamp."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class Results:
    """Per-case lists of run results, and errors."""

    def __init__(self) -> None:
        self.runs: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[str]] = {}
        self.extra: dict[str, Any] = {}

    def attempt(self, case: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Run one measurement, keeping its result or its error."""
        log(f"{case} ...")
        started = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.errors.setdefault(case, []).append(message)
            log(f"{case} FAILED after {time.monotonic() - started:.1f}s: {message}")
            traceback.print_exc(file=sys.stderr)
            return None
        result["load1"] = os.getloadavg()[0]  # the machine is shared: keep the noise visible
        self.runs.setdefault(case, []).append(result)
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
        log(f"{case} done in {time.monotonic() - started:.1f}s: {shown}")
        return result


def loadavg() -> str:
    """The 1, 5 and 15 min load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    from harness.broker import tansu_binary

    try:
        tansu = Path(tansu_binary()).name
    except Exception as exc:
        tansu = f"? ({exc})"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "faust-streaming": ver("faust-streaming"),
        "aiokafka": ver("aiokafka"),
        "rocksdict": ver("rocksdict"),
        "quixstreams": ver("quixstreams"),
        "confluent-kafka": ver("confluent-kafka"),
        "broker": tansu,
        "loadavg": loadavg(),
    }


def run_throughput(args: argparse.Namespace, results: Results, workdir: Path, run: int) -> None:
    """One run of the throughput cases on a fresh broker."""
    wanted = [c for c in THROUGHPUT if c in args.selected]
    if not wanted:
        return
    run_id = f"r{run}{uuid.uuid4().hex[:6]}"
    workload = rees46_events(args.events, args.customers)
    results.extra["workload"] = {
        "source": workload.source,
        "events": len(workload.events),
        "customers": workload.customers,
        "types": workload.type_counts(),
        "note": workload.note,
    }
    with EmbeddedBroker(log_dir=workdir / f"broker-{run_id}") as broker:
        inp = cases.prepare(broker.bootstrap, broker.url, f"b{run_id}.", args.partitions, workload)
        results.extra.setdefault("produce_rates", []).append(inp.events / inp.produce_seconds)
        log(f"run {run + 1}: produced {inp.events} events in {inp.produce_seconds:.1f}s")
        if "raw" in wanted:
            results.attempt("raw", lambda: cases.raw_aiokafka(inp))
        if "noop-stock" in wanted:
            results.attempt(
                "noop-stock", lambda: cases.noop_faust(inp, workdir, run_id, stock=True)
            )
        if "noop" in wanted:
            results.attempt("noop", lambda: cases.noop_faust(inp, workdir, run_id))
        if "pipeline" in wanted:
            results.attempt(
                "pipeline", lambda: cases.pipeline(inp, workdir, run_id, 1, recovery=True)
            )
        if "pipeline2" in wanted:
            results.attempt("pipeline2", lambda: cases.pipeline(inp, workdir, run_id, 2))
        for case, stateful in (("quix", True), ("quix-stateless", False)):
            if case not in wanted:
                continue
            missing = cases.quix_available()
            if missing:
                results.errors.setdefault(case, []).append(missing)
                continue
            results.attempt(case, lambda s=stateful: cases.quix(inp, workdir, run_id, stateful=s))


def run_latency(
    args: argparse.Namespace, results: Results, workdir: Path, run: int, case: str
) -> None:
    """One latency run on a fresh broker; the variants run once, for at most 10 s."""
    run_id = f"l{run}{uuid.uuid4().hex[:6]}"
    overrides = {"fetch_max_wait_ms": 10} if case == "latency-fetch10" else {}
    rate = 100.0 if case == "latency-100" else args.latency_rate
    duration = args.latency_seconds if case == "latency" else min(args.latency_seconds, 10.0)
    with EmbeddedBroker(log_dir=workdir / f"broker-{run_id}") as broker:
        cpu0, wall0 = cpu_seconds(broker.pid), time.monotonic()
        result = results.attempt(
            case,
            lambda: cases.latency(
                broker.bootstrap,
                broker.url,
                workdir,
                run_id,
                rate=rate,
                duration=duration,
                partitions=args.partitions,
                **overrides,
            ),
        )
        if result is not None:  # the broker's CPU over the case (one core = 100%)
            result["broker_cpu_pct"] = (
                100.0 * (cpu_seconds(broker.pid) - cpu0) / (time.monotonic() - wall0)
            )


def run_rss(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    """Peak RSS and state size at larger customer counts (first touches), one run each."""
    for customers in args.rss_points:
        run_id = f"m{customers}{uuid.uuid4().hex[:4]}"
        workload = first_touch_events(customers, run_id)
        with EmbeddedBroker(log_dir=workdir / f"broker-{run_id}") as broker:
            inp = cases.prepare(
                broker.bootstrap, broker.url, f"{run_id}.", args.partitions, workload
            )

            def measure(
                inp: cases.Input = inp, n: int = customers, run_id: str = run_id
            ) -> dict[str, Any]:
                return {"customers": n, **cases.pipeline(inp, workdir, run_id, 1)}

            results.attempt("rss", measure)


def run_profile(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    """py-spy on one worker (once, outside the timed runs)."""
    run_id = f"p{uuid.uuid4().hex[:6]}"
    workload = rees46_events(args.events, args.customers)
    with EmbeddedBroker(log_dir=workdir / f"broker-{run_id}") as broker:
        inp = cases.prepare(broker.bootstrap, broker.url, f"{run_id}.", args.partitions, workload)
        result = results.attempt(
            "profile", lambda: cases.profile(inp, workdir, run_id, args.profile_seconds)
        )
    if result is not None:  # keep the profile when the work directory is removed
        keep = Path(tempfile.gettempdir()) / "journeystream-bench-profile.speedscope.json"
        shutil.copy(result["file"], keep)
        result["file"] = str(keep)


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases and write the report."""
    args = parse_args(argv)
    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)])
    started = time.monotonic()
    stamp = datetime.now(UTC)
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="journeystream-bench-"))
    log(f"work directory {workdir}; cases {', '.join(args.selected)}")
    results = Results()
    for run in range(args.runs):
        run_throughput(args, results, workdir, run)
        if "latency" in args.selected:
            run_latency(args, results, workdir, run, "latency")
    for variant in ("latency-fetch10", "latency-100"):  # one run each, for context
        if variant in args.selected:
            run_latency(args, results, workdir, args.runs, variant)
    if "rss" in args.selected:
        run_rss(args, results, workdir)
    if "profile" in args.selected:
        run_profile(args, results, workdir)
    info["loadavg_end"] = loadavg()
    elapsed = time.monotonic() - started
    text = report.render(args, command, stamp, info, results, elapsed)
    Path(args.output).write_text(text)
    if args.json:
        raw = {"info": info, "runs": results.runs, "errors": results.errors, **results.extra}
        Path(args.json).write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {args.output} after {elapsed / 60:.1f} min")
    if results.errors:
        log(f"errors: {results.errors}; logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
