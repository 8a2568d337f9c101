"""A worker that dies with its states stored and its outputs unsent: the restart sends them.

The worker runs with the test fault `exit_before_outputs` (`streams.agents.partitions`): in
its first batch with outputs it exits after the customer records (with their outboxes) are in
the changelog and before any output is sent. The output topics must then be empty, and after
a restart without the fault they must hold every output of those outboxes, each output id with
identical bytes however often it was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from harness.applied import wait_applied
from harness.process import produce
from streams.recovery import confirmed_ends

pytestmark = pytest.mark.broker
PARTITIONS = 2


def view(i: int, customer: str, ts: float) -> dict[str, Any]:
    return {
        "type": "page_view",
        "event_id": f"v{i}",
        "occurred_at": datetime.fromtimestamp(ts, UTC).isoformat(),
        "customer_id": customer,
        "session_id": f"s-{customer}",
        "product_id": f"sku-{i % 7}",
        "category": "baby/strollers",
        "price": 100.0 + i % 7,
    }


def read_raw(bootstrap: str, topics: list[str]) -> list[tuple[str, bytes, bytes]]:
    """Every (topic, key, value) of the topics, up to their confirmed ends."""

    async def main() -> list[tuple[str, bytes, bytes]]:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await confirmed_ends(bootstrap, tps)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        out: list[tuple[str, bytes, bytes]] = []
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    out.extend((tp.topic, m.key or b"", m.value or b"") for m in msgs)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(main())


def test_outputs_unsent_at_a_crash_are_sent_after_the_restart_identical(deployment: Any) -> None:
    d = deployment(partitions=PARTITIONS, clock="event")
    outputs = list(d.names.outputs())
    changelog = f"{d.settings.app_id}-customers-changelog"
    crashing = d.start_worker(fault="exit_before_outputs")
    t0 = time.time() - 3600
    events = [view(i, f"cust-{i % 12}", t0 + i) for i in range(60)]
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    deadline = time.monotonic() + 60
    while crashing.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not crashing.alive(), "the fault did not stop the worker"
    assert crashing.stop() == 70, crashing.log_tail()

    assert read_raw(d.bootstrap, outputs) == []  # nothing was sent before the crash
    boxed: list[tuple[str, bytes, Any]] = []  # what the stored records say must be sent
    for _, key, value in read_raw(d.bootstrap, [changelog]):
        if key.startswith(b"__faust") or not value:
            continue
        box = orjson.loads(value).get("outbox")
        if box:
            boxed.extend((topic, k.encode(), v) for topic, k, v in box["records"])
    assert boxed, "the crashed batch stored no outputs"

    d.start_worker()
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    time.sleep(1.0)
    sent = read_raw(d.bootstrap, outputs)
    for topic, key, value in boxed:
        assert any(t == topic and k == key and orjson.loads(v) == value for t, k, v in sent), (
            f"an output of the stored outboxes was never sent: {topic} {value}"
        )
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for _, _, value in sent:
        by_id[orjson.loads(value)["id"]].add(value)
    assert all(len(v) == 1 for v in by_id.values()), "an output id with differing records"
    resent = sum(
        int(line.split("partition ")[1].split(": ")[1].split(" ")[0])
        for line in d.workers[-1].log_path.read_text().splitlines()
        if "outputs sent again" in line
    )
    assert resent == len(boxed)
