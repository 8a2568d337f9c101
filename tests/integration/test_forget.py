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

from streams.applied import wait_applied
from streams.process import produce
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

    env = {**os.environ, **d.settings.to_env()}
    cli = Path(sys.executable).parent / "journeystream"
    done = subprocess.run([str(cli), "forget", "gone"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"gone" not in done.stdout + done.stderr  # the id is not echoed

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
