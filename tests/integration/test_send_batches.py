"""compat.send_batches and send_keyed against the real broker: batches, partitions, order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from harness.process import create_topics
from streams.compat import send_batches, send_keyed

pytestmark = pytest.mark.broker


class FaustLike:
    """What send_batches asks of Faust's producer: the aiokafka producer under it."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self.producer


def test_records_split_into_batches_keep_their_order_and_offsets(broker: Any) -> None:
    topic = f"send-batches-{uuid.uuid4().hex[:8]}"
    # 2 KiB records in batches of at most 16 KiB: some 40 batches for 300 records
    records: list[tuple[bytes, bytes | None]] = [
        (f"k{i:03d}".encode(), bytes([65 + i % 26]) * 2048) for i in range(300)
    ]
    records[7] = (b"k007", None)  # a tombstone travels too
    headers = [("owner", b"token-1")]

    async def main() -> tuple[list[int], list[int], list[int], list[Any]]:
        await create_topics(broker.bootstrap, [topic], 2)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=16384)
        await producer.start()
        try:
            first = await send_batches(FaustLike(producer), topic, 1, records, headers)
            second = await send_batches(FaustLike(producer), topic, 1, records[:3], headers)
            # a record over the batch size goes in a batch of its own
            big = [(b"a", b"1"), (b"big", b"x" * 20000), (b"b", b"2")]
            third = await send_batches(FaustLike(producer), topic, 1, big, [])
        finally:
            await producer.stop()
        tp = TopicPartition(topic, 1)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        got: list[Any] = []
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while len(got) < 306:
                got += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        finally:
            await consumer.stop()
        return first, second, third, got

    first, second, third, got = asyncio.run(main())
    assert first == list(range(300))
    assert second == [300, 301, 302]
    assert [(m.offset, m.key, m.value) for m in got[:300]] == [
        (i, k, v) for i, (k, v) in enumerate(records)
    ]
    assert all(list(m.headers) == [("owner", b"token-1")] for m in got[:303])
    assert [m.key for m in got[300:]] == [b"k000", b"k001", b"k002", b"a", b"big", b"b"]
    assert third == [303, 304, 305] and len(got[304].value) == 20000


def test_keyed_records_land_where_a_send_puts_them_in_order(broker: Any) -> None:
    topics = [f"send-keyed-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    sends = [(topics[i % 2], f"c:{i % 37}".encode(), f"{i}".encode()) for i in range(400)]

    async def main() -> tuple[dict[bytes, int], list[Any]]:
        await create_topics(broker.bootstrap, topics, 4)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            # where aiokafka's own send puts each key (one record a key, on its own topic)
            where = {}
            for key in {k for _, k, _ in sends}:
                meta = await producer.send_and_wait(topics[0], b"probe", key=key)
                where[key] = meta.partition
            await send_keyed(FaustLike(producer), sends)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        got: list[Any] = []
        try:
            tps = [TopicPartition(t, p) for t in topics for p in range(4)]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            while len(got) < 400 + len(where):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got += records
        finally:
            await consumer.stop()
        return where, got

    where, got = asyncio.run(main())
    sent = [m for m in got if m.value != b"probe"]
    assert sorted(int(m.value) for m in sent) == list(range(400))  # each once
    assert all(m.partition == where[m.key] for m in sent)  # the default partitioner's choice
    for key in where:  # a key's records in the order given, on each topic
        for topic in topics:
            values = [
                int(m.value)
                for m in sorted(sent, key=lambda m: m.offset)
                if m.key == key and m.topic == topic
            ]
            assert values == sorted(values)
