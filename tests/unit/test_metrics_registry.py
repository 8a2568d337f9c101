"""The registry: standard collectors, build info, pruning, and every metric the dashboard uses."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "docker" / "grafana" / "dashboards").glob("*.json"))
ALERTS = REPO / "docker" / "prometheus" / "alerts.yml"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w:$])((?:journeystream|process|python)_[A-Za-z0-9_:]*)\b(?!\s*\()")
_SUFFIXES = {
    "_total": "counter",
    "_bucket": "histogram",
    "_sum": "histogram",
    "_count": "histogram",
}


def metric_names(expr: str) -> set[str]:
    """Project metric names in a PromQL expression (no strings, label names or functions)."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("{}", expr)
    expr = _LABEL_LISTS.sub("", expr)
    return set(_NAME.findall(expr))


def registered() -> dict[str, str]:
    """Family name -> type for every family the project's registry collects."""
    return {family.name: family.type for family in metrics.REGISTRY.collect()}


def resolve(name: str, families: dict[str, str]) -> str | None:
    """The type a series name has in the registry, or None when no family exposes it."""
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix) and families.get(name.removesuffix(suffix)) == kind:
            return kind
    return "gauge" if families.get(name) == "gauge" else None


def _strings(node: Any, keys: set[str]) -> Iterator[str]:
    """Every string value under one of `keys` in a JSON/YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from _strings(value, keys)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, keys)


def used_names() -> dict[str, set[str]]:
    """Metric name -> files whose PromQL names it (dashboard panels and alert rules)."""
    sources = [
        (path, json.loads(path.read_text()), {"expr", "query", "definition"}) for path in DASHBOARDS
    ]
    sources.append((ALERTS, yaml.safe_load(ALERTS.read_text()), {"expr"}))
    used: dict[str, set[str]] = {}
    for path, tree, keys in sources:
        for expr in _strings(tree, keys):
            for name in metric_names(expr):
                used.setdefault(name, set()).add(path.name)
    return used


def test_metric_names_are_parsed_out_of_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, journeystream_x) (rate("
        'journeystream_event_to_output_seconds_bucket{job="journeystream", '
        'topic="journeystream_not_a_metric"}[5m]))) / process_cpu_seconds_total'
        " and on (instance) journeystream_consumer_lag>0 or python_info"
        ' unless label_replace(journeystream_customers, "a", "$1", "b", "(.*)")'
    )
    assert metric_names(expr) == {
        "journeystream_event_to_output_seconds_bucket",
        "process_cpu_seconds_total",
        "journeystream_consumer_lag",
        "python_info",
        "journeystream_customers",
    }


def test_resolve_checks_the_type_the_suffix_implies() -> None:
    families = registered()
    assert resolve("journeystream_events_total", families) == "counter"
    assert resolve("journeystream_deadline_lag_seconds_bucket", families) == "histogram"
    assert resolve("journeystream_deadline_lag_seconds_count", families) == "histogram"
    assert resolve("journeystream_consumer_lag", families) == "gauge"
    assert resolve("journeystream_events", families) is None  # a counter has no bare series
    assert resolve("journeystream_consumer_lag_total", families) is None  # a gauge, not a counter
    assert resolve("journeystream_events_bucket", families) is None  # a counter, not a histogram
    assert resolve("journeystream_no_such_metric", families) is None


def test_every_metric_of_the_dashboard_and_alerts_is_registered() -> None:
    used = used_names()
    files = set().union(*used.values())
    assert files == {path.name for path in DASHBOARDS} | {ALERTS.name}  # every file names some
    families = registered()
    missing = {
        name: sorted(files) for name, files in used.items() if resolve(name, families) is None
    }
    assert missing == {}


def test_standard_collectors_and_build_info_are_exposed() -> None:
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_resident_memory_bytes"].type == "gauge"
    assert families["python_gc_collections"].type == "counter"
    assert families["python_info"].type == "gauge"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    faust_pin = next(d for d in pyproject["dependencies"] if d.startswith("faust-streaming=="))
    (sample,) = families["journeystream_build_info"].samples
    assert sample.labels == {
        "version": pyproject["version"],
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "faust": faust_pin.split("==")[1],
    }
    assert sample.value == 1.0


def test_prune_drops_children_not_kept() -> None:
    gauge = Gauge("pruned", "test", ["topic", "partition"], registry=None)
    for partition in ("0", "1", "2"):
        gauge.labels("events.order", partition).set(5)
    metrics.prune(gauge, [("events.order", "1"), ("events.cart", "0")])
    left = {tuple(s.labels.values()) for f in gauge.collect() for s in f.samples}
    assert left == {("events.order", "1")}
