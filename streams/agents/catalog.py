"""The catalog: validated in the group, then broadcast to every worker's in-memory catalog.

The `catalog` agent consumes the catalog topic in the consumer group: each item is validated
(and dead-lettered) once, by the worker owning its partition, which also applies it at once.
`broadcast_catalog` runs in every worker: a consumer outside the group reads every partition of
the topic from the beginning and applies each valid item, so every worker's catalog holds all
products (including after a restart), whichever partitions it owns. Items are replaced by
product id, so applying one twice is harmless and the latest of a product wins.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from schemas import contracts
from schemas.records import CatalogItem
from streams import metrics, routing, topics
from streams.app import app, settings
from streams.app import topics as names
from streams.tables import catalog as catalog_state

catalog_topic = app.topic(
    names(topics.CATALOG),
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
)


@app.agent(catalog_topic, name="catalog")
async def process_catalog(stream: Any) -> None:
    """Apply catalog items; anything else on the topic is dead-lettered."""
    async for batch in stream.take_events(
        settings.batch_max_events, within=settings.batch_within_s
    ):
        wall = time.time()
        sends: list[routing.Send] = []
        for event in batch:
            msg = event.message
            item = contracts.decode(msg.value, wall)
            if isinstance(item, contracts.Rejection):
                sends.append(routing.dead_letter(msg, item.category, item.message, wall))
                metrics.EVENTS.labels("catalog_item", "dead_letter").inc()
                continue
            if not isinstance(item, CatalogItem):
                reason = "only catalog_item events belong on the catalog topic"
                sends.append(routing.dead_letter(msg, "unknown_type", reason, wall))
                metrics.EVENTS.labels("unknown", "dead_letter").inc()
                continue
            catalog_state.recommender.catalog.observe_item(item)
            metrics.EVENTS.labels("catalog_item", "accepted").inc()
        await routing.send_all(sends)


@app.task
async def broadcast_catalog() -> None:
    """Apply every catalog item of every partition to this worker's catalog, forever."""
    while True:
        try:
            await read_whole_catalog()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # broker unreachable, topic missing: start over (idempotent)
            app.log.warning("catalog broadcast reader restarts after %s", type(exc).__name__)
            await asyncio.sleep(1.0)


async def read_whole_catalog() -> None:
    """Read the catalog topic from the beginning of every partition, applying valid items."""
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
        topic = names(topics.CATALOG)
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    item = contracts.decode(record.value, time.time())
                    if isinstance(item, CatalogItem):
                        catalog_state.recommender.catalog.observe_item(item)
    finally:
        await consumer.stop()
