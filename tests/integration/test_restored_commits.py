"""A restored position is committed even when no new record arrives for its partition."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition

from harness.process import committed
from tests.integration.test_metrics_worker import by_partition, scrape, send_views

pytestmark = pytest.mark.broker


def test_a_restarted_worker_commits_the_restored_positions(deployment: Any) -> None:
    # the first worker applies every event but never commits (its commit timer is an hour)
    d = deployment(partitions=2, commit_interval_s=3600.0)
    first = d.start_worker()
    topic = d.names.for_input("page_view")
    last = asyncio.run(send_views(d.bootstrap, topic, [f"r-cust-{i}" for i in range(12)]))
    assert len(last) == 2
    expected = {(topic, p): offset + 1 for p, offset in last.items()}
    deadline = time.monotonic() + 30
    while True:
        applied = by_partition(scrape(first.base_url), "journeystream_applied_offset")
        if all(applied.get(k) == v for k, v in expected.items()):
            break
        assert time.monotonic() < deadline, "the first worker did not apply the events"
        time.sleep(0.5)
    first.kill()
    tps = [TopicPartition(topic, p) for p in last]
    group = d.settings.app_id
    assert set(asyncio.run(committed(d.bootstrap, group, tps)).values()) == {-1}
    # the next owner restores the positions; nothing new arrives, yet it commits them
    d.start_worker(index=1, commit_interval_s=1.0)
    want = {TopicPartition(t, p): offset for (t, p), offset in expected.items()}
    deadline = time.monotonic() + 30
    while (done := asyncio.run(committed(d.bootstrap, group, tps))) != want:
        assert time.monotonic() < deadline, (done, want)
        time.sleep(1.0)
