"""Co-purchase counts shared by every worker and rebuilt at every start.

The worker owning a customer counts the customer's placed order at once and writes it as a
`copurchase_order` record to the co-purchase topic, inside the customer's outbox (so it is
written even after a crash, identical). Every worker reads that topic whole, from the
beginning, outside the consumer group, and counts each order once by its key (customer key and
order id): its own orders are already counted, copies are skipped. So every worker's
"frequently bought together" counts hold the whole store's orders, and a restart (or a lost
disk) rebuilds them from the topic; its retention (`copurchase_retention_days`) bounds that read.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson

from recommend.copurchase import shared_order
from streams import broadcast, metrics, topics
from streams.app import app, settings
from streams.app import topics as names
from streams.tables import catalog as catalog_state

copurchase_topic = app.topic(
    names(topics.COPURCHASE),
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    retention=timedelta(days=settings.copurchase_retention_days),
)


def count_order(value: bytes) -> None:
    """Count one co-purchase topic value in this worker's co-purchases, once per order."""
    try:
        order = shared_order(orjson.loads(value))
    except orjson.JSONDecodeError:
        order = None
    if order is None:
        metrics.COPURCHASE_ORDERS.labels("invalid").inc()
        return
    counted = catalog_state.recommender.copurchase.observe_once(
        order.key, order.products, order.at, repeats=order.repeats
    )
    metrics.COPURCHASE_ORDERS.labels("counted" if counted else "duplicate").inc()


@app.task
async def share_copurchase() -> None:
    """Create the co-purchase topic when missing, then count every order on it, forever."""
    while True:
        try:
            await copurchase_topic.maybe_declare()
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # broker not reachable yet: try again
            app.log.warning("co-purchase topic not declared (%s): trying again", exc)
            await asyncio.sleep(1.0)
    await broadcast.follow(copurchase_topic.get_topic_name(), count_order)
