"""Bad-input fuzzing: 10,000 malformed messages mixed into valid traffic.

Every malformed message must reach the dead-letter topic with the category it was built to
trigger (matched by its exact topic/partition/offset), the worker must neither crash nor log a
traceback, and the valid traffic's journeys must equal the reference computed without them.
Valid events carry SQL and HTML in their strings: that is data, processed like any other.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from harness.applied import wait_applied
from harness.process import read_topics, wire_key
from journey.config import JourneyConfig
from streams import topics
from tests.reliability.reference import journey_reference
from tests.reliability.report import write_section
from tests.reliability.scenarios import latest_changelog

pytestmark = [pytest.mark.broker, pytest.mark.reliability]
BAD = 10_000
VALID = 5_000
NOW = datetime.now(UTC).timestamp()


def when(offset_s: float) -> str:
    return datetime.fromtimestamp(NOW + offset_s, UTC).isoformat()


def valid_event(i: int, rng: random.Random) -> dict[str, Any]:
    text = rng.choice(["'; DROP TABLE customers; --", "<script>alert(1)</script>", "plain"])
    return {
        "type": "page_view",
        "event_id": f"ok-{i}",
        "occurred_at": when(-3600 + i * 0.5),
        "customer_id": f"v{rng.randrange(500)}",
        "product_id": f"p{rng.randrange(50)}",
        "category": "home/kitchen",
        "price": 10.0 + i % 7,
        "title": text,
        "brand": text,
    }


def bad_message(i: int, rng: random.Random) -> tuple[bytes, str]:
    """A malformed message and the dead-letter category it must get."""
    good = orjson.dumps(valid_event(10_000_000 + i, rng))
    kind = i % 10
    if kind == 0:
        return good[: rng.randrange(1, len(good) - 1)], "not_json"  # truncated JSON
    if kind == 1:
        return good.replace(b"home/kitchen", b"home/\xff\xfekitchen"), "not_utf8"
    if kind == 2:
        return orjson.dumps([1, 2, 3]), "not_object"
    if kind == 3:
        return orjson.dumps({**orjson.loads(good), "type": "teleport"}), "unknown_type"
    if kind == 4:
        return orjson.dumps({**orjson.loads(good), "price": "ten"}), "schema_violation"
    if kind == 5:
        obj = orjson.loads(good)
        obj["customer_id"] = rng.choice(["0", "-1", "null", "anonymous", ""])
        return orjson.dumps(obj), "missing_identity"
    if kind == 6:
        return orjson.dumps({**orjson.loads(good), "price": -rng.uniform(1, 99)}), "negative_value"
    if kind == 7:
        return orjson.dumps({**orjson.loads(good), "occurred_at": when(86400 * 365)}), "future_time"
    if kind == 8:
        return orjson.dumps({**orjson.loads(good), "occurred_at": "1970-01-02T00:00:00+00:00"}), (
            "schema_violation"
        )
    if i % 100 == 9:  # a few huge payloads (over 64 KiB)
        return orjson.dumps({**orjson.loads(good), "title": "x" * 70_000}), "too_large"
    return good.replace(b'"event_id"', b'"evnt_id"'), "schema_violation"  # missing event_id


async def send_all(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Produce (key, value) pairs; return each message's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        return [(md.partition, md.offset) for md in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def test_ten_thousand_malformed_messages_all_dead_lettered(deployment: Any) -> None:
    d = deployment(partitions=4)
    worker = d.start_worker()
    rng = random.Random(3)
    valid = [valid_event(i, rng) for i in range(VALID)]
    bad = [bad_message(i, rng) for i in range(BAD)]
    mixed: list[tuple[bytes, bytes, str | None]] = [
        (wire_key(e), orjson.dumps(e), None) for e in valid
    ]
    for value, category in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (b"c:v1", value, category))

    topic = d.names(topics.PAGE_VIEW)
    placed = asyncio.run(send_all(d.bootstrap, topic, [(k, v) for k, v, _ in mixed]))
    last: dict[Any, int] = {}
    for partition, offset in placed:
        tp = TopicPartition(topic, partition)
        last[tp] = max(last.get(tp, -1), offset)
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 180))

    expected = {
        (partition, offset): (category, value)
        for (partition, offset), (_, value, category) in zip(placed, mixed, strict=True)
        if category is not None
    }
    letters = asyncio.run(read_topics(d.bootstrap, [d.names(topics.DEAD_LETTERS)]))
    got = {(r["source"]["partition"], r["source"]["offset"]): r for r in letters}
    assert len(letters) == len(got) == BAD  # each once, no extra
    wrong = []
    for where, (category, value) in expected.items():
        record = got.get(where)
        if record is None or record["category"] != category:
            wrong.append((where, category, record and record["category"]))
        elif base64.b64decode(record["original_b64"]) != value:
            wrong.append((where, "original bytes differ", None))
    assert not wrong, f"{len(wrong)} wrong, e.g. {wrong[:5]}"

    assert worker.alive()
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    for key in ("DROP TABLE", "<script>"):
        assert key not in log  # payloads are never logged

    expected_journeys, _ = journey_reference(valid, JourneyConfig())
    latest = asyncio.run(latest_changelog(d.bootstrap, f"{d.settings.app_id}-customers-changelog"))
    actual = {k: v["journey"] for k, v in latest.items() if v.get("journey")}
    assert actual == expected_journeys
    by_category = Counter(r["category"] for r in letters)
    rows = "".join(f"| {c} | {n} |\n" for c, n in sorted(by_category.items()))
    write_section(
        "Bad input",
        f"{BAD} malformed messages mixed into {VALID} valid page views (with SQL and HTML in\n"
        "their strings) on one topic; every malformed one is in the dead-letter topic once, with\n"
        "the category it was built to trigger and its original bytes; the worker never crashed\n"
        "or logged a traceback or payload; valid journeys equal the reference.\n\n"
        f"| dead-letter category | count |\n|---|---|\n{rows}",
    )
