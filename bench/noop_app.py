"""The Faust ceiling: a no-op agent on journeystream's input channel, transport and tuning.

Run as ``python -m bench.noop_app`` with the same JOURNEYSTREAM_* variables as a worker. It
reads the same topics (the four input topics and the internal topic, raw bytes) in batches
with ``stream.take_events(batch_max_events, within=batch_within_s)`` and does nothing with
them, through journeystream's transport subclass (`streams.compat.Transport`) and the
same consumer, producer and commit settings as `streams.app.create_app`. No table.

With BENCH_FAUST_STOCK=1 it runs Faust's own consumer drain loop and `Stream.take_events`
instead of journeystream's (`streams.compat.Consumer._drain_messages`,
`streams.compat.BatchingStream`); only the fetch wait stays journeystream's (Faust's
hard-coded 1.5 s would time the broker, not Faust). That is the stock Faust ceiling.

`/ready` answers 200 like the worker's (assigned, not rebalancing, recovery complete). With
BENCH_EXPECTED and BENCH_RESULT set it also times itself: first batch to the batch that
brings the count to BENCH_EXPECTED, written as JSON to BENCH_RESULT.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from faust import web
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import compat, topics
from streams.assembly import create_app
from streams.settings import Settings
from streams.topics import TopicNames

settings = Settings.from_env()
names = TopicNames(settings.topic_prefix)
STOCK = os.environ.get("BENCH_FAUST_STOCK") == "1"


class StockConsumer(faust_aiokafka.Consumer):
    """Faust's own aiokafka consumer, drain loop included; only the fetch wait is ours."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return compat.ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class StockTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with StockConsumer."""

    Consumer = StockConsumer


# the worker's own Faust options and transport (streams.assembly), minus tables and agents
stock = {"Stream": faust.Stream} if STOCK else {}
app = create_app(settings, store="memory://", autodiscover=False, origin=None, **stock)
if STOCK:
    app.transport_class = StockTransport

input_channel = app.topic(
    *names.inputs(),
    names(topics.INTERNAL),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)

EXPECTED = int(os.environ.get("BENCH_EXPECTED", "0"))
RESULT = os.environ.get("BENCH_RESULT", "")
seen = {"count": 0, "first": 0.0, "batches": 0}


@app.agent(input_channel, name="noop")
async def noop(stream: Any) -> None:
    """Take batches and do nothing (count them for the self-timing)."""
    # the raised ceiling takes records as the customer agent does (streams.compat.Delivered)
    direct = {} if STOCK else {"direct": True}
    async for batch in stream.take_events(
        settings.batch_max_events, within=settings.batch_within_s, **direct
    ):
        if not seen["count"]:
            seen["first"] = time.monotonic()
        seen["count"] += len(batch)
        seen["batches"] += 1
        if EXPECTED and RESULT and seen["count"] >= EXPECTED > seen["count"] - len(batch):
            elapsed = time.monotonic() - seen["first"]
            Path(RESULT).write_bytes(
                orjson.dumps(
                    {"events": seen["count"], "seconds": elapsed, "batches": seen["batches"]}
                )
            )


@app.page("/ready")
class Ready(web.View):
    """200 once partitions are assigned and recovery is complete (like the worker's)."""

    async def get(self, request: web.Request) -> web.Response:
        """Readiness."""
        recovery = app.tables.recovery
        ok = (
            not app.rebalancing
            and bool(app.consumer.assignment())
            and recovery.completed.is_set()
            and not recovery.in_recovery
        )
        return self.json({"ready": ok}, status=200 if ok else 503)


def main() -> None:
    """Faust's worker command for this app."""
    sys.argv = [
        "bench-noop",
        "worker",
        "--loglevel",
        settings.log_level,
        "--web-port",
        str(settings.web_port),
        "--web-bind",
        settings.web_host,
        "--web-host",
        settings.web_host,
    ]
    app.main()


if __name__ == "__main__":
    main()
