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
    assert (
        len(index.heaps[0]) == 2
    )  # one entry a key: a push per move would make 10 * COMPACT_MIN + 2
    assert index.earliest(0) == T0 - 1
    assert index.pop_due(0, T0 + last - 1) == [b"c:early"]
    assert index.pop_due(0, T0 + last) == [b"c:buyer"]  # once, at its latest due
    assert index.pop_due(0, float("inf")) == []


def test_compaction_keeps_every_live_deadline_in_order() -> None:
    index = DeadlineIndex("event")
    keys = [f"c:k{n:05d}".encode() for n in range(3 * COMPACT_MIN)]
    for n, key in enumerate(keys):
        index.track(1, key, due_at(T0 + n))
    for n, key in enumerate(keys[::2]):  # every other one moves earlier, leaving stale entries
        index.track(1, key, due_at(T0 - 10 * COMPACT_MIN + n))
    assert len(index.heaps[1]) < 4.5 * COMPACT_MIN  # compacted at least once
    popped = index.pop_due(1, float("inf"))
    assert sorted(popped) == sorted(keys) and len(popped) == len(keys)  # each live one, once
    assert popped[: 3 * COMPACT_MIN // 2] == keys[::2]  # the moved ones first, by due
    assert popped[3 * COMPACT_MIN // 2 :] == keys[1::2]


def test_deadlines_moved_later_fire_once_in_due_order_at_their_latest_time() -> None:
    index = DeadlineIndex("event")
    keys = [f"c:k{n:03d}".encode() for n in range(100)]
    for n, key in enumerate(keys):
        index.track(2, key, due_at(T0 + n))
    for n, key in enumerate(keys):  # each moves later, past every original deadline, reversed
        index.track(2, key, due_at(T0 + 1000 - n))
    assert len(index.heaps[2]) == 100  # still one entry a key
    assert index.pop_due(2, T0 + 899) == []  # the entries at the old times are pushed again
    assert index.earliest(2) == T0 + 901
    assert index.pop_due(2, T0 + 950) == keys[99:49:-1]  # by their latest due
    index.track(2, keys[0], due_at(T0 + 500))  # moves earlier than its entry: fires then
    assert index.pop_due(2, T0 + 960) == [keys[0], *keys[49:39:-1]]
    assert index.pop_due(2, float("inf")) == keys[39:0:-1]
    assert not index.queued and not index.due_of


def test_a_cleared_or_rebuilt_deadline_is_not_fired() -> None:
    index = DeadlineIndex("event")
    index.track(3, b"c:a", due_at(T0))
    index.track(3, b"c:b", due_at(T0 + 1))
    index.track(3, b"c:a", CustomerState())  # no deadline any more
    assert index.earliest(3) == T0 + 1
    assert index.pop_due(3, T0 + 5) == [b"c:b"]
    index.track(3, b"c:c", due_at(T0 + 10))
    index.rebuild(3, [])  # the partition's states hold no deadline
    index.track(3, b"c:c", due_at(T0 + 20))
    assert index.pop_due(3, T0 + 15) == []
    assert index.pop_due(3, T0 + 20) == [b"c:c"]
