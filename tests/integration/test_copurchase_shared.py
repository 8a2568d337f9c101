"""Co-purchases learned by the whole store: two workers, and after both restart.

Customers are picked by the partition their key falls in (murmur2, as producers partition) so
that the orders teaching "mug goes with saucer" are all applied by one worker and the customer
who then buys a mug alone is owned by the other. No merchant rule links the two products: a
saucer recommended for that customer can only come from the other worker's orders.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics
from tests.integration.test_audience import get
from tests.integration.test_goods_find_people import item

pytestmark = pytest.mark.broker
TOKEN = "copurchase-token"
PARTITIONS = 4
CATALOG = [
    item("mug", ("home", "kitchen"), 9.0, 100),
    item("saucer", ("home", "kitchen"), 4.0, 100),
    item("kettle", ("home", "kitchen"), 39.0, 100),
]


def partition_of(customer_id: str) -> int:
    return (murmur2(f"c:{customer_id}".encode()) & 0x7FFFFFFF) % PARTITIONS


def order(customer_id: str, n: int, at: str, *pids: str) -> dict[str, Any]:
    prices = {"mug": 9.0, "saucer": 4.0, "kettle": 39.0}
    return {
        "type": "order",
        "event_id": f"o-{customer_id}-{n}",
        "occurred_at": at,
        "customer_id": customer_id,
        "action": "placed",
        "order_id": f"order-{customer_id}-{n}",
        "lines": [
            {"product_id": p, "quantity": 1, "unit_price": prices[p], "category": "home/kitchen"}
            for p in pids
        ],
        "total": sum(prices[p] for p in pids),
    }


def owned(worker: Any) -> list[int]:
    status, body, _ = get(f"{worker.base_url}/audience?scope=local&limit=1", TOKEN)
    assert status == 200, body[:200]
    return orjson.loads(body)["partitions"]


def split(workers: list[Any]) -> list[list[int]]:
    """Each worker's partitions once the group has shared them out."""
    parts: list[list[int]] = []
    for _ in range(90):
        parts = [owned(w) for w in workers]
        if all(parts) and sorted(p for ps in parts for p in ps) == list(range(PARTITIONS)):
            return parts
        time.sleep(1.0)
    pytest.fail(f"the workers never shared out the partitions: {parts}")


def counted(worker: Any) -> float:
    """Orders the worker counted from the co-purchase topic (its metric)."""
    status, body, _ = get(f"{worker.base_url}/metrics", TOKEN)
    assert status == 200
    return sum(
        s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "journeystream_copurchase_orders_total" and s.labels["outcome"] == "counted"
    )


def recommended(d: Any, customer_id: str) -> list[str]:
    """The products recommended after the customer's order (empty when none was sent)."""
    records = asyncio.run(read_topics(d.bootstrap, [d.names(topics.GOODS_FIND_PEOPLE)]))
    return [
        i["product_id"]
        for r in records
        if r.get("customer_key") == f"c:{customer_id}"
        and r.get("strategy") == "complements_after_purchase"
        for i in r["items"]
    ]


def test_two_workers_learn_one_copurchase_table_that_a_restart_keeps(deployment: Any) -> None:
    d = deployment(partitions=PARTITIONS, clock="event", experiment_holdout=0.0, api_token=TOKEN)
    workers = [d.start_worker(index=0), d.start_worker(index=1)]
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    teacher_parts, learner_parts = split(workers)
    ids = [f"cust-{i}" for i in range(400)]
    teachers = [c for c in ids if partition_of(c) in teacher_parts][:3]
    learners = [c for c in ids if partition_of(c) in learner_parts][:3]

    # before any teaching: a mug alone brings no saucer
    first = [order(learners[0], 0, "2026-11-02T09:00:00Z", "mug")]
    last = asyncio.run(produce(d.bootstrap, d.names, first, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    assert "saucer" not in recommended(d, learners[0])

    # three orders of mug and saucer, all on the first worker's partitions
    taught = [
        order(c, 1, f"2026-11-02T1{i}:00:00Z", "mug", "saucer") for i, c in enumerate(teachers)
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, taught, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    deadline = time.monotonic() + 30
    while counted(workers[1]) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert counted(workers[1]) >= 3, "the second worker never read the first one's orders"

    # the second worker's customer buys a mug alone: the saucer comes from the other's orders
    learn = [order(learners[1], 0, "2026-11-03T09:00:00Z", "mug")]
    last = asyncio.run(produce(d.bootstrap, d.names, learn, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    assert recommended(d, learners[1])[:1] == ["saucer"]

    # both workers restart: each rebuilds the counts from the co-purchase topic
    for w in workers:
        w.stop()
    d.workers.clear()
    workers = [d.start_worker(index=0), d.start_worker(index=1)]
    split(workers)
    deadline = time.monotonic() + 30
    while min(counted(w) for w in workers) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [counted(w) >= 4 for w in workers] == [True, True]  # the 3 lessons and 2 mugs alone
    after = [order(learners[2], 0, "2026-11-04T09:00:00Z", "mug")]
    last = asyncio.run(produce(d.bootstrap, d.names, after, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))
    assert recommended(d, learners[2])[:1] == ["saucer"]
