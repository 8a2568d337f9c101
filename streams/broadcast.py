"""Topics every worker reads whole, outside the consumer group: the catalog and co-purchases.

`follow(topic, apply)` reads every partition of a topic from the beginning, forever, and hands
each record's value to `apply`; after a failure (broker unreachable, topic missing) it starts
over from the beginning, so `apply` must be idempotent: catalog items replace by product id,
co-purchase orders are counted once by their key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.app import app, settings

Apply = Callable[[bytes], None]


async def follow(topic: str, apply: Apply) -> None:
    """Apply every record of every partition of `topic` from the beginning, forever."""
    while True:
        try:
            await read_whole(topic, apply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # broker unreachable, topic missing: start over (idempotent)
            app.log.warning("reader of %s restarts after %s", topic, type(exc).__name__)
            await asyncio.sleep(1.0)


async def read_whole(topic: str, apply: Apply) -> None:
    """Read `topic` from the beginning of every partition, applying each value."""
    conf = app.conf
    consumer = AIOKafkaConsumer(
        bootstrap_servers=[f"{u.host}:{u.port or 9092}" for u in conf.broker_consumer],
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        apply(record.value)
    finally:
        await consumer.stop()
