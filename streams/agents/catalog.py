"""The catalog: validated in the group, then broadcast to every worker's in-memory catalog.

The `catalog` agent consumes the catalog topic in the consumer group: each item is validated
(and dead-lettered) once, by the worker owning its partition, which also applies it at once.
`broadcast_catalog` runs in every worker: a consumer outside the group reads every partition of
the topic from the beginning and applies each valid item, so every worker's catalog holds all
products (including after a restart), whichever partitions it owns. Items are replaced by
product id, so applying one twice is harmless and the latest of a product wins.
"""

from __future__ import annotations

import time
from typing import Any

from schemas import contracts
from schemas.records import CatalogItem
from streams import broadcast, metrics, routing, topics
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


def apply_item(value: bytes) -> None:
    """Apply one catalog topic value to this worker's catalog when it is a valid item."""
    item = contracts.decode(value, time.time())
    if isinstance(item, CatalogItem):
        catalog_state.recommender.catalog.observe_item(item)


@app.task
async def broadcast_catalog() -> None:
    """Apply every catalog item of every partition to this worker's catalog, forever."""
    await broadcast.follow(names(topics.CATALOG), apply_item)
