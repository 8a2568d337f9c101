"""The `--broker` option: one name and format in every subcommand."""

from __future__ import annotations

from typing import Any

import click

BROKER_HELP = "Kafka bootstrap servers: kafka://host:port[;host:port] or host:port[,host:port]"


def broker_url(value: str) -> str:
    """kafka://host:port[;host:port], from that or from host:port[,host:port]."""
    value = value.strip()
    return value if "://" in value else "kafka://" + value.replace(",", ";")


def broker_option(help_text: str) -> Any:
    """--broker, the same name and format in every subcommand."""
    return click.option("--broker", metavar="URL", default=None, help=f"{help_text}. {BROKER_HELP}")
