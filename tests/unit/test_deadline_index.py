"""The deadline index stays proportional to the keys with a deadline when deadlines move."""

from __future__ import annotations

from journey.customer import CustomerState
from streams.deadlines import COMPACT_MIN, DeadlineIndex

T0 = 1_793_610_000.0


def due_at(t: float) -> CustomerState:
    return CustomerState(recommend={"due": t})  # journey.customer.next_due reads it


def test_a_deadline_moved_on_every_event_leaves_no_pile_of_stale_entries() -> None:
    index = DeadlineIndex("event")
    index.track(0, b"c:early", due_at(T0 - 1))  # live throughout, below the moving one
    last = 10 * COMPACT_MIN
    for n in range(last + 1):  # a buyer's lapse moves later with each of their events
        index.track(0, b"c:buyer", due_at(T0 + n))
    assert len(index.heaps[0]) <= COMPACT_MIN + 1  # without compaction: 10 * COMPACT_MIN + 2
    assert index.earliest(0) == T0 - 1
    assert index.pop_due(0, T0 + last - 1) == [b"c:early"]
    assert index.pop_due(0, T0 + last) == [b"c:buyer"]  # once, at its latest due
    assert index.pop_due(0, float("inf")) == []


def test_compaction_keeps_every_live_deadline_in_order() -> None:
    index = DeadlineIndex("event")
    keys = [f"c:k{n:05d}".encode() for n in range(3 * COMPACT_MIN)]
    for n, key in enumerate(keys):
        index.track(1, key, due_at(T0 + n))
    for n, key in enumerate(keys[::2]):  # every other one moves later, leaving stale entries
        index.track(1, key, due_at(T0 + 10 * COMPACT_MIN + n))
    assert len(index.heaps[1]) < 4.5 * COMPACT_MIN  # compacted at least once
    popped = index.pop_due(1, float("inf"))
    assert sorted(popped) == sorted(keys) and len(popped) == len(keys)  # each live one, once
    assert popped[: 3 * COMPACT_MIN // 2] == keys[1::2]  # the unmoved ones first, by due
    assert popped[3 * COMPACT_MIN // 2 :] == keys[::2]
