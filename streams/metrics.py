"""All Prometheus metrics of journeystream (snake_case, `_total` counters, seconds, no ids)."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
_NS = "journeystream"

# the standard process_* (CPU, memory, file descriptors) and python_* (info, gc) collectors
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

EVENTS = Counter(
    "events",
    "Input events by type and outcome (accepted, duplicate, forwarded, dead_letter).",
    ["type", "outcome"],
    namespace=_NS,
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "dead_letters",
    "Messages sent to the dead-letter topic, by error category.",
    ["category"],
    namespace=_NS,
    registry=REGISTRY,
)
OUTPUTS = Counter(
    "outputs", "Output records sent, by record type.", ["type"], namespace=_NS, registry=REGISTRY
)
SIGNALS = Counter(
    "signals",
    "Domain signals of the pure cores (out_of_order, identity_conflict, ...), by name.",
    ["name"],
    namespace=_NS,
    registry=REGISTRY,
)
EVENT_TO_OUTPUT = Histogram(
    "event_to_output_seconds",
    "Seconds from a message's broker timestamp to the worker sending its outputs.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    namespace=_NS,
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "batch_size",
    "Events per processed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
    namespace=_NS,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "consumer_lag",
    "Records between the consumer position and the fetched high watermark, per input partition.",
    ["topic", "partition"],
    namespace=_NS,
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "transitions",
    "Journey stage transitions, by from and to stage.",
    ["from_stage", "to_stage"],
    namespace=_NS,
    registry=REGISTRY,
)
SEGMENT_CHANGES = Counter(
    "segment_changes",
    "Segment changes, by from and to segment.",
    ["from_segment", "to_segment"],
    namespace=_NS,
    registry=REGISTRY,
)
CUSTOMERS = Gauge(
    "customers",
    "Customers per segment on this worker's partitions.",
    ["segment"],
    namespace=_NS,
    registry=REGISTRY,
)
ORDERS = Counter(
    "orders", "Placed orders by purchase path.", ["path"], namespace=_NS, registry=REGISTRY
)
RETURN_VISITS = Counter(
    "return_visits",
    "Return visits (new sessions), by whether the customer never purchased.",
    ["never_purchased"],
    namespace=_NS,
    registry=REGISTRY,
)
ABANDONMENTS = Counter(
    "abandonments", "Abandonments fired, by kind.", ["kind"], namespace=_NS, registry=REGISTRY
)
RECOVERIES = Counter(
    "recoveries",
    "Abandoners who later bought, by abandonment kind.",
    ["kind"],
    namespace=_NS,
    registry=REGISTRY,
)
DEADLINE_LAG = Histogram(
    "deadline_lag_seconds",
    "Seconds between a deadline's due time and its firing.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    namespace=_NS,
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter(
    "recommendations",
    "Recommendations and discount triggers decided, by strategy and arm.",
    ["strategy", "arm"],
    namespace=_NS,
    registry=REGISTRY,
)
CONVERSIONS = Counter(
    "conversions",
    "Orders attributed to a recommendation, by strategy and arm.",
    ["strategy", "arm"],
    namespace=_NS,
    registry=REGISTRY,
)
ATTRIBUTED_REVENUE = Counter(
    "attributed_revenue",
    "Order value attributed to a recommendation, by strategy and arm.",
    ["strategy", "arm"],
    namespace=_NS,
    registry=REGISTRY,
)
UPLIFT = Gauge(
    "conversion_uplift_ratio",
    "Conversion rate of an arm minus its holdout's (estimate, 95% CI low/high).",
    ["strategy", "arm", "bound"],
    namespace=_NS,
    registry=REGISTRY,
)
REBALANCES = Counter(
    "rebalances", "Partition rebalances seen by this worker.", namespace=_NS, registry=REGISTRY
)
INPUT_SKIPS = Counter(
    "input_skips",
    "Input records not applied, by reason: already applied (re-delivered), a gap before them "
    "(read again from the position), partition not ready (being restored).",
    ["reason"],
    namespace=_NS,
    registry=REGISTRY,
)
OUTPUTS_RESENT = Counter(
    "outputs_resent",
    "Outputs sent again at a restore from the outboxes of a batch whose position was not stored.",
    namespace=_NS,
    registry=REGISTRY,
)
COPURCHASE_ORDERS = Counter(
    "copurchase_orders",
    "Orders read from the co-purchase topic by this worker, by outcome: counted, duplicate "
    "(counted before: its own order, or a copy), invalid (not a copurchase_order record).",
    ["outcome"],
    namespace=_NS,
    registry=REGISTRY,
)
INPUT_GAPS_ACCEPTED = Counter(
    "input_gaps_accepted",
    "Input offsets skipped because the broker no longer holds them (retention), per record.",
    namespace=_NS,
    registry=REGISTRY,
)
RECOVERY_REMAINING = Gauge(
    "recovery_remaining_records",
    "Changelog records still to restore before the worker is recovered.",
    namespace=_NS,
    registry=REGISTRY,
)
LAST_EVENT = Gauge(
    "last_event_timestamp_seconds",
    "Broker timestamp of the last processed input message.",
    namespace=_NS,
    registry=REGISTRY,
)
APPLIED_OFFSET = Gauge(
    "applied_offset",
    "Next input offset to apply per owned input partition, as the changelog acknowledged it "
    "(what the group commits).",
    ["topic", "partition"],
    namespace=_NS,
    registry=REGISTRY,
)
# the operations view (journey.figures) of the current day, ISO week and month over this worker's
# partitions, refreshed by streams/gauges.py: summable counts, so rates are computed in PromQL
# after summing over workers. `period`: day, week, month; `group`: the four visitor groups, all.
_KPI = {
    "visitors": ("Visitors (customers active in the period), by their group in it.", ["group"]),
    "buyers": ("Visitors who placed an order in the period, by group.", ["group"]),
    "orders": ("Orders placed in the period, by the customer's group in it.", ["group"]),
    "revenue": ("Revenue of the orders placed in the period, by group.", ["group"]),
    "orders_by_path": ("Orders placed in the period, by purchase path.", ["path"]),
    "identified_visitors": ("Visitors of the period with a known customer id.", []),
    "never_purchased_return_visits": (
        "Return visits in the period of customers who had never purchased.",
        [],
    ),
    "recall_eligible": (
        "Customers active before the period who had not bought by its start.",
        [],
    ),
    "recalled": ("Of the recall-eligible customers, the ones active in the period.", []),
    "recalled_buyers": ("Of the recalled customers, the ones who bought in the period.", []),
    "repeat_buyers": ("Customers with two or more orders in the period.", []),
    "abandonments": (
        "Abandonments fired in the period (due time), by group and kind.",
        ["group", "kind"],
    ),
    "abandonments_recovered": (
        "Of the period's abandonments, the ones recovered so far, by group and kind.",
        ["group", "kind"],
    ),
}
KPI_GAUGES = {
    name: Gauge(
        f"kpi_{name}",
        f"Operations view of the current period: {what}",
        ["period", *labels],
        namespace=_NS,
        registry=REGISTRY,
    )
    for name, (what, labels) in _KPI.items()
}
KPI_REFRESH_SECONDS = Gauge(
    "kpi_refresh_seconds",
    "Seconds the last refresh of the kpi gauges took (a scan of the local customer states).",
    namespace=_NS,
    registry=REGISTRY,
)
KPI_REFRESH_TIMESTAMP = Gauge(
    "kpi_refresh_timestamp_seconds",
    "Wall time of the last successful refresh of the kpi gauges.",
    namespace=_NS,
    registry=REGISTRY,
)
KPI_REFRESH_ERRORS = Counter(
    "kpi_refresh_errors",
    "Refreshes of the kpi gauges that failed (logged; the gauges keep their last values).",
    namespace=_NS,
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "build_info",
    "Always 1: the journeystream version, Python version and Faust version of this worker.",
    ["version", "python", "faust"],
    namespace=_NS,
    registry=REGISTRY,
)


def _version(distribution: str) -> str:
    """An installed distribution's version, or "unknown"."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.labels(
    _version("journeystream"), platform.python_version(), _version("faust-streaming")
).set(1)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, cached: label values here are few and fixed (no customer ids)."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def totals(counter: Counter) -> dict[tuple[str, ...], float]:
    """A counter's current values by label values (this worker's counts since it started)."""
    return {
        tuple(sample.labels[name] for name in counter._labelnames): sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def prune(gauge: Gauge, keep: Iterable[tuple[str, ...]]) -> None:
    """Remove a labelled gauge's children whose label values are not in `keep` (revoked)."""
    kept = set(keep)
    present = {
        tuple(sample.labels[name] for name in gauge._labelnames)
        for family in gauge.collect()
        for sample in family.samples
    }
    for values in present - kept:
        gauge.remove(*values)


def exposition() -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(REGISTRY)
