"""The pieces of `journeystream process` and `replay`: read, produce, wait, collect outputs.

`process` (harness/process_run.py) starts an embedded broker and worker(s) with a fresh app
id, produces the file's events in `occurred_at` order keyed by customer key (all customer events
on one input topic: the consumer interleaves topics round-robin, so with one topic per type a
customer's order could be processed before the views and carts that led to it, and the journeys
of a replay would depend on that interleaving), waits until the positions stored with the state
(`harness.applied`) are past every produced offset (the produce acks give the exact offsets, so
this never trusts the broker's reported partition end), flushes the remaining deadlines by
advancing event time past them, waits again, then reads every output topic and writes one JSON
object per line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from harness.applied import wait_applied, wait_settled
from harness.clients import Connection, connect
from harness.progress import Bar
from replay.adapters import AdapterRejection, ColumnMapping, read_events, sort_key
from schemas import contracts
from streams import topics
from streams.messages import FLUSH, internal_body
from streams.recovery import confirmed_ends
from streams.settings import Settings
from streams.topics import TopicNames


def wire_key(event: dict[str, Any]) -> bytes:
    """The customer key producers should use for a wire event (see docs/ARCHITECTURE.md)."""
    kind = event.get("type")
    if kind == "catalog_item":
        return str(event.get("product_id", "")).encode()
    anon = _usable(event.get("anonymous_id"))
    cust = _usable(event.get("customer_id"))
    if kind == "identity_link" and anon:
        return f"a:{anon}".encode()
    if cust:
        return f"c:{cust}".encode()
    return f"a:{anon}".encode() if anon else b""


def _usable(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return None if text.strip().lower() in contracts.BLOCKED_IDS else text


def load_file(
    path: Path, fmt: str, mapping: str | None, *, progress: bool = False
) -> tuple[list[dict[str, Any]], list[AdapterRejection]]:
    """The file's events sorted by occurred_at, and the rows the adapter rejected."""
    column_mapping = ColumnMapping.from_spec(mapping) if mapping else None
    events: list[dict[str, Any]] = []
    rejected: list[AdapterRejection] = []
    with Bar("read", None, "rows", progress) as bar:
        for item in read_events(path, fmt, mapping=column_mapping):
            if isinstance(item, AdapterRejection):
                rejected.append(item)
            else:
                events.append(item)
            bar.add()
    events.sort(key=_safe_sort_key)
    return events, rejected


def _safe_sort_key(event: dict[str, Any]) -> float:
    try:
        return sort_key(event)
    except (ValueError, TypeError, KeyError):
        return float("-inf")  # unparsable times go first; the worker dead-letters them


async def create_topics(
    bootstrap: str | Connection, names: Iterable[str], partitions: int, replication: int = 1
) -> None:
    """Create topics (ignoring ones that exist)."""
    admin = connect(bootstrap).admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, partitions, replication) for n in names if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def produce(
    bootstrap: str | Connection,
    names: TopicNames,
    events: list[dict[str, Any]],
    *,
    speed: float = 0.0,
    progress: bool = False,
    one_topic: bool = False,
) -> dict[TopicPartition, int]:
    """Produce events (paced by event time x speed, or as fast as possible when speed is 0).

    With `one_topic`, every customer event goes to the page-view input topic (the worker reads
    all input topics alike), so each customer's events are consumed in produce order.
    Returns the highest acknowledged offset per partition.
    """
    producer = connect(bootstrap).producer(linger_ms=5, max_batch_size=1_048_576, acks="all")
    await producer.start()
    last: dict[TopicPartition, int] = {}
    pending: list[asyncio.Future[Any]] = []
    start_wall = time.monotonic()
    first_ts: float | None = None
    bar = Bar("produce", len(events), "events", progress)
    try:
        for i, event in enumerate(events):
            if speed > 0:
                ts = _safe_sort_key(event)
                if ts != float("-inf"):
                    first_ts = ts if first_ts is None else first_ts
                    delay = (ts - first_ts) / speed - (time.monotonic() - start_wall)
                    if delay > 0:
                        await asyncio.sleep(delay)
            kind = str(event.get("type", ""))
            one = one_topic and kind != "catalog_item"
            topic = names(topics.PAGE_VIEW) if one else names.for_input(kind)
            pending.append(await producer.send(topic, orjson.dumps(event), key=wire_key(event)))
            if len(pending) >= 5000:
                _record(last, await asyncio.gather(*pending))
                pending.clear()
                bar.to(i + 1)  # acknowledged
        _record(last, await asyncio.gather(*pending))
        bar.to(len(events))
    finally:
        bar.close()
        await producer.stop()
    return last


async def produce_raw(
    bootstrap: str | Connection, sends: list[tuple[str, bytes | None, bytes | None, int | None]]
) -> dict[TopicPartition, int]:
    """Produce raw (topic, key, value, partition) messages; highest offset per partition."""
    producer = connect(bootstrap).producer(acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition)
            for topic, key, value, partition in sends
        ]
        last: dict[TopicPartition, int] = {}
        _record(last, await asyncio.gather(*futures))
        return last
    finally:
        await producer.stop()


def _record(last: dict[TopicPartition, int], metadata: Iterable[Any]) -> None:
    for md in metadata:
        tp = TopicPartition(md.topic, md.partition)
        last[tp] = max(last.get(tp, -1), md.offset)


async def committed(
    bootstrap: str | Connection, group: str, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The consumer group's committed offsets for `tps` (-1 where nothing is committed).

    Uses a consumer's OffsetFetch (the admin client's variant is not understood by Tansu).
    """
    consumer = connect(bootstrap).consumer(group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = {tp: await consumer.committed(tp) for tp in tps}
        return {tp: -1 if off is None else off for tp, off in offsets.items()}
    finally:
        await consumer.stop()


async def wait_committed(
    bootstrap: str | Connection, group: str, targets: dict[TopicPartition, int], timeout: float
) -> None:
    """Wait until the group committed past each target offset (target = last offset produced).

    For topics whose progress is the group's commits (the catalog); the customer agent's
    inputs are waited for with `harness.applied.wait_applied`.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = await committed(bootstrap, group, targets)
        missing = {tp: off for tp, off in targets.items() if done.get(tp, -1) < off + 1}
        if not missing:
            return
        if time.monotonic() > deadline:
            behind = {
                f"{tp.topic}[{tp.partition}]": (done.get(tp), off) for tp, off in missing.items()
            }
            raise TimeoutError(f"not committed past the last offset (committed, last): {behind}")
        await asyncio.sleep(0.2)


async def read_topics(
    bootstrap: str | Connection, names: list[str], settle: float = 1.0
) -> list[dict[str, Any]]:
    """Every record of the topics, read until the ends are reached and stable."""
    conn = connect(bootstrap)
    consumer = conn.consumer(
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        tps = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            return records
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    records.append(orjson.loads(m.value))
            if batch:
                quiet_since = time.monotonic()
                continue
            ends = await confirmed_ends(conn.bootstrap, tps, **conn.options)
            positions = {tp: await consumer.position(tp) for tp in ends}
            at_end = all(positions[tp] >= end for tp, end in ends.items())
            if at_end and time.monotonic() - quiet_since >= settle:
                return records
    finally:
        await consumer.stop()


async def _drain(
    boot: str,
    settings: Settings,
    names: TopicNames,
    last: dict[TopicPartition, int],
    partitions: int,
    timeout: float,
) -> None:
    """Wait for the inputs, flush deadlines, wait for the flush."""
    internal = [TopicPartition(names(topics.INTERNAL), p) for p in range(partitions)]
    await wait_applied(boot, settings.app_id, last, timeout)
    await wait_settled(boot, settings.app_id, internal, timeout)
    flushed = await send_flush(boot, internal)
    await wait_applied(boot, settings.app_id, flushed, timeout)
    await wait_settled(boot, settings.app_id, internal, timeout)


async def send_flush(
    boot: str | Connection, internal: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Ask every partition to fire its remaining deadlines (advance event time past them)."""
    flush = internal_body(FLUSH)
    return await produce_raw(boot, [(tp.topic, b"flush", flush, tp.partition) for tp in internal])


def replay_file(
    path: Path,
    *,
    fmt: str,
    bootstrap: str | Connection,
    mapping: str | None = None,
    speed: float = 0.0,
    progress: bool = True,
    topic_prefix: str = "",
) -> int:
    """Produce a file's events to a running broker; adapter rejections are reported on stderr."""
    events, rejected = load_file(path, fmt, mapping, progress=progress)
    for r in rejected:
        print(f"line {r.line}: {r.message}", file=sys.stderr)
    asyncio.run(
        produce(bootstrap, TopicNames(topic_prefix), events, speed=speed, progress=progress)
    )
    return len(events)
