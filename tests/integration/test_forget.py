"""`journeystream forget`: a customer and its merged anonymous id leave no trace in state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from harness.applied import wait_applied
from harness.process import produce
from streams import topics
from streams.recovery import confirmed_ends

pytestmark = pytest.mark.broker


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


async def latest_values(bootstrap: str, topic: str, partitions: int) -> dict[bytes, bytes | None]:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await confirmed_ends(bootstrap, tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                for m in msgs:
                    if not m.key.startswith(b"__faust"):  # owner markers, positions
                        latest[m.key] = m.value
    finally:
        await consumer.stop()
    return latest


async def keyed(bootstrap: str, topic: str, partitions: int, key: bytes) -> int:
    """Records keyed `key` on a topic, read by the test itself."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await confirmed_ends(bootstrap, tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    found = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                found += sum(1 for m in msgs if m.key == key)
    finally:
        await consumer.stop()
    return found


def test_forget_removes_customer_and_merged_anonymous_history(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event")
    worker = d.start_worker()
    base = {"product_id": "p1", "category": "home", "price": 5.0}
    events = [
        {
            "type": "page_view",
            "event_id": "f1",
            "occurred_at": "2026-11-02T10:00:00+00:00",
            "anonymous_id": "dev-forget",
            **base,
        },
        {
            "type": "identity_link",
            "event_id": "f2",
            "occurred_at": "2026-11-02T10:01:00+00:00",
            "anonymous_id": "dev-forget",
            "customer_id": "gone",
        },
        {
            "type": "page_view",
            "event_id": "f3",
            "occurred_at": "2026-11-02T10:02:00+00:00",
            "customer_id": "gone",
            **base,
        },
        {
            "type": "order",
            "event_id": "f4",
            "occurred_at": "2026-11-02T10:03:00+00:00",
            "customer_id": "gone",
            "action": "placed",
            "order_id": "o-gone",
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 5.0, "category": "home"}],
            "total": 5.0,
        },
        {  # no product: a dead letter keyed c:gone
            "type": "page_view",
            "event_id": "f5",
            "occurred_at": "2026-11-02T10:04:00+00:00",
            "customer_id": "gone",
        },
        {
            "type": "page_view",
            "event_id": "k1",
            "occurred_at": "2026-11-02T10:02:00+00:00",
            "customer_id": "kept",
            **base,
        },
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    changelog = f"{d.settings.app_id}-customers-changelog"
    deadline = time.time() + 20
    while status(worker.base_url + "/customers/gone") != 200 and time.time() < deadline:
        time.sleep(0.3)  # the identity merge travels through the internal topic
    before = asyncio.run(latest_values(d.bootstrap, changelog, 2))
    assert before.get(b"c:gone") and before.get(b"a:dev-forget") and before.get(b"c:kept")

    kept = [d.names(topics.TRANSITIONS), d.names(topics.DEAD_LETTERS)]
    seen: list[int] = []
    while len(seen) < 2 or seen[-1] != seen[-2]:  # the outputs of the last batch are all out
        time.sleep(0.5)
        seen.append(sum(asyncio.run(keyed(d.bootstrap, t, 2, b"c:gone")) for t in kept))
    counts = [asyncio.run(keyed(d.bootstrap, t, 2, b"c:gone")) for t in kept]
    assert all(counts), counts  # a purchase transition and a dead letter at least

    env = {**os.environ, **d.settings.to_env()}
    cli = Path(sys.executable).parent / "journeystream"
    done = subprocess.run(
        [str(cli), "forget", "gone", "--count"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert b"gone" not in done.stdout + done.stderr  # the id is not echoed
    report = done.stdout.decode()
    for topic, count in zip(kept, counts, strict=True):  # Tansu reports no retention
        assert f"{topic}: retention not reported by the broker, {count} records keyed c:<id>" in (
            report
        ), report

    deadline = time.time() + 30
    after: dict[bytes, bytes | None] = {}
    while time.time() < deadline:
        after = asyncio.run(latest_values(d.bootstrap, changelog, 2))
        if after.get(b"c:gone", b"") is None and after.get(b"a:dev-forget", b"") is None:
            break
        time.sleep(0.5)
    assert after[b"c:gone"] is None and after[b"a:dev-forget"] is None  # tombstones
    assert after[b"c:kept"]  # others untouched
    assert status(worker.base_url + "/customers/gone") == 404
    assert status(worker.base_url + "/customers/dev-forget?anonymous=1") == 404
    assert status(worker.base_url + "/customers/kept") == 200
    log = worker.log_path.read_text(errors="replace")  # INFO level: no ids in the worker's log
    assert "dev-forget" not in log and "c:gone" not in log and "c:kept" not in log
