"""Partition ends that do not trust the broker's ListOffsets answer.

Tansu 0.6.0 can report a partition's end (ListOffsets) short of the real log end after
concurrent produce requests, and keeps reporting it; its fetch responses carry the right high
watermark. A changelog restore that stops at the reported end loses the last updates. Here an
end is confirmed by fetching from just before the reported end: the fetch's high watermark, and
the last offset it returned, are taken when they are further.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition


async def confirmed_ends(
    bootstrap: str,
    tps: Iterable[TopicPartition],
    reported: Mapping[TopicPartition, int] | None = None,
    *,
    timeout: float = 5.0,
    **client_options: object,
) -> dict[TopicPartition, int]:
    """The real end offset (last offset + 1) of each partition, confirmed by a fetch."""
    tps = list(tps)
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        **client_options,
    )
    await consumer.start()
    try:
        ends = dict(reported) if reported is not None else await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(ends.get(tp, 0) - 1, 0))
        pending = set(tps)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=200, max_records=10_000)
            for tp, messages in batch.items():
                if messages:
                    ends[tp] = max(ends.get(tp, 0), messages[-1].offset + 1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue  # no fetch response for this partition yet
                ends[tp] = max(ends.get(tp, 0), highwater)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        if pending:
            raise TimeoutError(f"could not confirm the end of {sorted(pending)}")
        return {tp: ends.get(tp, 0) for tp in tps}
    finally:
        await consumer.stop()
