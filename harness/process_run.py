"""`journeystream process`: a file through a fresh broker and worker(s), phase by phase.

The phases, each with a progress bar when asked: read the file, start the workers, produce the
events, wait until the workers have applied them (the positions stored with the state,
`harness.applied`; the bar polls them), flush the remaining deadlines and wait for the flush,
collect the outputs. `timeout` bounds the waiting for the workers (processed and flush) in all;
when it runs out, ProcessTimeout says how far it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from harness.applied import AppliedPositions, changelog_name, wait_applied, wait_settled
from harness.broker import EmbeddedBroker, free_port
from harness.changelog import latest_changelog
from harness.clients import Connection
from harness.process import create_topics, load_file, produce, read_topics, send_flush
from harness.progress import Bar
from harness.worker import WorkerProcess
from replay.adapters import AdapterRejection
from schemas import contracts
from streams import kpis as operations
from streams import topics
from streams.settings import Settings
from streams.topics import TopicNames

POLL_S = 0.5  # how often a bar of the worker's progress reads the applied positions


@dataclass
class ProcessSummary:
    """What a `process` run did."""

    events_in: int = 0
    adapter_rejections: int = 0
    outputs: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    output_path: Path | None = None

    def describe(self) -> str:
        """Human-readable summary."""
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.outputs.items())) or "none"
        return (
            f"processed {self.events_in} events in {self.seconds:.1f}s "
            f"({self.adapter_rejections} rows the adapter could not convert); "
            f"outputs: {kinds} -> {self.output_path}"
        )


class ProcessTimeout(TimeoutError):
    """`process` ran out of time waiting for the workers; the message says how far it got."""


def process_file(
    path: Path,
    *,
    fmt: str,
    output: Path,
    mapping: str | None = None,
    partitions: int = 4,
    workers: int = 1,
    progress: bool = True,
    bootstrap: str | None = None,
    timeout: float = 600.0,
    kpis: Path | None = None,
    store_timezone: str = "UTC",
) -> ProcessSummary:
    """Run a file through fresh workers (and broker unless `bootstrap` is given).

    On a given broker the clients and workers use the JOURNEYSTREAM_* security settings (TLS,
    SASL) and the topics are named under JOURNEYSTREAM_TOPIC_PREFIX; the embedded broker is
    plaintext. With `kpis`, the operations view of the replayed data (every day, week and
    month) is written there as JSON: counted from the customer states as a restore of the
    changelog holds them after the run, with the code that serves `/kpis`.
    """
    started = time.monotonic()
    events, rejected = load_file(path, fmt, mapping, progress=progress)
    base = Settings.from_env()
    broker = None if bootstrap else EmbeddedBroker().start()
    workdir = Path(tempfile.mkdtemp(prefix="journeystream-process-"))
    run_id = uuid.uuid4().hex[:8]
    secured: dict[str, Any] = {} if bootstrap else {"security_protocol": "PLAINTEXT"}
    settings = Settings.from_env(
        broker=f"kafka://{bootstrap}" if bootstrap else broker.url,  # type: ignore[union-attr]
        app_id=f"process-{run_id}",
        topic_prefix=f"{base.topic_prefix}p{run_id}.",
        **secured,
        partitions=partitions,
        clock="event",
        data_dir=workdir / "state",
        store_timezone=store_timezone,
        kpi_gauges_interval_s=0,  # a replay's workers serve no gauges: no scans of their states
    )
    names = TopicNames(settings.topic_prefix)
    procs: list[WorkerProcess] = []
    ok = False
    try:
        boot = Connection.of(settings)
        all_topics = names.all()
        replication = settings.changelog_replication_factor
        asyncio.run(create_topics(boot, all_topics, partitions, replication))
        for i in range(workers):
            worker_settings = dataclasses.replace(
                settings, web_port=free_port(), data_dir=workdir / f"state-{i}"
            )
            procs.append(WorkerProcess(worker_settings, workdir / f"worker-{i}.log").start())
        with Bar("start", workers, "workers", progress) as bar:
            for proc in procs:
                proc.wait_ready(timeout=90)
                bar.add()
        last = asyncio.run(produce(boot, names, events, progress=progress, one_topic=True))
        try:
            asyncio.run(drain(boot, settings.app_id, names, last, partitions, timeout, progress))
        except ProcessTimeout as exc:
            read = f"read {len(events) + len(rejected)} rows ({len(rejected)} not converted)"
            raise ProcessTimeout(f"{exc}; {read}, produced {len(events)} events") from exc
        with Bar("collect", None, "records", progress) as bar:
            records = asyncio.run(read_topics(boot, names.outputs()))
            bar.to(len(records))
        if kpis is not None:
            with Bar("kpis", None, "customers", progress) as bar:
                changelog = changelog_name(settings.app_id)
                states = asyncio.run(
                    latest_changelog(boot.bootstrap, changelog, partitions, **boot.options)
                )
                bar.to(len(states))
                view = operations.view(states.items(), settings.store_timezone)
                kpis.write_bytes(orjson.dumps(view, option=orjson.OPT_INDENT_2) + b"\n")
        payload = settings.dead_letter_payload
        summary = write_output(output, records, rejected, path, payload=payload)
        summary.events_in = len(events)
        summary.seconds = time.monotonic() - started
        ok = True
        return summary
    finally:
        for proc in procs:
            proc.stop()
        if broker is not None:
            broker.stop()
            if ok:
                broker.discard_logs()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"journeystream process: logs kept in {workdir}", file=sys.stderr)


async def drain(
    boot: Connection,
    app_id: str,
    names: TopicNames,
    last: dict[TopicPartition, int],
    partitions: int,
    timeout: float,
    progress: bool,
) -> None:
    """`harness.process._drain` within `timeout` in all, with a bar per phase."""
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    internal = [TopicPartition(names(topics.INTERNAL), p) for p in range(partitions)]
    inputs = {tp: off for tp, off in last.items() if not tp.topic.endswith(topics.CATALOG)}
    total = sum(off + 1 for off in inputs.values())  # fresh topics: offsets from 0
    with Bar("processed", total, "events", progress) as bar:
        phase = Phase(boot, app_id, timeout, bar, inputs, by_partition=False)
        await phase.wait(wait_applied(boot, app_id, last, left()))
        bar.note("internal topic")
        await phase.wait(wait_settled(boot, app_id, internal, left()), "its internal topic")
    flushed = await send_flush(boot, internal)
    with Bar("flush", partitions, "partitions", progress) as bar:
        phase = Phase(boot, app_id, timeout, bar, flushed, by_partition=True)
        await phase.wait(wait_applied(boot, app_id, flushed, left()))
        await phase.wait(wait_settled(boot, app_id, internal, left()), "its internal topic")


def applied(
    done: Mapping[TopicPartition, int],
    targets: Mapping[TopicPartition, int],
    *,
    by_partition: bool = False,
) -> int:
    """Target events applied (offsets from 0), or with `by_partition` partitions fully applied."""
    if by_partition:
        return sum(1 for tp, off in targets.items() if done.get(tp, 0) >= off + 1)
    return sum(min(done.get(tp, 0), off + 1) for tp, off in targets.items())


@dataclass
class Phase:
    """One waiting phase: its bar follows the applied positions; a timeout says how far."""

    boot: Connection
    app_id: str
    timeout: float
    bar: Bar
    targets: dict[TopicPartition, int]
    by_partition: bool

    async def wait(self, waiting: Awaitable[None], what: str = "") -> None:
        """Await `waiting` (a wait of harness.applied), moving the bar until it ends."""
        watcher = asyncio.create_task(self._watch()) if self.bar.enabled else None
        try:
            await waiting
        except TimeoutError as exc:
            if watcher is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._poll(), timeout=30)
            raise ProcessTimeout(self._how_far(what)) from exc
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if not what:
            self.bar.to(self.bar.total or 0)

    async def _watch(self) -> None:
        async with AppliedPositions(
            self.boot.bootstrap, changelog_name(self.app_id), **self.boot.options
        ) as positions:
            while True:
                await self._read(positions)
                await asyncio.sleep(POLL_S)

    async def _poll(self) -> None:
        async with AppliedPositions(
            self.boot.bootstrap, changelog_name(self.app_id), **self.boot.options
        ) as positions:
            await self._read(positions)

    async def _read(self, positions: AppliedPositions) -> None:
        await positions.read()
        done = positions.offsets()
        self.bar.to(applied(done, self.targets, by_partition=self.by_partition))

    def _how_far(self, what: str) -> str:
        unit = "partitions flushed" if self.by_partition else "events applied"
        where = f"{self.bar.n} of {self.bar.total} {unit}"
        if what:
            where += f", {what} not settled"
        elif not self.by_partition and self.bar.n >= (self.bar.total or 0):
            where += ", the catalog's offsets not committed"
        return (
            f"gave up after {self.timeout:g} s (--timeout) waiting for the workers: "
            f"phase '{self.bar.phase}', {where}"
        )


def write_output(
    output: Path,
    records: list[dict[str, Any]],
    rejected: list[AdapterRejection],
    source: Path,
    *,
    payload: str = "original",
) -> ProcessSummary:
    """Write adapter dead letters and output records (sorted by time, type, id) as JSONL."""
    now = time.time()
    lines = [
        contracts.dead_letter(
            "adapter_row",
            r.message,
            original=r.raw,
            key=None,
            topic=str(source.name),
            partition=None,
            offset=None,
            line=r.line,
            now=now,
            payload=payload,
        )
        for r in rejected
    ]
    records = sorted(
        records, key=lambda r: (r.get("occurred_at", ""), r.get("type", ""), r.get("id", ""))
    )
    summary = ProcessSummary(adapter_rejections=len(rejected), output_path=output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as fh:
        for record in [*lines, *records]:
            summary.outputs[record.get("type", "?")] += 1
            fh.write(orjson.dumps(record) + b"\n")
    return summary
