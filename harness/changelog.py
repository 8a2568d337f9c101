"""Read a customer changelog as a restore would: what every partition holds (`process --kpis`).

The latest value of each customer key, without the writes of a worker that had lost the
partition (after the new owner's marker), tombstoned keys or the reserved `__faust` keys
(`streams.tables.state.restored`). The end of each partition is confirmed by a fetch, not taken
from the broker's ListOffsets answer alone (`streams.recovery.confirmed_ends`).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.recovery import confirmed_ends
from streams.tables.outbox import state_of
from streams.tables.state import restored

PARTITIONS = 4


async def latest_changelog(
    bootstrap: str,
    topic: str,
    partitions: int = PARTITIONS,
    confirm_timeout: float = 5.0,
    **client: Any,
) -> dict[str, dict[str, Any]]:
    """What a restore of each changelog partition yields (`streams.tables.state.restored`).

    The latest state of each customer key (its outbox left out), without the writes of a worker
    that had lost the partition (after the new owner's marker), tombstoned keys or the reserved
    `__faust` keys.
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await confirmed_ends(bootstrap, tps, timeout=confirm_timeout, **client)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **client)
    await consumer.start()
    records: dict[TopicPartition, list[tuple[bytes, bytes | None, Any]]] = {tp: [] for tp in tps}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, msgs in batch.items():
                records[tp].extend((m.key or b"", m.value, m.headers) for m in msgs)
    finally:
        await consumer.stop()
    return {
        key.decode(): state_of(orjson.loads(value))
        for tp in tps
        for key, value in restored(records[tp]).items()
    }
