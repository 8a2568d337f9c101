"""The `journeystream` command (on click, like Faust's): broker, worker, process, replay, ..."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from harness.audience_cli import audience
from harness.broker_option import broker_option, broker_url
from harness.faust_options import WorkerCommand, faust_argv, setting_options
from streams.settings import SettingsError

FORMATS = ("jsonl", "rees46", "online-retail", "csv")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


VERSION = f"{_version('journeystream')} (faust-streaming {_version('faust-streaming')})"


def progress_options(fn: Any) -> Any:
    """--progress/--no-progress, and --quiet (hidden: the older name of --no-progress)."""
    fn = click.option("--quiet", is_flag=True, hidden=True, help="Same as --no-progress.")(fn)
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bars on stderr (default: when stderr is a terminal).",
    )(fn)


def _progress(progress: bool | None, quiet: bool) -> bool:
    from harness.progress import wanted

    return False if quiet else wanted(progress)


def _settings(broker: str | None, topic_prefix: str | None) -> Any:
    from streams.settings import Settings

    overrides: dict[str, Any] = {}
    if broker:
        overrides["broker"] = broker_url(broker)
    if topic_prefix is not None:
        overrides["topic_prefix"] = topic_prefix
    return Settings.from_env(**overrides)


@click.group(context_settings={"max_content_width": 100})
@click.version_option(VERSION, prog_name="journeystream", message="%(prog)s %(version)s")
def cli() -> None:
    """journeystream: customer journeys, abandonment and goods-find-people from store events.

    Settings come from JOURNEYSTREAM_* environment variables (docs/REFERENCE.md, "Settings").
    """


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True)
@click.option("--storage", default="memory://tansu/", show_default=True, help="Tansu storage URL.")
def broker(port: int, storage: str) -> int:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C."""
    from harness.broker import EmbeddedBroker

    running = EmbeddedBroker(port=port, storage=storage).start()
    print(f"journeystream broker: {running.url} (log {running.log_path}); Ctrl-C stops it")
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and running.alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


@cli.command(cls=WorkerCommand)
@click.option("--embedded-broker", is_flag=True, help="Start an embedded broker for it first.")
@broker_option("The broker (default: JOURNEYSTREAM_BROKER)")
@click.pass_context
def worker(ctx: click.Context, embedded_broker: bool, broker: str | None, **faust: Any) -> int:
    """Run a worker (Faust's worker command).

    Settings come from JOURNEYSTREAM_* variables; the options from --with-web on are Faust's
    own worker options (those that are also settings override them).
    """
    os.environ.update(setting_options(faust))  # validated with every other setting
    if broker:
        os.environ["JOURNEYSTREAM_BROKER"] = broker_url(broker)
    if embedded_broker:
        from harness.broker import EmbeddedBroker

        running = EmbeddedBroker().start()
        atexit.register(running.stop)  # Faust's worker exits the process through SystemExit
        os.environ["JOURNEYSTREAM_BROKER"] = running.url
        print(f"journeystream: embedded broker at {running.url}", file=sys.stderr)
    from streams.app import app, settings

    argv = faust_argv(settings, ctx.command.params, ctx.params)
    sys.argv = ["journeystream", *argv]
    app.main()  # Faust's worker command; runs until stopped and exits the process


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--mapping", help="Column mapping for --format csv (see replay/README.md).")
@click.option("--partitions", type=click.IntRange(1, 10_000), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@broker_option("A running broker to use instead of a fresh embedded one")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds to wait, in all, for the workers to process and flush the events.",
)
@click.option(
    "--kpis",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the operations view (per day, week, month and group) as JSON here.",
)
@click.option(
    "--timezone",
    "store_timezone",
    default="UTC",
    show_default=True,
    help="The store's time zone for the day, week and month boundaries (IANA name).",
)
@progress_options
def process(
    file: Path,
    fmt: str,
    output: Path,
    mapping: str | None,
    partitions: int,
    workers: int,
    broker: str | None,
    timeout: float,
    kpis: Path | None,
    store_timezone: str,
    progress: bool | None,
    quiet: bool,
) -> int:
    """Run FILE through a fresh broker and worker(s), write the outputs.

    Every output record, and the rows the adapter could not convert, go to --output as JSON
    lines. Phases: read, produce, processed (by the workers), flush; --timeout bounds the
    waiting for the workers in all.
    """
    from harness.process_run import ProcessTimeout, process_file

    bootstrap = broker_url(broker).split("://", 1)[1].replace(";", ",") if broker else None
    try:
        summary = process_file(
            file,
            fmt=fmt,
            output=output,
            mapping=mapping,
            partitions=partitions,
            workers=workers,
            progress=_progress(progress, quiet),
            bootstrap=bootstrap,
            timeout=timeout,
            kpis=kpis,
            store_timezone=store_timezone,
        )
    except ProcessTimeout as exc:
        raise click.ClickException(str(exc)) from exc
    print(summary.describe())
    return 0


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--mapping", help="Column mapping for --format csv (see replay/README.md).")
@broker_option("The broker (default: JOURNEYSTREAM_BROKER)")
@click.option("--bootstrap", hidden=True, help="The older name of --broker.")
@click.option("--topic-prefix", default=None, help="Default: JOURNEYSTREAM_TOPIC_PREFIX.")
@click.option(
    "--speed",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Pace at N x event time; 0 = as fast as possible.",
)
@progress_options
def replay(
    file: Path,
    fmt: str,
    mapping: str | None,
    broker: str | None,
    bootstrap: str | None,
    topic_prefix: str | None,
    speed: float,
    progress: bool | None,
    quiet: bool,
) -> int:
    """Produce FILE's events to a running broker (by time, keyed by customer)."""
    from harness.clients import Connection
    from harness.process import replay_file

    settings = _settings(broker or bootstrap, topic_prefix)
    sent = replay_file(
        file,
        fmt=fmt,
        bootstrap=Connection.of(settings),
        mapping=mapping,
        speed=speed,
        progress=_progress(progress, quiet),
        topic_prefix=settings.topic_prefix,
    )
    print(f"replayed {sent} events")
    return 0


@cli.command()
@click.argument("customer_id")
@click.option("--anonymous", is_flag=True, help="The id is an anonymous id.")
@broker_option("The broker (default: JOURNEYSTREAM_BROKER)")
@click.option("--topic-prefix", default=None, help="Default: JOURNEYSTREAM_TOPIC_PREFIX.")
@click.option(
    "--count",
    is_flag=True,
    help="Also count the records keyed by this customer on the output and dead-letter topics "
    "(reads them up to their current end).",
)
def forget(
    customer_id: str, anonymous: bool, broker: str | None, topic_prefix: str | None, count: bool
) -> int:
    """Remove a customer from every table (tombstones); say what stays on the topics."""
    import asyncio

    from harness.clients import Connection
    from harness.forget import Report, count_keyed, kept_topics, retention_ms, send_forget
    from streams.topics import TopicNames

    settings = _settings(broker, topic_prefix)
    conn = Connection.of(settings)
    names = TopicNames(settings.topic_prefix)
    prefix = "a:" if anonymous else "c:"
    key = f"{prefix}{customer_id}".encode()
    topic = asyncio.run(send_forget(conn, names, key))
    print(f"forget sent for {prefix}<id> to {topic}")  # the id itself is not echoed to logs
    kept = kept_topics(names)
    retention = asyncio.run(retention_ms(conn, kept))
    counts = asyncio.run(count_keyed(conn, kept, key)) if count else None
    print("\n".join(Report(f"{prefix}<id>", retention, counts).lines(names)))
    return 0


@cli.command()
@click.option("--no-wait", is_flag=True, help="Exit after the summary.")
def demo(no_wait: bool) -> int:
    """Play the demo store through an embedded broker and a worker."""
    from harness.demo import run_demo

    return run_demo(keep_running=not no_wait)


cli.add_command(audience)  # journeystream audience (harness/audience_cli.py)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `journeystream` console script."""
    try:
        result = cli.main(args=argv, prog_name="journeystream", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130
    except SettingsError as exc:
        print(f"journeystream: SettingsError: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)
