"""`python -m bench.kpis_worker`: `/kpis` through a real worker's web route at N customers.

One worker (4 partitions, event clock) on the embedded broker processes a month of events of N
customers (default 100,000: visits on 1-5 days of November 2026, orders for about a third,
carts left for about a fifth, whose abandonments fire as the event clock moves on), then:

* `/kpis?period=day&from=2026-11-01&to=2026-11-30` over HTTP (Faust's web server, the token
  middleware, the route), REQUESTS requests after 3 warm-up ones: median and p99;
* a restart on its local state: seconds to `/ready`, then to the first `/kpis` answer (the
  partitions' views counted again), and the latencies again.

    python -m bench.kpis_worker --customers 100000 --update BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import cases
from bench.kpis import DAY, QUERY, START, pct
from bench.measure import time_group
from bench.million import timed_start
from bench.report import update_kept_section
from bench.workloads import Workload
from harness.broker import EmbeddedBroker

BEGIN = "<!-- kept-section: kpis-worker -->"
END = "<!-- /kept-section: kpis-worker -->"


def log(message: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"[kpis-worker {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def iso(t: float) -> str:
    """An event time on the wire."""
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def month(customers: int, seed: int, run: str) -> list[dict[str, Any]]:
    """The wire events of every customer's month, in event time order."""
    rng = random.Random(seed)
    out: list[tuple[float, dict[str, Any]]] = []
    for i in range(customers):
        ids = {"customer_id": f"{run}{i}"} if rng.random() < 0.6 else {"anonymous_id": f"{run}{i}"}
        first = rng.randrange(30)
        days = {first, *(min(29, first + rng.randrange(10)) for _ in range(rng.randrange(5)))}
        buyer, leaves_cart = rng.random() < 0.35, rng.random() < 0.2
        for n, d in enumerate(sorted(days)):
            t = START + d * DAY + rng.uniform(8, 20) * 3600
            product = f"p{rng.randrange(500)}"
            price = rng.randrange(500, 20000) / 100
            base = {"product_id": product, **ids}
            view = {"type": "page_view", "category": "x", "price": price, **base}
            out.append((t, {**view, "event_id": f"v{i}-{n}", "occurred_at": iso(t)}))
            if leaves_cart and n == 0:  # abandoned: its deadline fires as the clock moves on
                cart = {"type": "cart", "action": "add", "quantity": 1, "price": price, **base}
                out.append((t + 60, {**cart, "event_id": f"c{i}", "occurred_at": iso(t + 60)}))
            elif buyer and rng.random() < 0.6:
                line = {"product_id": product, "quantity": 1, "unit_price": price}
                order = {"type": "order", "action": "placed", "lines": [line], "total": price}
                oid = f"o{i}-{n}"
                out.append(
                    (
                        t + 300,
                        {
                            **order,
                            **ids,
                            "event_id": oid,
                            "order_id": oid,
                            "occurred_at": iso(t + 300),
                        },
                    )
                )
    out.sort(key=lambda e: e[0])
    return [e for _, e in out]


def latencies(base_url: str, requests: int) -> tuple[list[float], dict[str, int]]:
    """Client-side ms of each /kpis request (3 warm-up ones left out), and what it answered."""
    out: list[float] = []
    body = b"{}"
    for _ in range(requests + 3):
        t = time.perf_counter()
        with urllib.request.urlopen(base_url + QUERY, timeout=120) as resp:
            body = resp.read()
        out.append((time.perf_counter() - t) * 1000)
    days = orjson.loads(body)["day"]
    answered = {
        "days": len(days),
        "visitors": sum(d["all"]["visitors"] for d in days),
        "orders": sum(d["all"]["orders"] for d in days),
        "abandonments": sum(d["abandonment"]["all"]["fired"] for d in days),
    }
    return out[3:], answered


def first_answer(base_url: str) -> float:
    """Seconds until /kpis answers 200 (it waits for the views' counts, 503 after 60 s)."""
    t = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(base_url + QUERY, timeout=120) as resp:
                resp.read()
                return time.perf_counter() - t
        except OSError:
            time.sleep(0.2)


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every figure of the run."""
    run = f"k{uuid.uuid4().hex[:5]}"
    out: dict[str, Any] = {"customers": args.customers, "partitions": args.partitions}
    with EmbeddedBroker(log_dir=workdir / "broker") as broker:
        events = month(args.customers, args.seed, run)
        out["events"] = len(events)
        workload = Workload(events, "a month of synthetic customers", args.customers)
        inp = cases.prepare(broker.bootstrap, broker.url, f"{run}.", args.partitions, workload)
        log(f"produced {len(events):,} events")
        app_id = f"js-{run}"
        settings = cases.worker_settings(inp, app_id, workdir / "local", clock="event")
        proc, _ = timed_start(settings, workdir / "w-run.log", 120.0)
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
            out["rate"] = timing.rate
            log(f"processed at {timing.rate:,.0f} ev/s")
            lat, out["answered"] = latencies(proc.base_url, args.requests)
            out["live"] = lat
        finally:
            proc.stop()
        again, out["restart_s"] = timed_start(settings, workdir / "w-again.log", 600.0)
        try:
            out["first_answer_s"] = first_answer(again.base_url)
            out["restarted"], answered = latencies(again.base_url, args.requests)
            assert answered == out["answered"], (answered, out["answered"])
        finally:
            again.stop()
    return out


def section(out: dict[str, Any], args: argparse.Namespace) -> str:
    """The kept section of BENCHMARKS.md."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    live, again = out["live"], out["restarted"]
    a = out["answered"]

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} / {pct(values, 0.99):.1f} / {max(values):.1f}"

    return f"""{BEGIN}
## `/kpis` through a worker at {out["customers"]:,} customers (one run)

`python -m bench.kpis_worker --customers {args.customers} --update BENCHMARKS.md`, {when}, the
same 2 shared, noisy cores (1-minute load average {load} at the end). One worker,
{out["partitions"]} partitions, event clock, on the embedded broker: {out["events"]:,} events
of {out["customers"]:,} customers over November 2026 (visits on 1-5 days, orders for about a
third, a cart left by about a fifth, whose abandonment fires), processed at
{out["rate"]:,.0f} ev/s. Then `{QUERY}` over HTTP (Faust's web server, token middleware,
route), {len(live)} requests after 3 warm-up ones: {a["days"]} days, {a["visitors"]:,} daily
visitors, {a["orders"]:,} orders, {a["abandonments"]:,} abandonments fired (the same after the
restart).

| figure | value |
|---|---:|
| latency after processing: median / p99 / max, ms | {ms(live)} |
| restart on the local state to /ready, s | {out["restart_s"]:.1f} |
| then to the first `/kpis` answer (views counted again), s | {out["first_answer_s"]:.1f} |
| latency after the restart: median / p99 / max, ms | {ms(again)} |
{END}
"""


def main(argv: list[str] | None = None) -> None:
    """Run and print (and with --update, keep the section in the report)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.kpis_worker", description=__doc__.split("\n")[0]
    )
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--update", type=Path, default=None, help="report to update (kept section)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kpiworker-") as tmp:
        out = measure(args, Path(tmp))
    text = section(out, args)
    print(text)
    if args.update is not None:
        update_kept_section(args.update, text)


if __name__ == "__main__":
    main()
