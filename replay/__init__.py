"""Replay: format adapters that turn shop exports into wire events, and the demo scenario."""

from __future__ import annotations

from replay.adapters import FORMATS, AdapterRejection, ColumnMapping, read_events, sort_key
from replay.scenario import generate, scenario_story

__all__ = [
    "FORMATS",
    "AdapterRejection",
    "ColumnMapping",
    "generate",
    "read_events",
    "scenario_story",
    "sort_key",
]
