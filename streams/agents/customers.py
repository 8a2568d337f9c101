"""The customer agent: decode → pure core → table write → send → count, one batch at a time."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable
from typing import Any

import orjson
from faust.streams import _current_event
from faust.types import TP, EventT

from journey import customer as customer_core
from journey.abandonment import AbandonmentConfig
from journey.config import JourneyConfig
from journey.customer import CustomerState
from journey.identity import customer_key
from recommend.triggers import react
from schemas import contracts
from schemas.records import CatalogItem, PageView, type_name
from streams import metrics, routing, topics
from streams.app import app, settings
from streams.app import topics as names
from streams.deadlines import DeadlineIndex
from streams.tables import catalog as catalog_state
from streams.tables import customers as customer_table

journey_config = JourneyConfig(
    session_gap_s=settings.session_gap_s,
    seed_category_views=settings.seed_category_views,
    lapsed_after_s=settings.lapsed_after_s,
    anonymous_id_cap=settings.anonymous_id_cap,
    dedupe_window_s=settings.dedupe_window_s,
    reorder_window_s=settings.reorder_window_s,
    abandonment=AbandonmentConfig(
        cart_delay_s=settings.cart_abandon_delay_s,
        session_gap_s=settings.session_gap_s,
        browse_min_products=settings.browse_min_products,
    ),
)
deadlines = DeadlineIndex(settings.clock)
tier_of = catalog_state.price_tiers.tier_of
recommender = catalog_state.recommender

input_channel = app.topic(
    *names.inputs(),
    names(topics.INTERNAL),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)


@app.agent(input_channel, name="customers")
async def process_customers(stream: Any) -> None:
    """Consume customer events and internal messages in batches."""
    async for batch in stream.take_events(
        settings.batch_max_events, within=settings.batch_within_s
    ):
        try:
            await process_batch(batch)
        except asyncio.CancelledError:  # stopping: the next owner reads the batch again
            withhold_acks(batch)
            raise
        except Exception:  # the agent restarts: read the batch again after it
            withhold_acks(batch)
            await read_again(batch)
            raise


def withhold_acks(events: list[EventT]) -> None:
    """Keep an unfinished batch's offsets uncommitted: its state was never written.

    Faust's `take_events` acks a batch in a `finally`, also when the agent leaves it half
    done (a crash, a cancel); a commit would then skip events whose state was never stored.
    `Consumer.ack` ignores messages already marked acked, so marking them here keeps them out
    of the committed offsets (and out of `wait_empty`'s wait).
    """
    for event in events:
        event.message.acked = True
    app.log.warning("batch of %d events interrupted: left uncommitted", len(events))


async def read_again(events: list[EventT]) -> None:
    """Seek each partition of an unfinished batch back to its first event in the batch."""
    first: dict[TP, int] = {}
    for event in events:
        tp = event.message.tp
        first[tp] = min(first.get(tp, event.message.offset), event.message.offset)
    for tp, offset in first.items():
        try:
            await app.consumer.seek(tp, offset)
        except Exception as exc:  # no longer assigned, or stopping: the next owner reads it
            app.log.warning("cannot seek back %s[%d]: %s", tp.topic, tp.partition, exc)


class Batch:
    """What one batch changes: states to write once each, sends to make first."""

    def __init__(self) -> None:
        self.states: dict[bytes, CustomerState] = {}
        self.last_event: dict[bytes, EventT] = {}
        self.sends: list[routing.Send] = []
        self.forgotten: dict[bytes, EventT] = {}

    def state(self, key: bytes) -> CustomerState | None:
        """The batch's copy of a state, else the table's."""
        state = self.states.get(key)
        return state if state is not None else customer_table.load(key)

    def put(self, key: bytes, state: CustomerState, event: EventT) -> None:
        """Keep a changed state for the end-of-batch write."""
        self.states[key] = state
        self.last_event[key] = event
        self.forgotten.pop(key, None)
        deadlines.track(event.message.partition, key, state)


async def process_batch(events: list[EventT]) -> None:
    """Process one batch: each customer's state read once and written once."""
    wall = time.time()
    batch = Batch()
    internal_topic = names(topics.INTERNAL)
    last_of_partition: dict[int, EventT] = {}
    for partition in {e.message.partition for e in events} - deadlines.built:
        # first batch of a partition since it was assigned (start, restart, rebalance)
        index_partition(partition)
    for event in events:
        msg = event.message
        _current_event.set(weakref.ref(event))
        last_of_partition[msg.partition] = event
        if msg.topic == internal_topic:
            message = routing.decode_internal(msg.value, wall)
            if message is None:
                batch.sends.append(routing.dead_letter(msg, "internal_error", "unreadable", wall))
                continue
            if isinstance(message, dict) and message.get("kind") in ("tick", "flush"):
                fire_partition(batch, event, flush=message["kind"] == "flush")
                continue
            if isinstance(message, dict) and message.get("kind") == "forget":
                forget(batch, msg.key or b"", event)
                continue
            key, event_type = msg.key or b"", "internal"
        else:
            message = contracts.decode(
                msg.value,
                wall,
                max_bytes=settings.max_payload_bytes,
                future_tolerance=settings.future_tolerance_s,
            )
            if isinstance(message, contracts.Rejection):
                batch.sends.append(
                    routing.dead_letter(msg, message.category, message.message, wall)
                )
                metrics.labelled(metrics.EVENTS, "unknown", "dead_letter").inc()
                continue
            event_type = type_name(message)
            if isinstance(message, CatalogItem):
                batch.sends.append((names(topics.CATALOG), message.product_id.encode(), msg.value))
                metrics.labelled(metrics.EVENTS, event_type, "forwarded").inc()
                continue
            if isinstance(message, PageView):
                catalog_state.price_tiers.observe(
                    message.category, message.product_id, message.price, catalog=False
                )
            key = customer_key(message).encode()
            if msg.key != key:  # producer did not key by customer: re-key through a topic
                batch.sends.append((internal_topic, key, routing.forward(message)))
                metrics.labelled(metrics.EVENTS, event_type, "forwarded").inc()
                continue
        clock = deadlines.clock(msg.partition)
        occurred = getattr(message, "occurred_at", None)
        if isinstance(occurred, float) and occurred < clock.event_time - settings.late_grace_s:
            late_by = clock.event_time - occurred
            grace = settings.late_grace_s
            reason = f"{late_by:.0f}s behind the partition's event time (grace {grace:.0f}s)"
            batch.sends.append(routing.dead_letter(msg, "late_event", reason, wall))
            metrics.labelled(metrics.EVENTS, event_type, "dead_letter").inc()
            continue
        now = clock.observe(occurred) if isinstance(occurred, float) else clock.now()
        state, outputs = customer_core.apply(
            batch.state(key), message, now, journey_config, key=key.decode(), tier_of=tier_of
        )
        outputs += react(state, outputs, recommender, now, key=key.decode(), event=message)
        batch.put(key, state, event)
        routing.route_outputs(outputs, event_type, batch.sends)
    for event in last_of_partition.values():
        _current_event.set(weakref.ref(event))
        fire_partition(batch, event, flush=False)
    await send_all(batch.sends)
    customer_table.store_batch(batch.states, batch.last_event, batch.forgotten)
    metrics.BATCH_SIZE.observe(len(events))
    if events:
        metrics.EVENT_TO_OUTPUT.observe(max(0.0, time.time() - events[0].message.timestamp))
        metrics.LAST_EVENT.set(events[-1].message.timestamp)


def index_partition(partition: int) -> None:
    """A partition (re)assigned: index the deadlines restored with its state (every clock)."""
    deadlines.rebuild(partition, customer_table.partition_items(partition))


def forget(batch: Batch, key: bytes, event: EventT) -> None:
    """Remove a customer key (tombstone) and, through the internal topic, its merged anon ids."""
    state = batch.state(key)
    if state is not None:
        for anon in {*state.identity.merged, *state.identity.link_requested}:
            anon_key = anon if anon.startswith("a:") else f"a:{anon}"
            body = orjson.dumps({"type": "internal", "kind": "forget"})
            batch.sends.append((names(topics.INTERNAL), anon_key.encode(), body))
    batch.states.pop(key, None)
    batch.last_event.pop(key, None)
    batch.forgotten[key] = event
    deadlines.due_of.pop(key, None)
    metrics.labelled(metrics.SIGNALS, "forgotten").inc()


def fire_partition(batch: Batch, event: EventT, *, flush: bool) -> None:
    """Fire the due deadlines of the event's partition (all of them when flushing)."""
    partition = event.message.partition
    deadlines.ticking.discard(partition)
    now = deadlines.clock(partition).now()
    for key in deadlines.pop_due(partition, float("inf") if flush else now):
        state = batch.state(key)
        if state is None:
            continue
        due = customer_core.next_due(state)
        fire_at = due if flush and due is not None else now
        state, outputs = fire_at_time(batch, key, state, fire_at, event)
        for out in outputs:
            if out["type"] in ("cart_abandoned", "browse_abandoned") and due is not None:
                metrics.DEADLINE_LAG.observe(max(0.0, time.time() - due) if not flush else 0.0)
        if flush:  # a flush fires everything, deadline after deadline
            while (due := customer_core.next_due(state)) is not None:
                state, _ = fire_at_time(batch, key, state, due, event)


def fire_at_time(
    batch: Batch, key: bytes, state: CustomerState, at: float, event: EventT
) -> tuple[CustomerState, list[dict[str, Any]]]:
    """Fire a customer's deadlines due at `at`, react, keep the state and route the outputs."""
    state, outputs = customer_core.fire(
        state, at, journey_config, key=key.decode(), tier_of=tier_of
    )
    outputs += react(state, outputs, recommender, at, key=key.decode())
    batch.put(key, state, event)
    routing.route_outputs(outputs, "internal", batch.sends)
    return state, outputs


async def send_all(sends: list[routing.Send]) -> None:
    """Send every output and wait for the broker's acks (before the state write)."""
    if not sends:
        return
    producer = app.producer
    futures: list[Awaitable[Any]] = []
    for topic, key, value in sends:
        fut = await producer.send(topic, key, value, partition=None, timestamp=None, headers=None)
        futures.append(fut)
    await asyncio.gather(*futures)


@app.timer(settings.deadline_tick_s)
async def deadline_timer() -> None:
    """Send a tick to each owned partition whose earliest deadline is due (live clock only)."""
    recovery = app.tables.recovery
    if settings.clock != "live" or app.rebalancing or not recovery.completed.is_set():
        return
    assigned = {
        tp.partition for tp in app.consumer.assignment() if tp.topic == names(topics.INTERNAL)
    }
    for partition in assigned - deadlines.built:
        index_partition(partition)
    for partition in assigned:
        due = deadlines.earliest(partition)
        if due is None or partition in deadlines.ticking:
            continue
        if due <= deadlines.clock(partition).now():
            deadlines.ticking.add(partition)
            tick = orjson.dumps({"type": "internal", "kind": "tick"})
            await app.producer.send(
                names(topics.INTERNAL),
                b"tick",
                tick,
                partition=partition,
                timestamp=None,
                headers=None,
            )
