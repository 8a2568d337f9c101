"""Quix Streams on the same input: count per customer (RocksDB read-modify-write) or stateless.

Run as ``python -m bench.quix_app`` with BENCH_BOOTSTRAP, BENCH_TOPIC, BENCH_GROUP,
BENCH_STATE_DIR, BENCH_STATEFUL (1: ``state.get``/``state.set`` of a count per message key,
the customer key; 0: decode only), BENCH_COMMIT_INTERVAL_S, BENCH_FETCH_MAX_WAIT_MS, and
optionally BENCH_EXPECTED/BENCH_RESULT for self-timing (first message to the last expected one,
written as JSON). Values are decoded as JSON, as journeystream decodes every event. Tansu does not
report the topic's ``retention.ms``, which Quix needs for its changelog topics: it is set to
-1 (infinite) on Quix's copy of the topic config.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State

EXPECTED = int(os.environ.get("BENCH_EXPECTED", "0"))
RESULT = os.environ.get("BENCH_RESULT", "")
seen = {"count": 0, "first": 0.0}


def _tick() -> None:
    if not seen["count"]:
        seen["first"] = time.monotonic()
    seen["count"] += 1
    if EXPECTED and RESULT and seen["count"] == EXPECTED:
        elapsed = time.monotonic() - seen["first"]
        Path(RESULT).write_bytes(orjson.dumps({"events": seen["count"], "seconds": elapsed}))


def count(value: Any, state: State) -> int:
    """Read-modify-write of the customer's count."""
    n = int(state.get("count", 0)) + 1
    state.set("count", n)
    _tick()
    return n


def touch(value: Any) -> Any:
    """Stateless: the decoded value passes through."""
    _tick()
    return value


def main() -> None:
    """Build the application from BENCH_* variables and run until SIGTERM."""
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ["BENCH_STATE_DIR"],
        commit_interval=float(os.environ.get("BENCH_COMMIT_INTERVAL_S", "1.0")),
        consumer_extra_config={
            "fetch.wait.max.ms": int(os.environ.get("BENCH_FETCH_MAX_WAIT_MS", "50")),
            # journeystream's consumer timing (librdkafka's 45 s default slows the first join)
            "session.timeout.ms": int(os.environ.get("BENCH_SESSION_TIMEOUT_MS", "6000")),
            "heartbeat.interval.ms": int(os.environ.get("BENCH_HEARTBEAT_MS", "1000")),
        },
        loglevel=os.environ.get("BENCH_LOGLEVEL", "WARNING"),
    )
    topic = app.topic(
        os.environ["BENCH_TOPIC"], key_deserializer="bytes", value_deserializer="json"
    )
    # Tansu 0.6's DescribeConfigs has no retention.ms, which Quix needs to derive the
    # changelog topic's config (KeyError 'retention.ms'); infinite, as Tansu's memory storage is
    topic.broker_config.extra_config.setdefault("retention.ms", "-1")
    sdf = app.dataframe(topic)
    if os.environ.get("BENCH_STATEFUL", "1") == "1":
        sdf = sdf.apply(count, stateful=True)
    else:
        sdf = sdf.apply(touch)
    app.run()


if __name__ == "__main__":
    main()
