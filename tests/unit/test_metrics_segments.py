"""journeystream_customers without a page request: the rolling segment count over partitions."""

from __future__ import annotations

from collections import Counter

from streams.agents.operations import SegmentScan

# partition -> key -> stored value; the value here is the customer's segment (b"" for no journey)
State = dict[int, dict[bytes, bytes]]


def reader(state: State, calls: list[int] | None = None):
    """A partition store read in key order after a key, as the RocksDB slice read does."""

    def read(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        if calls is not None:
            calls.append(partition)
        keys = sorted(k for k in state[partition] if after is None or k > after)
        return [(k, state[partition][k]) for k in keys[:limit]]

    return read


def segment_of(raw: bytes) -> str | None:
    return raw.decode() or None


def customers(partition: int, **by_segment: int) -> dict[bytes, bytes]:
    return {
        f"c:{partition}-{segment}-{i}".encode(): segment.encode()
        for segment, n in by_segment.items()
        for i in range(n)
    }


def test_a_small_state_is_counted_whole_in_one_tick() -> None:
    state = {0: customers(0, new_visitor=3, customer=2), 1: customers(1, lapsed=4, new_visitor=1)}
    state[1][b"c:1-nojourney"] = b""
    totals = SegmentScan().tick([0, 1], reader(state), segment_of, limit=1000)
    assert totals == Counter(new_visitor=4, customer=2, lapsed=4)


def test_a_large_state_is_counted_over_ticks_and_follows_changes() -> None:
    state = {0: customers(0, new_visitor=7), 1: customers(1, customer=5), 2: {}}
    scan, read = SegmentScan(), reader(state)
    assert scan.tick([0, 1, 2], read, segment_of, limit=4) == Counter()  # 4 of partition 0
    assert scan.tick([0, 1, 2], read, segment_of, limit=4) == Counter(new_visitor=7)  # 3, then 1
    # 4 more of partition 1 fill the slice: its end is seen by the next read
    assert scan.tick([0, 1, 2], read, segment_of, limit=4) == Counter(new_visitor=7)
    assert scan.tick([0, 1, 2], read, segment_of, limit=4) == Counter(new_visitor=7, customer=5)
    state[0][b"c:0-new_visitor-0"] = b"returning_visitor"  # a segment changes between passes
    state[1][b"c:1-late"] = b"customer"
    for _ in range(6):  # a whole pass after the change (partition 0's pass had begun)
        totals = scan.tick([0, 1, 2], read, segment_of, limit=4)
    assert totals == Counter(new_visitor=6, returning_visitor=1, customer=6)


def test_a_revoked_partition_leaves_the_totals_at_once() -> None:
    state = {0: customers(0, customer=2), 1: customers(1, lapsed=3)}
    scan = SegmentScan()
    assert scan.tick([0, 1], reader(state), segment_of, 100) == Counter(customer=2, lapsed=3)
    assert scan.tick([1], reader(state), segment_of, 100) == Counter(lapsed=3)
    assert scan.tick([], reader(state), segment_of, 100) == Counter()


def test_empty_partitions_are_read_once_per_tick() -> None:
    calls: list[int] = []
    totals = SegmentScan().tick([3, 1, 2], reader({1: {}, 2: {}, 3: {}}, calls), segment_of, 50)
    assert totals == Counter() and sorted(calls) == [1, 2, 3]
