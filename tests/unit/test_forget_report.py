"""What `journeystream forget` says it cannot delete (harness/forget.py)."""

from __future__ import annotations

import io

import pytest
from aiokafka.protocol.admin import DescribeConfigsResponse_v0, DescribeConfigsResponse_v1

from harness.forget import Report, describe_ms, kept_topics, parse_retention
from streams.topics import TopicNames

WEEK_MS = 7 * 86_400_000


def wire(response: object) -> object:
    """The response as aiokafka decodes it from the bytes a broker sends."""
    cls = type(response)
    return cls.decode(io.BytesIO(response.encode()))  # type: ignore[attr-defined]


def test_retention_from_a_v0_answer_as_decoded_off_the_wire() -> None:
    answer = DescribeConfigsResponse_v0(
        throttle_time_ms=0,
        resources=[
            (
                0,
                None,
                2,
                "journey.transitions",
                [("retention.ms", str(WEEK_MS), False, True, False)],
            ),
            (
                0,
                None,
                2,
                "journeystream.dead-letters",
                [("retention.ms", "-1", False, False, False)],
            ),
            (3, "unknown topic", 2, "gone", []),
        ],
    )
    assert parse_retention([wire(answer)]) == {
        "journey.transitions": WEEK_MS,
        "journeystream.dead-letters": -1,
    }


def test_retention_from_a_v1_answer_with_synonyms() -> None:
    answer = DescribeConfigsResponse_v1(
        throttle_time_ms=0,
        resources=[
            (
                0,
                None,
                2,
                "abandonment.events",
                [("retention.ms", "3600000", False, 1, False, [("retention.ms", "3600000", 1)])],
            )
        ],
    )
    assert parse_retention([wire(answer)]) == {"abandonment.events": 3_600_000}


@pytest.mark.parametrize(
    ("ms", "words"),
    [(WEEK_MS, "7 days"), (7_200_000, "2 hours"), (90_000, "90 s"), (-1, "unlimited")],
)
def test_retention_in_words(ms: int, words: str) -> None:
    assert describe_ms(ms) == words


def test_the_report_names_every_output_and_the_dead_letter_topic() -> None:
    names = TopicNames("shop.")
    kept = kept_topics(names)
    assert set(kept) == {
        "shop.journey.transitions",
        "shop.abandonment.events",
        "shop.recommend.goods-find-people",
        "shop.recommend.discount-triggers",
        "shop.recommend.decisions",
        "shop.journeystream.dead-letters",
    }
    retention: dict[str, int | None] = dict.fromkeys(kept)
    retention["shop.journey.transitions"] = WEEK_MS
    counts = dict.fromkeys(kept, 0)
    counts["shop.journey.transitions"] = 4
    counts["shop.journeystream.dead-letters"] = 1
    text = "\n".join(Report("c:<id>", retention, counts).lines(names))
    assert "shop.journey.transitions: retention 7 days, 4 records keyed c:<id>" in text
    assert (
        "shop.journeystream.dead-letters: retention not reported by the broker, 1 records" in text
    )
    assert "shop.events.order" in text and "shop.journeystream.internal" in text  # inputs too
    assert "a:<anonymous id>" in text


def test_without_counting_the_report_says_how_to_count() -> None:
    names = TopicNames()
    text = "\n".join(Report("a:<id>", dict.fromkeys(kept_topics(names)), None).lines(names))
    assert "records keyed" not in text and "--count" in text
