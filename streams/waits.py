"""`streams.applied`'s waits over a Connection: `process` on a broker with TLS/SASL.

The same checks as `streams.applied.wait_applied` and `wait_settled` (which build plaintext
clients from a bootstrap string); every client here carries the connection's security options.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from aiokafka import TopicPartition

from streams import topics
from streams.applied import AppliedPositions, changelog_name
from streams.clients import Connection
from streams.process import wait_committed
from streams.recovery import confirmed_ends


async def wait_applied(
    conn: Connection, app_id: str, targets: Mapping[TopicPartition, int], timeout: float
) -> None:
    """Wait until the app has applied each target offset (the catalog: the group's commits)."""
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
    conn: Connection, app_id: str, tps: Iterable[TopicPartition], timeout: float
) -> None:
    """Wait until the app has applied `tps` to their ends and the ends stopped moving."""
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
