"""Durable deadlines: an in-memory index ordered by due time over state kept in the table.

Deadlines live in each customer's state (changelogged). Per partition this module keeps a heap
of (due, key), filled as states are written and rebuilt from the partition's RocksDB after an
assignment. Firing happens inside stream iteration on the owning partition: after each batch,
and, for partitions with nothing to read, through a `tick` control message the timer sends to
that partition of the internal topic. Time per partition is event time (replay) or event time
plus wall-clock progress (live).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Any

import orjson

from journey import customer as customer_core
from journey.customer import CustomerState
from streams.clock import Clock

COMPACT_MIN = 1024  # heap entries of a partition before stale ones are first compacted away


class DeadlineIndex:
    """Per-partition heaps of (due, customer key), with at most one live entry per key.

    A deadline that moves later keeps its heap entry: when the entry reaches the top it is
    pushed again at the key's current due time (`queued` holds each key's live entry). The
    win-back lapse (`recommend.reengage`) and the browse deadline move on every event of a
    customer, so a push per event would make the heap work per event, not per deadline. A
    deadline that moves earlier gets a new entry (the old one is then skipped); a heap whose
    size passes twice its size after the last compaction (at least `COMPACT_MIN`) is rebuilt
    from its live entries.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.heaps: dict[int, list[tuple[float, bytes]]] = defaultdict(list)
        self.compact_at: dict[int, int] = {}
        self.due_of: dict[bytes, float] = {}  # each key's current earliest deadline
        self.queued: dict[bytes, float] = {}  # each key's live heap entry (never after due_of)
        self.clocks: dict[int, Clock] = {}
        self.ticking: set[int] = set()

    def clock(self, partition: int) -> Clock:
        """The processing clock of a partition."""
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = Clock(self.mode)
        return clock

    def track(self, partition: int, key: bytes, state: CustomerState) -> None:
        """Record a state's earliest deadline (after apply or fire)."""
        due = customer_core.next_due(state)
        if due is None:
            self.due_of.pop(key, None)
            return
        if self.due_of.get(key) == due:
            return
        self.due_of[key] = due
        queued = self.queued.get(key)
        if queued is not None and queued <= due:
            return  # the entry, when it reaches the top, is pushed again at `due`
        self.queued[key] = due
        heap = self.heaps[partition]
        heapq.heappush(heap, (due, key))
        if len(heap) > self.compact_at.get(partition, COMPACT_MIN):
            self.compact(partition)

    def compact(self, partition: int) -> None:
        """Rebuild a partition's heap from its live entries (one per key with a deadline)."""
        heap = self.heaps[partition]
        live = sorted(
            {
                (self.due_of[key], key)
                for due, key in heap
                if self.queued.get(key) == due and key in self.due_of
            }
        )
        for _, key in heap:
            self.queued.pop(key, None)
        for due, key in live:
            self.queued[key] = due
        self.heaps[partition] = live  # a sorted list is a heap
        self.compact_at[partition] = max(COMPACT_MIN, 2 * len(live))

    def _top(self, heap: list[tuple[float, bytes]]) -> tuple[float, bytes] | None:
        """The heap's first entry that is live and at its key's due time (others moved on)."""
        while heap:
            due, key = heap[0]
            if self.queued.get(key) != due:
                heapq.heappop(heap)  # superseded by an earlier entry of the key
                continue
            current = self.due_of.get(key)
            if current is None:
                heapq.heappop(heap)  # no deadline any more
                del self.queued[key]
                continue
            if current != due:  # moved later: pushed again at its due time
                heapq.heapreplace(heap, (current, key))
                self.queued[key] = current
                continue
            return due, key
        return None

    def pop_due(self, partition: int, now: float) -> list[bytes]:
        """Keys of a partition whose deadline is due at `now` (each once, in due order)."""
        heap = self.heaps.get(partition)
        keys: list[bytes] = []
        if not heap or heap[0][0] > now:
            return keys
        while (top := self._top(heap)) is not None and top[0] <= now:
            key = heapq.heappop(heap)[1]
            del self.queued[key]
            del self.due_of[key]
            keys.append(key)
        return keys

    def earliest(self, partition: int) -> float | None:
        """The earliest live due time of a partition."""
        heap = self.heaps.get(partition)
        top = self._top(heap) if heap else None
        return None if top is None else top[0]

    def rebuild(self, partition: int, items: Any) -> int:
        """Rebuild a partition's heap from (key, stored bytes) pairs; return deadlines found."""
        for _, key in self.heaps.get(partition, ()):
            self.queued.pop(key, None)
        self.heaps[partition] = []
        found = 0
        for key, raw in items:
            if not isinstance(key, bytes) or key.startswith(b"__faust"):
                continue
            try:
                state = CustomerState.from_dict(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            before = len(self.heaps[partition])
            self.due_of.pop(key, None)
            self.queued.pop(key, None)
            self.track(partition, key, state)
            found += len(self.heaps[partition]) - before
        return found

    def forget(self, partitions: set[int]) -> None:
        """Drop revoked partitions."""
        for p in partitions:
            for _, key in self.heaps.pop(p, []):
                self.due_of.pop(key, None)
                self.queued.pop(key, None)
            self.compact_at.pop(p, None)
            self.ticking.discard(p)
