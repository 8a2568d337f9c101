"""How far a worker group has applied its inputs, read from the changelog as a restore would.

The positions stored with the customer state (`streams.tables.state`) are what a worker reads its
inputs from after a crash, a restore or a rebalance; the group's committed offsets only follow
them (and a broker may keep a commit of a worker that had lost the partition). Tools that wait
for the inputs to be processed (`process`, the tests) read the positions instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from harness.clients import Connection, connect
from streams import topics
from streams.recovery import confirmed_ends
from streams.tables.state import OWNER_KEY, POSITION_KEY, Position, header_owner


def changelog_name(app_id: str) -> str:
    """The customer table's changelog topic of an app id (Faust's naming)."""
    return f"{app_id}-customers-changelog"


class AppliedPositions:
    """Reads a customer changelog incrementally; `offsets()` is what a restore would resume from."""

    def __init__(self, bootstrap: str, changelog: str, **client: Any) -> None:
        self.bootstrap = bootstrap
        self.changelog = changelog
        self.client = client
        self.consumer: AIOKafkaConsumer | None = None
        self.tps: list[TopicPartition] = []
        self.owner: dict[int, bytes] = {}
        self.positions: dict[int, Position] = {}

    async def __aenter__(self) -> AppliedPositions:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, **self.client
        )
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(self.changelog) or set()
        self.tps = [TopicPartition(self.changelog, p) for p in sorted(parts)]
        if self.tps:
            self.consumer.assign(self.tps)
            await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def read(self) -> None:
        """Read the changelog up to its confirmed end."""
        assert self.consumer is not None
        if not self.tps:
            return
        ends = await confirmed_ends(self.bootstrap, self.tps, **self.client)
        while any([await self.consumer.position(tp) < ends[tp] for tp in self.tps]):
            batch = await self.consumer.getmany(timeout_ms=300, max_records=50_000)
            for tp, messages in batch.items():
                for m in messages:
                    self._apply(tp.partition, m.key, m.value, m.headers)

    def _apply(self, partition: int, key: bytes | None, value: bytes | None, headers: Any) -> None:
        if key == OWNER_KEY and value is not None:
            self.owner[partition] = value
        elif key == POSITION_KEY:
            token = header_owner(headers)
            owner = self.owner.get(partition)
            if token is None or owner is None or token == owner:
                position = Position.decode(value)
                if position is not None:
                    self.positions[partition] = position

    def offsets(self) -> dict[TopicPartition, int]:
        """Next offset to apply per input topic-partition (absent: nothing applied yet)."""
        return {
            TopicPartition(topic, p): offset
            for p, position in self.positions.items()
            for topic, offset in position.offsets.items()
        }


async def wait_applied(
    broker: str | Connection,
    app_id: str,
    targets: Mapping[TopicPartition, int],
    timeout: float,
) -> None:
    """Wait until the app has applied each target offset (target = last offset produced).

    The catalog topic is not the customer agent's: its progress is the group's commits.
    `broker`: a bootstrap string (plaintext) or a Connection with its TLS/SASL options.
    """
    from harness.process import wait_committed  # the harness module imports this one

    conn = connect(broker)
    catalog = {tp: off for tp, off in targets.items() if tp.topic.endswith(topics.CATALOG)}
    if catalog:
        await wait_committed(conn, app_id, catalog, timeout)
    targets = {tp: off for tp, off in targets.items() if tp not in catalog}
    deadline = time.monotonic() + timeout
    changelog = changelog_name(app_id)
    async with AppliedPositions(conn.bootstrap, changelog, **conn.options) as applied:
        while True:
            await applied.read()
            done = applied.offsets()
            missing = {tp: off for tp, off in targets.items() if done.get(tp, 0) < off + 1}
            if not missing:
                return
            if time.monotonic() > deadline:
                behind = {
                    f"{tp.topic}[{tp.partition}]": (done.get(tp), off)
                    for tp, off in missing.items()
                }
                raise TimeoutError(f"not applied up to the last offset (applied, last): {behind}")
            await asyncio.sleep(0.2)


async def wait_settled(
    broker: str | Connection, app_id: str, tps: Iterable[TopicPartition], timeout: float
) -> None:
    """Wait until the app has applied `tps` to their ends and the ends stopped moving."""
    conn = connect(broker)
    tps = list(tps)
    deadline = time.monotonic() + timeout
    stable, previous = 0, None
    changelog = changelog_name(app_id)
    async with AppliedPositions(conn.bootstrap, changelog, **conn.options) as applied:
        while stable < 3:
            ends = await confirmed_ends(conn.bootstrap, tps, **conn.options) if tps else {}
            await applied.read()
            done = applied.offsets()
            caught_up = all(done.get(tp, 0) >= end for tp, end in ends.items())
            stable = stable + 1 if caught_up and ends == previous else 0
            previous = ends
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not settle: ends {ends}, applied {done}")
            await asyncio.sleep(0.3)
