"""The stalled-commit guard of `streams.transport.Consumer`: which partitions it reads again."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.transport import Consumer

STREAM = TP("t.events.page-view", 1)
OTHER = TP("t.events.page-view", 2)
CHANGELOG = TP("t-customers-changelog", 1)


def consumer_state(
    acked: dict[TP, list[int]],
    committed: dict[TP, int | None],
    in_flight: list[tuple[TP, int, bool]] = (),  # type: ignore[assignment]
) -> Any:
    """The bookkeeping `stuck_partitions` reads, as Faust's consumer keeps it."""
    messages = [SimpleNamespace(tp=tp, offset=off, acked=done) for tp, off, done in in_flight]
    return SimpleNamespace(
        _acked=defaultdict(list, acked),
        _committed_offset=defaultdict(lambda: None, committed),
        _unacked_messages=messages,
        _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"),
    )


def stuck(state: Any) -> dict[TP, tuple[int, int]]:
    return Consumer.stuck_partitions(state)


def test_acks_starting_past_committed_with_nothing_in_flight_are_stuck() -> None:
    state = consumer_state({STREAM: [4792, 4793, 4794]}, {STREAM: 4713})
    assert stuck(state) == {STREAM: (4713, 4792)}


def test_contiguous_acks_are_not_stuck() -> None:
    # Faust commits acks that start at committed or committed + 1
    state = consumer_state({STREAM: [4713, 4714], OTHER: [101, 102]}, {STREAM: 4713, OTHER: 100})
    assert stuck(state) == {}


def test_a_gap_still_being_processed_is_not_stuck() -> None:
    state = consumer_state(
        {STREAM: [4792, 4793]}, {STREAM: 4713}, in_flight=[(STREAM, 4750, False)]
    )
    assert stuck(state) == {}


def test_in_flight_messages_already_acked_or_elsewhere_do_not_count() -> None:
    state = consumer_state(
        {STREAM: [4792]},
        {STREAM: 4713},
        in_flight=[(STREAM, 4750, True), (OTHER, 4750, False), (STREAM, 4800, False)],
    )
    assert stuck(state) == {STREAM: (4713, 4792)}


def test_changelogs_and_partitions_without_commits_are_left_alone() -> None:
    state = consumer_state(
        {CHANGELOG: [500], STREAM: [300], OTHER: [7]}, {CHANGELOG: 10, STREAM: None}
    )
    assert stuck(state) == {}
