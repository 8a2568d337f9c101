"""`journeystream forget`: the request to the workers, and what it cannot delete.

The workers delete a customer's state (tombstones in the changelog). Records already published
stay where they are: a Kafka topic cannot be rewritten, so the output and dead-letter topics (and
the input and internal topics the events came through) keep their copies until the topics'
retention removes them. The report names those topics, their retention when the broker reports
it, and, when asked, how many records keyed by the customer each holds (read up to the ends seen
at the start, so the reading is bounded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from harness.clients import Connection
from harness.process import produce_raw
from streams import topics
from streams.recovery import confirmed_ends
from streams.topics import TopicNames

RETENTION = "retention.ms"
DESCRIBE_TIMEOUT_S = 5.0


async def send_forget(conn: Connection, names: TopicNames, key: bytes) -> str:
    """Ask the workers to forget the customer `key`; the internal topic it went to."""
    topic = names(topics.INTERNAL)
    body = orjson.dumps({"type": "internal", "kind": "forget"})
    await produce_raw(conn, [(topic, key, body, None)])
    return topic


def kept_topics(names: TopicNames) -> list[str]:
    """The topics whose records about a customer forget cannot delete: outputs, dead letters."""
    return names.outputs()


async def retention_ms(conn: Connection, names: Sequence[str]) -> dict[str, int | None]:
    """retention.ms per topic as the broker reports it (None: not reported; -1: unlimited)."""
    found: dict[str, int | None] = {name: None for name in names}
    admin = conn.admin()
    try:
        await asyncio.wait_for(admin.start(), DESCRIBE_TIMEOUT_S)
        wanted = [ConfigResource(ConfigResourceType.TOPIC, n, {RETENTION: None}) for n in names]
        responses = await asyncio.wait_for(admin.describe_configs(wanted), DESCRIBE_TIMEOUT_S)
        found.update(parse_retention(responses))
    except (KafkaError, TimeoutError, OSError):
        return found  # a broker without DescribeConfigs (Tansu 0.6 closes the connection)
    finally:
        await admin.close()
    return found


def parse_retention(responses: Iterable[Any]) -> dict[str, int | None]:
    """retention.ms per topic from DescribeConfigs responses (-1: unlimited)."""
    found: dict[str, int | None] = {}
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if error_code:
                continue
            for entry in entries:
                if entry[0] == RETENTION and entry[1] is not None:
                    found[name] = int(entry[1])
    return found


async def count_keyed(
    conn: Connection, names: Sequence[str], key: bytes, timeout: float = 120.0
) -> dict[str, int]:
    """Records keyed `key` per topic, reading each partition up to its end at the start."""
    counts = {name: 0 for name in names}
    consumer = conn.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        ends = await confirmed_ends(conn.bootstrap, tps, **conn.options) if tps else {}
        todo = [tp for tp in tps if ends[tp] > 0]
        if not todo:
            return counts
        consumer.assign(todo)
        await consumer.seek_to_beginning(*todo)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"counting stopped after {timeout:g} s")
            batch = await consumer.getmany(*todo, timeout_ms=300, max_records=10_000)
            for tp, messages in batch.items():
                counts[tp.topic] += sum(1 for m in messages if m.offset < ends[tp] and m.key == key)
            todo = [tp for tp in todo if await consumer.position(tp) < ends[tp]]
    finally:
        await consumer.stop()
    return counts


@dataclass(frozen=True)
class Report:
    """What forget could not delete, for the operator."""

    shown_key: str  # the key with the id masked: c:<id>
    retention: dict[str, int | None]
    counts: dict[str, int] | None = None

    def lines(self, names: TopicNames) -> list[str]:
        """The statement, one line per topic; the customer id itself is never printed."""
        out = [
            "not deleted: records already published about this customer stay on these topics "
            "until the topic's retention removes them (a topic cannot be rewritten):"
        ]
        for topic, ms in self.retention.items():
            kept = "retention " + (
                describe_ms(ms) if ms is not None else "not reported by the broker"
            )
            if self.counts is not None:
                kept += f", {self.counts.get(topic, 0)} records keyed {self.shown_key}"
            out.append(f"  {topic}: {kept}")
        if self.counts is None:
            out.append("  (--count reads them up to their current end and counts this key)")
        inputs = ", ".join([*names.inputs(), names(topics.INTERNAL)])
        out.append(
            f"also kept: the events as sent, on {inputs}, until their retention; records "
            "published under anonymous ids merged into this customer are keyed a:<anonymous id>"
        )
        return out


def describe_ms(ms: int) -> str:
    """A retention in words: days, hours or seconds (negative: unlimited)."""
    if ms < 0:
        return "unlimited"
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:g} s"
