"""A worker's /metrics: applied offsets, lag, customers by segment, build info, process metrics."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from harness.process import wire_key
from journey.stages import SEGMENTS
from streams import topics

pytestmark = pytest.mark.broker


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_partition(found: dict[Any, float], name: str) -> dict[tuple[str, int], float]:
    """A per-partition gauge's values by (topic, partition)."""
    return {
        (dict(labels)["topic"], int(dict(labels)["partition"])): value
        for (sample, labels), value in found.items()
        if sample == name
    }


async def send_views(bootstrap: str, topic: str, customers: list[str]) -> dict[int, int]:
    """One page view per customer id; the last offset written per partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        for i, cust in enumerate(customers):
            event = {
                "type": "page_view",
                "event_id": f"m-{i}",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
                "product_id": f"p{i % 3}",
                "category": "home/kitchen",
                "price": 9.5,
                "customer_id": cust,
            }
            futures.append(await producer.send(topic, orjson.dumps(event), key=wire_key(event)))
        last: dict[int, int] = {}
        for meta in await asyncio.gather(*futures):
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
        return last
    finally:
        await producer.stop()


def test_applied_offsets_follow_the_broker_offsets(deployment: Any) -> None:
    d = deployment(partitions=2)
    worker = d.start_worker()
    topic = d.names.for_input("page_view")
    last = asyncio.run(send_views(d.bootstrap, topic, [f"m-cust-{i}" for i in range(12)]))
    assert len(last) == 2  # both partitions got events
    expected = {(topic, p): offset + 1 for p, offset in last.items()}
    deadline = time.monotonic() + 30  # the operations timer reports every 5 s
    while True:
        found = scrape(worker.base_url)
        applied = by_partition(found, "journeystream_applied_offset")
        lag = by_partition(found, "journeystream_consumer_lag")
        segments = {
            dict(labels)["segment"]: value
            for (name, labels), value in found.items()
            if name == "journeystream_customers"
        }
        caught_up = all(applied.get(k) == v and lag.get(k) == 0 for k, v in expected.items())
        # 12 customers with one page view each: new visitors, counted without a /segments request
        if caught_up and segments == {**dict.fromkeys(SEGMENTS, 0.0), "new_visitor": 12.0}:
            break
        assert time.monotonic() < deadline, (applied, lag, expected, segments)
        time.sleep(0.5)
    inputs = {*d.names.inputs(), d.names(topics.INTERNAL)}
    assert {t for t, _ in applied} <= inputs and {t for t, _ in lag} <= inputs
    assert {p for _, p in applied} <= {0, 1}
    (build,) = [labels for (name, labels), _ in found.items() if name == "journeystream_build_info"]
    assert (
        set(dict(build)) == {"version", "python", "faust"} and "unknown" not in dict(build).values()
    )
    assert found[("journeystream_build_info", build)] == 1
    assert found[("process_resident_memory_bytes", frozenset())] > 10_000_000
    assert found[("process_cpu_seconds_total", frozenset())] > 0
