"""`journeystream audience`: export the customers of a group, cluster-wide, as JSON lines or CSV.

The customer changelog is read from the broker, every partition of it, as a restore would
(`harness.changelog.latest_changelog`), so the list covers every worker's customers; then
selected with `journey.audience`, the code that serves the workers' `/audience`. The broker
connection is the workers' (JOURNEYSTREAM_* settings: TLS, SASL), as for `replay` and `forget`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import click

from harness.broker_option import broker_option, broker_url
from journey.audience import AudienceError, AudiencePage, parse_query, parse_time, select
from journey.audience_export import csv_lines, jsonl
from journey.stages import SEGMENTS, STAGES, TAGS

if TYPE_CHECKING:
    from harness.clients import Connection

FORMATS = ("jsonl", "csv")
TIME_HELP = "epoch seconds or ISO 8601, UTC unless it has an offset"


@click.command()
@click.option(
    "--segment", metavar="NAME", default=None, help=f"One of {', '.join(SEGMENTS)} (at --now)."
)
@click.option("--stage", metavar="NAME", default=None, help=f"One of {', '.join(STAGES)}.")
@click.option("--tag", metavar="NAME", default=None, help=f"One of {', '.join(TAGS)}.")
@click.option(
    "--seen-from", metavar="TIME", default=None, help=f"Last seen at or after ({TIME_HELP})."
)
@click.option("--seen-to", metavar="TIME", default=None, help="Last seen before this time.")
@click.option("--bought/--not-bought", default=None, help="Has / has not placed an order.")
@click.option(
    "--abandoned-cart-from",
    metavar="TIME",
    default=None,
    help="A cart abandoned at or after this time.",
)
@click.option(
    "--abandoned-cart-to", metavar="TIME", default=None, help="A cart abandoned before this time."
)
@click.option(
    "--limit", metavar="N", default=None, help="At most this many customers (default: all)."
)
@click.option(
    "--after", metavar="KEY", default=None, help="Only the customer keys after this one (paging)."
)
@click.option(
    "--now", metavar="TIME", default=None, help=f"The time segments are taken at ({TIME_HELP})."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option(
    "--output", "-o", metavar="FILE", required=True, help="The file to write, or - for stdout."
)
@broker_option("The broker (default: JOURNEYSTREAM_BROKER)")
@click.option(
    "--app-id",
    default=None,
    help="The workers' app id, which names the changelog (default: JOURNEYSTREAM_APP_ID).",
)
def audience(
    fmt: str,
    output: str,
    broker: str | None,
    app_id: str | None,
    now: str | None,
    bought: bool | None,
    **conditions: str | None,
) -> int:
    """Write the customers of a group (every condition given must hold), sorted by key.

    Reads the whole customer changelog from the broker (every partition), so the export covers
    the customers of every worker; time and memory grow with the number of customers.
    """
    from harness.applied import changelog_name
    from harness.clients import Connection
    from streams.settings import Settings

    params = {name: value for name, value in conditions.items() if value is not None}
    if bought is not None:
        params["bought"] = str(bought).lower()
    try:
        query = parse_query(params)
        at = parse_time("now", now) if now is not None else time.time()
    except AudienceError as exc:
        raise click.UsageError(str(exc)) from exc
    overrides: dict[str, Any] = {}
    if broker:
        overrides["broker"] = broker_url(broker)
    if app_id:
        overrides["app_id"] = app_id
    settings = Settings.from_env(**overrides)
    conn = Connection.of(settings)
    states = asyncio.run(read_states(conn, changelog_name(settings.app_id)))
    page = select(states.items(), query, at, settings.journey_config())
    with opened(output) as fh:
        written = write(page, fmt, fh)
    more = f"; next page: --after {page.next_after}" if page.next_after is not None else ""
    click.echo(f"{written} of {len(states)} customer keys written{more}", err=True)
    return 0


async def read_states(conn: Connection, topic: str) -> dict[str, dict[str, Any]]:
    """Every customer state of the changelog `topic`, all its partitions, as a restore has it."""
    from harness.changelog import latest_changelog

    consumer = conn.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        known = await consumer.topics()  # fresh metadata from the broker
        partitions = consumer.partitions_for_topic(topic) if topic in known else None
    finally:
        await consumer.stop()
    if not partitions:
        raise click.ClickException(f"no topic {topic} on the broker: is --app-id right?")
    return await latest_changelog(conn.bootstrap, topic, len(partitions), **conn.options)


def write(page: AudiencePage, fmt: str, fh: IO[bytes]) -> int:
    """Write the page's rows in `fmt`; the number of rows."""
    if fmt == "jsonl":
        chunks: Iterator[bytes] = jsonl(page.rows)
    else:
        chunks = (text.encode("utf-8") for text in csv_lines(page.rows))
    for chunk in chunks:
        fh.write(chunk)
    return len(page.rows)


@contextmanager
def opened(output: str) -> Iterator[IO[bytes]]:
    """The output file opened for bytes, or stdout's buffer for `-`."""
    if output == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(output, "wb") as fh:
        yield fh
