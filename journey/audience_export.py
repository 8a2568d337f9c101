"""Audience rows as JSON lines and CSV (pure; the API and `journeystream audience` share them)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any

import orjson

from journey.audience import AudienceRow, parse_time
from journey.stages import format_time

COLUMNS = tuple(f.name for f in fields(AudienceRow))
TIMES = frozenset({"first_seen", "last_seen", "last_order_at", "last_cart_abandoned_at"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def row_dict(row: AudienceRow) -> dict[str, Any]:
    """A row as JSON: its fields in column order, times as RFC 3339 UTC, tags as a list."""
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(row, name)
        if name in TIMES and value is not None:
            value = format_time(value)
        out[name] = list(value) if name == "tags" else value
    return out


def row_from_dict(data: dict[str, Any]) -> AudienceRow:
    """The inverse of `row_dict` (a worker's JSON answer back to a row); KeyError when one lacks."""
    values: dict[str, Any] = {}
    for name in COLUMNS:
        value = data[name]
        if name in TIMES and value is not None:
            value = parse_time(name, value)
        values[name] = tuple(value) if name == "tags" else value
    return AudienceRow(**values)


def jsonl(rows: Iterable[AudienceRow]) -> Iterator[bytes]:
    """One JSON object per row, each line ending in a newline."""
    for row in rows:
        yield orjson.dumps(row_dict(row)) + b"\n"


def csv_lines(rows: Iterable[AudienceRow], *, header: bool = True) -> Iterator[str]:
    """CSV text, a header line then one line per row (tags space-separated, empty for None).

    A text cell that a spreadsheet would read as a formula (starting with = + - @, a tab or a
    carriage return) is prefixed with a single quote.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(name, value) for name, value in row_dict(row).items()])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if header and buffer.tell():  # no row: the header alone
        yield buffer.getvalue()


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "tags":
        return " ".join(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return str(value)
