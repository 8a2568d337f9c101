"""Bounded, hour-bucketed memory of applied event ids (journey.dedupe)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from journey.config import JourneyConfig
from journey.dedupe import SeenEvents, absorb, seen_before

H = 3600.0
T0 = 1_700_000_000.0 - (1_700_000_000.0 % H)  # on an hour boundary: hour 472222
CFG = JourneyConfig()


def test_first_time_then_duplicate() -> None:
    seen = SeenEvents()
    assert seen_before(seen, "a", T0, CFG) is False
    assert seen_before(seen, "a", T0, CFG) is True
    assert seen_before(seen, "b", T0, CFG) is False
    assert seen.total == 2
    assert seen.buckets == {472222: {"a": None, "b": None}}


def test_a_restamped_duplicate_is_still_caught() -> None:
    seen = SeenEvents()
    seen_before(seen, "a", T0, CFG)
    assert seen_before(seen, "a", T0 + 5 * H, CFG) is True
    assert seen.total == 1


def test_buckets_behind_the_window_are_dropped() -> None:
    seen = SeenEvents()
    seen_before(seen, "h0", T0, CFG)
    seen_before(seen, "h1", T0 + H, CFG)
    seen_before(seen, "h25", T0 + 25 * H, CFG)  # keeps hours 1..25 (24 behind the newest)
    assert sorted(seen.buckets) == [472223, 472247]
    assert seen.total == 2
    assert seen_before(seen, "h1", T0 + H, CFG) is True
    # h0 is forgotten, and too old to be remembered again
    assert seen_before(seen, "h0", T0, CFG) is False
    assert seen_before(seen, "h0", T0, CFG) is False
    assert seen.total == 2


def test_window_is_configurable() -> None:
    cfg = JourneyConfig(dedupe_window_s=2 * H)
    seen = SeenEvents()
    seen_before(seen, "a", T0, cfg)
    seen_before(seen, "b", T0 + 2 * H, cfg)
    assert seen_before(seen, "a", T0, cfg) is True
    seen_before(seen, "c", T0 + 3 * H, cfg)
    assert "a" not in seen
    assert seen.total == 2


def test_cap_drops_oldest_buckets_first() -> None:
    cfg = JourneyConfig(dedupe_max_ids=5)
    seen = SeenEvents()
    for hour, ids in [(2, "ef"), (0, "ab"), (1, "cd")]:
        for i in ids:
            seen_before(seen, i, T0 + hour * H, cfg)
    # six ids > five: hour 0 (a, b) went as a whole
    assert seen.total == 4
    assert sorted(seen.buckets) == [472223, 472224]
    assert [i for i in "abcdef" if i in seen] == ["c", "d", "e", "f"]


def test_cap_trims_a_single_bucket_oldest_first() -> None:
    cfg = JourneyConfig(dedupe_max_ids=3)
    seen = SeenEvents()
    for i in "wxyz":
        seen_before(seen, i, T0, cfg)
    assert seen.total == 3
    assert list(seen.buckets[472222]) == ["x", "y", "z"]


def test_round_trip_and_empty() -> None:
    seen = SeenEvents()
    for i, t in enumerate([T0, T0 + H, T0 + 2.5 * H]):
        seen_before(seen, f"id{i}", t, CFG)
    data = orjson.loads(orjson.dumps(seen.to_dict()))
    assert data == {
        "newest": 472224,
        "buckets": [[472222, ["id0"]], [472223, ["id1"]], [472224, ["id2"]]],
    }
    back = SeenEvents.from_dict(data)
    assert back == seen
    assert seen_before(back, "id1", T0, CFG) is True
    assert SeenEvents.from_dict(None) == SeenEvents()
    assert SeenEvents.from_dict({}) == SeenEvents()


def test_absorb_unions_memories() -> None:
    a, b = SeenEvents(), SeenEvents()
    seen_before(a, "x", T0, CFG)
    seen_before(b, "y", T0 + H, CFG)
    seen_before(b, "x", T0, CFG)
    absorb(a, b, CFG)
    assert a.total == 2
    assert "x" in a and "y" in a


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghijklmnop"), st.integers(min_value=0, max_value=80)),
        max_size=200,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_invariants(pairs: list[tuple[str, int]], cap: int) -> None:
    cfg = JourneyConfig(dedupe_max_ids=cap, dedupe_window_s=10 * H)
    seen = SeenEvents()
    for event_id, hour in pairs:
        first = seen_before(seen, event_id, T0 + hour * H, cfg)
        if first:
            assert event_id in seen
        assert seen.total == sum(len(ids) for ids in seen.buckets.values()) <= cap
        assert seen.newest is not None
        assert all(seen.newest - 10 <= h <= seen.newest for h in seen.buckets)
        all_ids = [i for ids in seen.buckets.values() for i in ids]
        assert len(all_ids) == len(set(all_ids))
