"""`journeystream process` end to end: a 100k-event replay and the Online Retail sample (soak only).

Each runs the real command in a child process (its own embedded broker and one worker) with a
time limit, then checks its output file against the input it was given: the command finished,
every placed order of the input has its purchase record (`journey_transition` of kind
`purchase` with the order's id), and no `late_event` dead letter was written (the inputs are in
time order: nothing is late). `recommendation_converted` records are counted and reported: in
identical replays their number has varied (issue 12), which the soak makes visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from replay.adapters import AdapterRejection, read_events
from replay.scenario import generate
from tests.conftest import shared_file
from tests.reliability.scenarios import RESULTS_ENV

pytestmark = [pytest.mark.reliability, pytest.mark.soak]
REPLAY_EVENTS = 100_000
REPLAY_CUSTOMERS = 25_100  # the generated store: about 4 events per visitor
TIMEOUT = 900.0  # `process` itself gives up after 600 s of waiting for the worker
RETAIL = "online-retail-2010-12-to-2011-08.csv.gz"


def run_process(source: Path, fmt: str, tmp: Path) -> tuple[int, float, list[dict[str, Any]], str]:
    """`journeystream process SOURCE`: exit status, seconds, output records, stderr's tail."""
    out = tmp / "out.jsonl"
    command = [sys.executable, "-m", "harness", "process", str(source), "-o", str(out)]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [*command, "--format", fmt, "--quiet"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        status, tail = proc.returncode, proc.stderr.decode(errors="replace")[-2000:]
    except subprocess.TimeoutExpired as exc:
        status, tail = -1, f"timed out after {TIMEOUT:.0f}s: {str(exc.stderr)[-2000:]}"
    seconds = time.monotonic() - started
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return status, seconds, records, tail


def check(
    name: str, events: list[dict[str, Any]], status: int, seconds: float, records: list[Any]
) -> dict[str, Any]:
    """The figures of one `process` run against its input."""
    placed = {e["order_id"] for e in events if e["type"] == "order" and e["action"] == "placed"}
    purchases = {
        r.get("order_id")
        for r in records
        if r.get("type") == "journey_transition" and r.get("kind") == "purchase"
    }
    kinds = Counter(r.get("type") for r in records)
    late = sum(1 for r in records if r.get("category") == "late_event")
    figures = {
        "scenario": name,
        "ok": status == 0 and not (placed - purchases) and late == 0,
        "seconds": round(seconds, 1),
        "events": len(events),
        "exit status": status,
        "orders placed": len(placed),
        "orders without a purchase record": len(placed - purchases),
        "late_event dead letters": late,
        "recommendation_converted records": kinds.get("recommendation_converted", 0),
    }
    if path := os.environ.get(RESULTS_ENV):
        with open(path, "ab") as fh:
            fh.write(orjson.dumps(figures) + b"\n")
    return figures


def test_process_100k_event_replay(tmp_path: Path) -> None:
    events = generate(seed=7, customers=REPLAY_CUSTOMERS)[:REPLAY_EVENTS]
    assert len(events) == REPLAY_EVENTS
    source = tmp_path / "replay.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    status, seconds, records, tail = run_process(source, "jsonl", tmp_path)
    figures = check("Replay", events, status, seconds, records)
    assert status == 0, f"process failed ({status}): {tail}"
    assert figures["orders without a purchase record"] == 0, figures
    assert figures["late_event dead letters"] == 0, figures


@pytest.mark.shared_data
def test_process_online_retail_sample(tmp_path: Path) -> None:
    source = shared_file(RETAIL)
    events = [
        e for e in read_events(source, "online-retail") if not isinstance(e, AdapterRejection)
    ]
    status, seconds, records, tail = run_process(source, "online-retail", tmp_path)
    figures = check("Online Retail sample", events, status, seconds, records)
    assert status == 0, f"process failed ({status}): {tail}"
    assert figures["orders without a purchase record"] == 0, figures
    assert figures["late_event dead letters"] == 0, figures
