"""Batched table writes land in the changelog partition of each customer's own input partition."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from harness.applied import wait_applied
from harness.process import produce, read_topics

pytestmark = pytest.mark.broker
PARTITIONS = 4


def test_each_state_lands_in_its_keys_partition(deployment: Any) -> None:
    d = deployment(partitions=PARTITIONS, clock="event", batch_within_s=0.5)
    d.start_worker()
    customers = [f"cust-{i}" for i in range(40)]
    events = [
        {
            "type": "page_view",
            "event_id": f"e-{c}",
            "occurred_at": "2026-11-02T10:00:00+00:00",
            "customer_id": c,
            "product_id": "p1",
            "category": "home",
            "price": 9.5,
        }
        for c in customers
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    changelog = f"{d.settings.app_id}-customers-changelog"

    async def changelog_partitions() -> dict[bytes, set[int]]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=d.bootstrap, group_id=None)
        await consumer.start()
        seen: dict[bytes, set[int]] = {}
        try:
            tps = [TopicPartition(changelog, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for _ in range(30):
                batch = await consumer.getmany(timeout_ms=300)
                for tp, msgs in batch.items():
                    for m in msgs:
                        if not m.key.startswith(b"__faust"):  # owner markers, positions
                            seen.setdefault(m.key, set()).add(tp.partition)
                if len(seen) >= len(customers) and not batch:
                    break
        finally:
            await consumer.stop()
        return seen

    seen = asyncio.run(changelog_partitions())
    partitioner = DefaultPartitioner()
    all_parts = list(range(PARTITIONS))
    for c in customers:
        key = f"c:{c}".encode()
        expected = partitioner(key, all_parts, all_parts)  # murmur2, as producers partition
        assert seen.get(key) == {expected}, (c, seen.get(key), expected)
    # the batch really mixed partitions (otherwise this test could not fail)
    assert len({p for parts in seen.values() for p in parts}) == PARTITIONS
    assert asyncio.run(read_topics(d.bootstrap, [d.names("journey.transitions")]))
