"""Where the pure cores' outputs go: topics, the internal topic, metrics, the dead-letter topic."""

from __future__ import annotations

from typing import Any

import orjson
from faust.types import Message

from schemas import contracts
from streams import compat, metrics, topics
from streams.app import app, settings
from streams.app import topics as names
from streams.tables.outbox import Send

_ABANDONED = {"cart_abandoned": "cart", "browse_abandoned": "browse"}
INTERNAL_RECORDS = frozenset({"copurchase_order"})  # records for journeystream's own readers


def route_outputs(outputs: list[dict[str, Any]], event_type: str, sends: list[Send]) -> None:
    """Turn core outputs into sends and metric updates; count the input's outcome."""
    outcome = "accepted"
    for out in outputs:
        kind = out["type"]
        if kind == "signal":
            name = out.get("name", "unknown")
            if name == "duplicate":
                outcome = "duplicate"
            elif name == "suppressed_by_holdout":
                metrics.labelled(metrics.RECOMMENDATIONS, str(out.get("strategy")), "holdout").inc()
            elif name == "return_visit":
                metrics.labelled(
                    metrics.RETURN_VISITS, str(bool(out.get("never_purchased"))).lower()
                ).inc()
            metrics.labelled(metrics.SIGNALS, name).inc()
            continue
        if kind == "internal":
            body = orjson.dumps({"type": "internal", **out["message"]})
            sends.append((names(topics.INTERNAL), out["key"].encode(), body))
            continue
        sends.append(
            (names.for_output(kind), out.get("customer_key", "").encode(), orjson.dumps(out))
        )
        if kind not in INTERNAL_RECORDS:  # journeystream_outputs_total counts downstream ones
            count_output(out)
    if event_type != "internal":
        metrics.labelled(metrics.EVENTS, event_type, outcome).inc()


def count_output(out: dict[str, Any]) -> None:
    """Metrics for one published output record."""
    kind = out["type"]
    metrics.labelled(metrics.OUTPUTS, kind).inc()
    if kind == "journey_transition":
        if out.get("kind") == "purchase" and out.get("path"):
            metrics.labelled(metrics.ORDERS, out["path"]).inc()
        if out.get("from_stage") != out.get("to_stage"):
            metrics.labelled(
                metrics.TRANSITIONS, str(out.get("from_stage")), str(out.get("to_stage"))
            ).inc()
        if out.get("from_segment") != out.get("to_segment"):
            metrics.labelled(
                metrics.SEGMENT_CHANGES, str(out.get("from_segment")), str(out.get("to_segment"))
            ).inc()
    elif kind in _ABANDONED:
        metrics.labelled(metrics.ABANDONMENTS, _ABANDONED[kind]).inc()
    elif kind in ("recommendation", "discount_trigger"):
        metrics.labelled(
            metrics.RECOMMENDATIONS, str(out.get("strategy")), str(out.get("arm", "all"))
        ).inc()
    elif kind == "recommendation_converted":
        labels = str(out.get("strategy")), str(out.get("arm"))
        metrics.labelled(metrics.CONVERSIONS, *labels).inc()
        metrics.labelled(metrics.ATTRIBUTED_REVENUE, *labels).inc(
            max(0.0, float(out.get("order_value", 0)))
        )
    elif kind == "abandonment_recovered":
        metrics.labelled(metrics.RECOVERIES, str(out.get("kind", "unknown"))).inc()


def dead_letter(msg: Message, category: str, reason: str, now: float) -> Send:
    """A dead-letter send for a message that cannot be processed."""
    record = contracts.dead_letter(
        category,
        reason,
        original=msg.value,
        key=msg.key,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        now=now,
        payload=settings.dead_letter_payload,
    )
    metrics.labelled(metrics.DEAD_LETTERS, category).inc()
    return (names(topics.DEAD_LETTERS), msg.key or b"", orjson.dumps(record))


async def send_all(sends: list[Send]) -> None:
    """Send records (in batches per partition) and wait for the broker's acks."""
    if sends:
        await compat.send_keyed(app.producer, sends)
