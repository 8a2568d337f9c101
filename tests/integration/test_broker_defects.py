"""Tansu 0.6.0's under-reported partition end: the defect isolated, and the project's remedy.

The xfail(strict) test asserts what a correct broker does; it is expected to fail on Tansu. If a
newer Tansu fixes it, the strict xfail turns into a failure and tells us to drop the workaround.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from harness.process import create_topics
from streams.recovery import confirmed_ends

pytestmark = pytest.mark.broker


async def concurrent_produce(bootstrap: str, topic: str, producers: int, each: int) -> int:
    """Several producers write to partition 0 at once; return the real end (last offset + 1)."""

    async def one(tag: int) -> int:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await p.start()
        try:
            fut = None
            for i in range(each):
                fut = await p.send(topic, b"x" * 100, key=b"%d-%d" % (tag, i), partition=0)
            assert fut is not None
            return (await fut).offset
        finally:
            await p.stop()

    offsets = await asyncio.gather(*(one(t) for t in range(producers)))
    return max(offsets) + 1


async def reported_end(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


@pytest.fixture
def lagging_partition(broker: Any, request: pytest.FixtureRequest) -> tuple[TopicPartition, int]:
    topic = f"defect-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    asyncio.run(create_topics(broker.bootstrap, [topic], 1))
    real_end = asyncio.run(concurrent_produce(broker.bootstrap, topic, producers=4, each=3000))
    return TopicPartition(topic, 0), real_end


@pytest.mark.xfail(strict=True, reason="Tansu 0.6.0 under-reports the end after concurrent produce")
def test_broker_reports_the_real_partition_end(broker: Any, lagging_partition: Any) -> None:
    tp, real_end = lagging_partition
    assert asyncio.run(reported_end(broker.bootstrap, tp)) == real_end


def test_confirmed_ends_reach_the_real_end(broker: Any, lagging_partition: Any) -> None:
    tp, real_end = lagging_partition
    assert asyncio.run(confirmed_ends(broker.bootstrap, [tp])) == {tp: real_end}
