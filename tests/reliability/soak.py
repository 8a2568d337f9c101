"""`make soak RUNS=N`: the reliability scenarios N times, figures per scenario, exit 1 on a failure.

    python -m tests.reliability.soak --runs 10 [--replays 5] [--only NAME ...] [--no-report]

Each scenario run is one pytest run of its test (a fresh broker each time, one scenario at a
time), with JOURNEYSTREAM_SOAK=1 (soak-only tests run), a fault-timing seed of its own and a
results file the test appends its figures to. The `process` replay of 100k events runs
`--replays` times, the Online Retail sample once. At the end a table per scenario is printed
and written to the "Soak" section of RELIABILITY.md (`report.write_section`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tests.reliability.conftest import SOAK_ENV
from tests.reliability.report import NO_REPORT_ENV, write_section
from tests.reliability.scenarios import EVENTS, RESULTS_ENV, SCENARIOS, SEED_ENV

REPO = Path(__file__).resolve().parents[2]
KILL = "tests/reliability/test_kill_restart.py::test_state_and_outputs_match_reference"
TESTS = {
    **{name: f"{KILL}[{name}]" for name in SCENARIOS},
    "Broker restart": (
        "tests/reliability/test_broker_restart.py::test_worker_continues_after_broker_restart"
    ),
}
REPLAY = "tests/reliability/test_replay.py::test_process_100k_event_replay"
RETAIL = "tests/reliability/test_replay.py::test_process_online_retail_sample"
RUN_TIMEOUT = 1200.0


@dataclass
class Tally:
    """One scenario's runs."""

    runs: int = 0
    passed: int = 0
    seconds: float = 0.0
    sums: Counter[str] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)  # differing customers by state field
    converted: list[str] = field(default_factory=list)  # recommendation_converted, per run
    failures: list[str] = field(default_factory=list)


def run_test(
    test: str, seed: int, results: Path, basetemp: Path
) -> tuple[bool | None, list[dict[str, Any]], str]:
    """One pytest run of `test`: passed (None: skipped), its recorded figures, its output's tail.

    Its temporary files (worker logs, state) go to `basetemp`, removed when it passed, kept
    for a look when it failed (pytest's own basetemp rotation would delete them).
    """
    start = results.stat().st_size if results.exists() else 0
    env = {**os.environ, SOAK_ENV: "1", SEED_ENV: str(seed), RESULTS_ENV: str(results)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", test]
    cmd += ["--basetemp", str(basetemp)]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT, check=False
        )
        ok, tail = proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
        if ok and "skipped" in tail and "passed" not in tail:  # e.g. no ../shared/data
            shutil.rmtree(basetemp, ignore_errors=True)
            return None, [], tail
    except subprocess.TimeoutExpired:
        ok, tail = False, f"pytest did not finish in {RUN_TIMEOUT:.0f}s"
    lines = results.read_bytes()[start:].splitlines() if results.exists() else []
    if ok:
        shutil.rmtree(basetemp, ignore_errors=True)
    return ok, [orjson.loads(line) for line in lines], tail


def add(tally: Tally, ok: bool, figures: list[dict[str, Any]], tail: str, label: str) -> str:
    """Count one run; the line printed for it."""
    tally.runs += 1
    tally.passed += ok
    for f in figures:
        tally.seconds += f.get("seconds", 0.0)
        for key in ("customers", "differing"):
            tally.sums[key] += f.get(key, 0)
        for group in ("abandonment", "recommendation"):
            for key in ("expected", "missing", "extra", "conflicting"):
                tally.sums[f"{group} {key}"] += f.get(group, {}).get(key, 0)
        for key in (
            "orders placed",
            "orders without a purchase record",
            "late_event dead letters",
        ):
            tally.sums[key] += f.get(key, 0)
        if "recommendation_converted records" in f:
            tally.converted.append(str(f["recommendation_converted records"]))
        for name, n in f.get("differing_fields", {}).items():
            tally.fields[name] += n
    if ok:
        return f"{label}: passed"
    why = [w for f in figures for w in f.get("failures", [])]
    if not why and figures:
        why = [str({k: v for k, v in figures[-1].items() if k != "scenario"})]
    if not figures:  # the test failed before recording anything
        why = [" ".join(tail.strip().splitlines()[-3:])[:400]]
    tally.failures.append(f"{label}: {' | '.join(why)[:400]}")
    return f"{label}: FAILED {' | '.join(why)[:600]}"


PROCESS = ("Replay", "Online Retail sample")


def table(tallies: dict[str, Tally]) -> str:
    """The per-scenario tables (markdown): fault scenarios, then `journeystream process` runs."""
    out = ""
    scenarios = {n: t for n, t in tallies.items() if n not in PROCESS}
    if scenarios:
        out += (
            "| scenario | runs passed / runs | customers compared | customers differing "
            "| differing, by state field | abandonment ids compared "
            "| missing / extra abandonment ids | recommendation ids compared "
            "| missing / extra recommendation ids | mean s, produce to drained |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
        )
        for name, t in scenarios.items():
            s = t.sums
            fields = ", ".join(f"{k} {n}" for k, n in sorted(t.fields.items())) or "-"
            out += (
                f"| {name} | {t.passed} / {t.runs} | {s['customers']} | {s['differing']} "
                f"| {fields} | {s['abandonment expected']} "
                f"| {s['abandonment missing']} / {s['abandonment extra']} "
                f"| {s['recommendation expected']} "
                f"| {s['recommendation missing']} / {s['recommendation extra']} "
                f"| {t.seconds / max(t.runs, 1):.0f} |\n"
            )
    runs = {n: t for n, t in tallies.items() if n in PROCESS}
    if runs:
        out += (
            "\n| `journeystream process` | runs passed / runs | orders placed "
            "| orders without a purchase record | `late_event` dead letters "
            "| `recommendation_converted` records per run | mean s |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        for name, t in runs.items():
            s = t.sums
            converted = ", ".join(t.converted) or "-"
            out += (
                f"| {name} | {t.passed} / {t.runs} | {s['orders placed']} "
                f"| {s['orders without a purchase record']} | {s['late_event dead letters']} "
                f"| {converted} | {t.seconds / max(t.runs, 1):.0f} |\n"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of every scenario")
    parser.add_argument("--replays", type=int, default=5, help="runs of the 100k-event replay")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument(
        "--no-report", action="store_true", help="leave RELIABILITY.md alone (tests included)"
    )
    args = parser.parse_args(argv)
    if args.no_report:
        os.environ[NO_REPORT_ENV] = "0"  # the tests' own sections too (inherited by pytest)
    names = [*TESTS, *PROCESS]
    chosen = [n for n in names if not args.only or n in args.only]
    tallies = {n: Tally() for n in chosen}
    results = Path(tempfile.mkdtemp(prefix="journeystream-soak-")) / "results.jsonl"
    started = time.time()
    begun = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"soak: {args.runs} runs of {len(chosen)} scenarios; figures in {results}", flush=True)
    plan: list[tuple[int, str, str]] = []
    for i in range(1, max(args.runs, args.replays) + 1):
        for name in chosen:
            if name in TESTS and i <= args.runs:
                plan.append((i, name, TESTS[name]))
            elif name == "Replay" and i <= args.replays:
                plan.append((i, name, REPLAY))
            elif name == "Online Retail sample" and i == 1:
                plan.append((i, name, RETAIL))
    for i, name, test in plan:
        t0 = time.time()
        slug = "".join(c if c.isalnum() else "-" for c in name.lower())
        basetemp = results.parent / f"run-{i}-{slug}"
        ok, figures, tail = run_test(test, 1000 + i, results, basetemp)
        if ok is None:
            print(f"run {i} {name}: skipped, not counted: {tail.strip().splitlines()[-1]}")
            continue
        line = add(tallies[name], ok, figures, tail, f"run {i} {name}")
        if not ok:
            line += f"; logs in {basetemp}"
        print(f"[{time.time() - started:6.0f}s] {line} ({time.time() - t0:.0f}s)", flush=True)
    text = table({n: t for n, t in tallies.items() if t.runs})
    failed = [f for t in tallies.values() for f in t.failures]
    print("\n" + text)
    for f in failed:
        print("  " + f)
    if not args.no_report:
        write_report(text, failed, args.runs, args.replays, begun, time.time() - started)
    return 1 if failed or not plan else 0


def write_report(
    text: str, failed: list[str], runs: int, replays: int, begun: str, seconds: float
) -> None:
    """The "Soak" section of RELIABILITY.md: what `make soak` measured."""
    failures = "".join(f"- {f}\n" for f in failed[:40]) or "- none\n"
    write_section(
        "Soak",
        f"`make soak RUNS={runs}` started {begun}, {seconds / 60:.0f} min: every scenario "
        f"{runs} times, one at a time, each a fresh broker and deployment; the 100k-event\n"
        f"`journeystream process` replay {replays} times and the Online Retail sample once.\n"
        f"Each scenario run produces {EVENTS} events over 4,000 customers; figures are sums\n"
        "over the runs (customers compared: customers x runs).\n"
        "A run passes when every customer's whole state equals the reference and the\n"
        "abandonment and recommendation ids equal the reference sets (`scenarios.py`).\n"
        "Fault timings change from run to run (seed 1000 + run). `No fault` is the control:\n"
        "what differs there is not caused by a fault. Each scenario's own section above holds\n"
        "the figures of its last run.\n\n"
        f"{text}\nFailed runs:\n\n{failures}",
    )


if __name__ == "__main__":
    sys.exit(main())
