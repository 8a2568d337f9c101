"""One worker, N new customers (default 1M): peak RSS, state on disk, and both recoveries.

Measures, on the embedded broker: the throughput on first touches, the worker's peak RSS
(VmHWM) and RocksDB size after it committed everything, the restart on its local state, and
the restore of a new worker from the changelog alone (empty data directory), checked by
counting the customers the restored worker serves (`/segments`). Writes the kept section
`million` of BENCHMARKS.md:

    python -m bench.million --customers 1000000 --update BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import cases
from bench.measure import disk_mb, memory_mb, pid_of, time_group
from bench.report import update_kept_section
from bench.workloads import first_touch_events
from harness.broker import EmbeddedBroker, free_port
from harness.worker import WorkerProcess

BEGIN = "<!-- kept-section: million -->"
END = "<!-- /kept-section: million -->"
RESTORE_TIMEOUT = 1800.0


def log(message: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"[million {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(prog="python -m bench.million", description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--update", type=Path, default=None, help="report to update (kept section)")
    return p.parse_args(argv)


def timed_start(settings: Any, log_path: Path, timeout: float) -> tuple[WorkerProcess, float]:
    """Start a worker and wait for /ready: the process and the seconds it took."""
    proc = WorkerProcess(replace(settings, web_port=free_port()), log_path)
    started = time.monotonic()
    proc.start()
    proc.wait_ready(timeout=timeout)
    return proc, time.monotonic() - started


def served_customers(proc: WorkerProcess) -> int:
    """Customers counted by the worker's /segments view (all of its partitions)."""
    with urllib.request.urlopen(proc.base_url + "/segments", timeout=600) as resp:
        view = json.loads(resp.read())
    return int(sum(view["segments"].values()))


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the case; every figure in one dict."""
    run_id = f"x{uuid.uuid4().hex[:6]}"
    out: dict[str, Any] = {"customers": args.customers, "partitions": args.partitions}
    with EmbeddedBroker(log_dir=workdir / "broker") as broker:
        workload = first_touch_events(args.customers, run_id)
        t = time.monotonic()
        inp = cases.prepare(broker.bootstrap, broker.url, f"{run_id}.", args.partitions, workload)
        out["produce_s"] = time.monotonic() - t
        log(f"produced {inp.events:,} events in {out['produce_s']:.0f} s")
        app_id = f"js-{run_id}"
        settings = cases.worker_settings(inp, app_id, workdir / "local", clock="event")
        proc, out["cold_start_s"] = timed_start(settings, workdir / "w-run.log", 120.0)
        try:
            timing = asyncio.run(
                time_group(
                    inp.bootstrap,
                    app_id,
                    inp.targets,
                    alive=proc.alive,
                    timeout=inp.timeout(),
                    what="journeystream worker",
                )
            )
            out.update(rate=timing.rate, seconds=timing.seconds, events=timing.events)
            out["rss_mb"] = memory_mb(pid_of(proc))["VmHWM"]
            out["disk_mb"] = disk_mb(settings.data_dir)
            log(f"{timing.rate:,.0f} ev/s, peak RSS {out['rss_mb']:.0f} MiB")
        finally:
            proc.stop()
        again, out["local_restart_s"] = timed_start(settings, workdir / "w-local.log", 600.0)
        try:
            out["local_rss_mb"] = memory_mb(pid_of(again))["VmHWM"]
        finally:
            again.stop()
        log(f"restart on local state: {out['local_restart_s']:.1f} s")
        fresh_settings = replace(settings, data_dir=workdir / "fresh")
        fresh, out["changelog_restore_s"] = timed_start(
            fresh_settings, workdir / "w-fresh.log", RESTORE_TIMEOUT
        )
        try:
            out["restore_rss_mb"] = memory_mb(pid_of(fresh))["VmHWM"]
            out["restored_customers"] = served_customers(fresh)
        finally:
            fresh.stop()
        log(
            f"restore from the changelog: {out['changelog_restore_s']:.1f} s, "
            f"{out['restored_customers']:,} customers served"
        )
    return out


def render(out: dict[str, Any], command: str) -> str:
    """The kept section."""
    n = out["customers"]
    rss_ok = "yes" if out["rss_mb"] <= 400 else "**no**"
    local_ok = "yes" if out["local_restart_s"] <= 10 else "**no**"
    rows = [
        ("customers (one first-touch page view each)", f"{n:,}"),
        ("partitions, workers", f"{out['partitions']}, 1"),
        ("throughput, ev/s", f"{out['rate']:,.0f}"),
        ("peak RSS (VmHWM) of the worker after committing everything, MiB", f"{out['rss_mb']:.0f}"),
        ("state on disk (RocksDB directory), MiB", f"{out['disk_mb']:.0f}"),
        ("restart on its local state to /ready, s", f"{out['local_restart_s']:.1f}"),
        ("peak RSS of that restart, MiB", f"{out['local_rss_mb']:.0f}"),
        (
            "new worker, empty data directory: restore from the changelog to /ready, s",
            f"{out['changelog_restore_s']:.1f}",
        ),
        ("peak RSS of that restore, MiB", f"{out['restore_rss_mb']:.0f}"),
        ("customers the restored worker serves (`/segments`)", f"{out['restored_customers']:,}"),
    ]
    lines = [
        BEGIN,
        f"## {n:,} customers (one run)",
        "",
        f"`{command}` — one run, not a median (each takes minutes). RocksDB limits: "
        "`JOURNEYSTREAM_ROCKSDB_WRITE_BUFFER_MB` and `_BLOCK_CACHE_MB` at their defaults (16).",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
        f"Targets: peak RSS <= 400 MB at 1M customers: {rss_ok} ({out['rss_mb']:.0f} MiB); "
        f"recovery from local state <= 10 s: {local_ok} ({out['local_restart_s']:.1f} s). "
        "The restore from the changelog has no target; it reads every customer's latest state "
        "(and the superseded ones: the changelog is not compacted on Tansu).",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and print (or write) the section."""
    args = parse_args(argv)
    command = " ".join(["python -m bench.million", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="journeystream-million-") as tmp:
        out = measure(args, Path(tmp))
    log(json.dumps(out))
    section = render(out, command)
    if args.update:
        update_kept_section(args.update, section)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
