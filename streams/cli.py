"""The `journeystream` command: broker, worker, process, replay, demo."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import time
from pathlib import Path


def _broker(args: argparse.Namespace) -> int:
    from streams.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, storage=args.storage).start()
    print(f"journeystream broker: {broker.url} (log {broker.log_path}); Ctrl-C stops it")
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and broker.alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.embedded_broker:
        from streams.broker import EmbeddedBroker

        broker = EmbeddedBroker().start()
        atexit.register(broker.stop)  # Faust's worker exits the process through SystemExit
        os.environ["JOURNEYSTREAM_BROKER"] = broker.url
        print(f"journeystream: embedded broker at {broker.url}", file=sys.stderr)
    from streams.app import app, settings

    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "--web-port",
        str(settings.web_port),
        "--web-bind",
        settings.web_host,
        "--web-host",
        settings.advertised_host or settings.web_host,
    ]
    sys.argv = ["journeystream", *argv]
    app.main()  # Faust's worker command; runs until stopped and exits the process


def _process(args: argparse.Namespace) -> int:
    from streams.process import process_file

    summary = process_file(
        Path(args.file),
        fmt=args.format,
        output=Path(args.output),
        mapping=args.mapping,
        partitions=args.partitions,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(summary.describe())
    return 0


def _replay(args: argparse.Namespace) -> int:
    from streams.process import replay_file

    sent = replay_file(
        Path(args.file),
        fmt=args.format,
        bootstrap=args.bootstrap,
        mapping=args.mapping,
        speed=args.speed,
        progress=not args.quiet,
    )
    print(f"replayed {sent} events")
    return 0


def _forget(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from streams import topics
    from streams.process import produce_raw
    from streams.settings import Settings
    from streams.topics import TopicNames

    settings = Settings.from_env()
    prefix = "a:" if args.anonymous else "c:"
    key = f"{prefix}{args.customer_id}".encode()
    body = orjson.dumps({"type": "internal", "kind": "forget"})
    topic = TopicNames(settings.topic_prefix)(topics.INTERNAL)
    asyncio.run(produce_raw(settings.bootstrap_servers, [(topic, key, body, None)]))
    print(f"forget sent for {prefix}<id> to {topic}")  # the id itself is not echoed to logs
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(keep_running=not args.no_wait)


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `journeystream` command."""
    p = argparse.ArgumentParser(prog="journeystream", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu)")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--storage", default="memory://tansu/")
    b.set_defaults(run=_broker)

    w = sub.add_parser("worker", help="run a worker (settings from JOURNEYSTREAM_* env vars)")
    w.add_argument("--embedded-broker", action="store_true", help="start a broker for it")
    w.set_defaults(run=_worker)

    formats = ("jsonl", "rees46", "online-retail", "csv")
    pr = sub.add_parser("process", help="run a file through a fresh broker+worker, write outputs")
    pr.add_argument("file")
    pr.add_argument("--format", choices=formats, default="jsonl")
    pr.add_argument("--output", "-o", required=True)
    pr.add_argument("--mapping", help="column mapping for --format csv (see replay/README.md)")
    pr.add_argument("--partitions", type=int, default=4)
    pr.add_argument("--workers", type=int, default=1)
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(run=_process)

    r = sub.add_parser("replay", help="produce a file's events to a running broker")
    r.add_argument("file")
    r.add_argument("--format", choices=formats, default="jsonl")
    r.add_argument("--bootstrap", default="127.0.0.1:9092")
    r.add_argument("--mapping")
    r.add_argument("--speed", type=float, default=0.0, help="event-time speed-up; 0 = max")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(run=_replay)

    f = sub.add_parser("forget", help="remove a customer from every table (tombstones)")
    f.add_argument("customer_id")
    f.add_argument("--anonymous", action="store_true", help="the id is an anonymous id")
    f.set_defaults(run=_forget)

    d = sub.add_parser("demo", help="play the demo scenario through a broker and a worker")
    d.add_argument("--no-wait", action="store_true", help="exit after the summary")
    d.set_defaults(run=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `journeystream` console script."""
    args = parser().parse_args(argv)
    return int(args.run(args) or 0)
