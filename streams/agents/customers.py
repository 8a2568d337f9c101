"""The customer agent: admit → classify → core → send → write, one batch at a time.

A record is applied only at its partition's next offset, as stored with the state
(`streams.tables.state`): an earlier one was applied already (skipped), a later one means a
gap (read again from the position). A customer's outputs travel in its state record (its
outbox, `streams.tables.outbox`) and are sent once the states are stored, before the new
position: a crash re-applies from a position whose state holds everything before it, the
per-customer event-id dedupe absorbs a re-read whose state had been written, and the restore
sends that state's outbox again, identical. Dead letters and forwards, which change no state,
are sent before the states. A discount reservation (internal, keyed by a store-day) is applied
to that store-day's budget row the same way (`recommend.budget`, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from journey import customer as core
from journey.customer import CustomerState
from recommend import budget
from recommend.triggers import react
from schemas.records import PageView
from streams import metrics, routing, topics
from streams.agents.partitions import (
    Work,
    admit,
    commit,
    deadlines,
    idle,
    index_partition,
    open_work,
    read_gaps_again,
)
from streams.app import app, settings
from streams.app import topics as names
from streams.messages import (
    FORGET,
    BadInput,
    BudgetRequest,
    CatalogUpdate,
    CustomerInput,
    Forget,
    Message,
    Rekey,
    Tick,
    classify,
    internal_body,
)
from streams.tables import catalog as catalog_state
from streams.tables import customers as table
from streams.tables.outbox import state_of

journey_config = settings.journey_config()
tier_of = catalog_state.price_tiers.tier_of
recommender = catalog_state.recommender
INTERNAL = names(topics.INTERNAL)

input_channel = app.topic(
    *names.inputs(),
    INTERNAL,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    acks=False,  # progress is the position stored with the state, not Faust's acks
)
table.inputs.inputs = frozenset(input_channel.topics)


@app.agent(input_channel, name="customers")
async def process_customers(stream: Any) -> None:
    """Consume customer events and internal messages in batches."""
    async for batch in stream.take_events(
        settings.batch_max_events, within=settings.batch_within_s, direct=True
    ):
        idle.clear()
        try:
            await process_batch(batch)
        finally:
            idle.set()


async def process_batch(events: list[Any]) -> None:
    """Process one batch: each customer's state read once and written once per partition."""
    wall = time.time()
    works: dict[int, Work | None] = {}
    sends: list[routing.Send] = []
    for event in events:
        msg = event.message
        if msg.partition not in works:
            works[msg.partition] = open_work(msg.partition)
        work = works[msg.partition]
        if work is None:
            metrics.labelled(metrics.INPUT_SKIPS, "not_ready").inc()
            continue
        if not admit(work, msg.topic, msg.offset):
            continue
        message = classify(
            msg.topic,
            msg.key,
            msg.value,
            internal_topic=INTERNAL,
            now=wall,
            max_bytes=settings.max_payload_bytes,
            future_tolerance=settings.future_tolerance_s,
            price_of=recommender.catalog.price_of,  # a priceless event takes the catalog's
        )
        observe_price(message, msg.topic)
        handle(work, message, msg, wall, sends)
        fire_due(work, flush=False)  # as the partition's time passes: batch-independent
    ready = [w for w in works.values() if w is not None]
    try:
        for work in ready:
            fire_due(work, flush=False)
        await routing.send_all(sends)  # dead letters, forwards, forgets: before any state
        await asyncio.gather(
            *(commit(w, routing.send_all) for w in ready if w.applied or w.states or w.deleted)
        )
    except BaseException:
        for work in ready:  # the in-memory deadline index may hold what was not written
            index_partition(work.partition)
        raise
    await read_gaps_again()
    metrics.BATCH_SIZE.observe(len(events))
    if events:
        metrics.EVENT_TO_OUTPUT.observe(max(0.0, time.time() - events[0].message.timestamp))
        metrics.LAST_EVENT.set(events[-1].message.timestamp)


def observe_price(message: Message, topic: str) -> None:
    """A page view's known price feeds the price tiers once: where it enters, on an input topic."""
    if topic != INTERNAL and isinstance(message, CustomerInput | Rekey):
        event = message.event
        if isinstance(event, PageView) and event.price is not None:
            catalog_state.price_tiers.observe(
                event.category, event.product_id, event.price, catalog=False
            )


def handle(work: Work, message: Message, msg: Any, wall: float, sends: list[routing.Send]) -> None:
    """Route one classified message."""
    if isinstance(message, CustomerInput):
        apply_input(work, message, msg, wall, sends)
    elif isinstance(message, Tick):
        fire_due(work, flush=message.flush)
    elif isinstance(message, Forget):
        forget(work, message.key, sends)
    elif isinstance(message, BudgetRequest):
        reserve_budget(work, message)
    elif isinstance(message, Rekey):
        sends.append((INTERNAL, message.key, message.body))
        metrics.labelled(metrics.EVENTS, message.event_type, "forwarded").inc()
    elif isinstance(message, CatalogUpdate):
        sends.append((names(topics.CATALOG), message.product_id.encode(), msg.value))
        metrics.labelled(metrics.EVENTS, message.event_type, "forwarded").inc()
    elif isinstance(message, BadInput):
        sends.append(routing.dead_letter(msg, message.category, message.reason, wall))
        if message.event_type != "internal":
            metrics.labelled(metrics.EVENTS, message.event_type, "dead_letter").inc()


def apply_input(
    work: Work, message: CustomerInput, msg: Any, wall: float, sends: list[routing.Send]
) -> None:
    """Apply an event or core message to its customer: dedupe, late check, core, react."""
    key = message.key
    state = work.state(key)
    event = message.event
    if event is not None and state is not None and event.event_id in state.seen:
        # applied before a crash that lost the position: time moves as it did then
        if message.late_check:
            work.clock.observe(event.occurred_at)
        routing.route_outputs([{"type": "signal", "name": "duplicate"}], message.event_type, sends)
        return
    if event is not None and message.late_check:
        behind = work.clock.event_time - event.occurred_at
        if behind > settings.late_grace_s:
            reason = f"{behind:.0f}s behind the partition's event time"
            reason += f" (grace {settings.late_grace_s:.0f}s)"
            sends.append(routing.dead_letter(msg, "late_event", reason, wall))
            metrics.labelled(metrics.EVENTS, message.event_type, "dead_letter").inc()
            return
        now = work.clock.observe(event.occurred_at)
    else:
        now = work.clock.now()
    skey = key.decode()
    state, outputs = core.apply(
        state, message.message, now, journey_config, key=skey, tier_of=tier_of
    )
    outputs += react(state, outputs, recommender, now, key=skey, event=message.message)
    work.put(key, state)
    routing.route_outputs(outputs, message.event_type, work.outputs_of(key))


def reserve_budget(work: Work, message: BudgetRequest) -> None:
    """Apply a discount reservation to its store-day's row: this partition is its only writer."""
    key = message.key
    row = work.rows.get(key)
    if row is None:
        raw = table.store.get(work.partition, key)
        row = None if raw is None else state_of(orjson.loads(raw))
    cap = recommender.rules.discount.daily_budget_per_store
    row, outputs = budget.grant(row, message.reservation, cap)
    work.rows[key] = row  # stored with the grant in its outbox, then sent (like a customer's)
    routing.route_outputs(outputs, "internal", work.outputs_of(key))


def forget(work: Work, key: bytes, sends: list[routing.Send]) -> None:
    """Remove a customer key (tombstone) and, through the internal topic, its merged anon ids."""
    state = work.state(key)
    if state is not None:
        for anon in {*state.identity.merged, *state.identity.link_requested}:
            anon_key = anon if anon.startswith("a:") else f"a:{anon}"
            sends.append((INTERNAL, anon_key.encode(), internal_body(FORGET)))
    sends.extend(work.delete(key))
    metrics.labelled(metrics.SIGNALS, "forgotten").inc()


def fire_due(work: Work, *, flush: bool) -> None:
    """Fire the partition's due deadlines (all of them when flushing)."""
    deadlines.ticking.discard(work.partition)
    now = work.clock.now()
    for key in deadlines.pop_due(work.partition, float("inf") if flush else now):
        state = work.state(key)
        if state is None:
            continue
        due = core.next_due(state)
        fire_at = due if flush and due is not None else now
        state, outputs = fire_at_time(work, key, state, fire_at)
        if not flush and due is not None and any(o["type"].endswith("_abandoned") for o in outputs):
            metrics.DEADLINE_LAG.observe(max(0.0, time.time() - due))
        if flush:  # a flush fires everything, deadline after deadline
            while (due := core.next_due(state)) is not None:
                state, _ = fire_at_time(work, key, state, due)


def fire_at_time(
    work: Work, key: bytes, state: CustomerState, at: float
) -> tuple[CustomerState, list[dict[str, Any]]]:
    """Fire a customer's deadlines due at `at`, react, keep the state and route the outputs."""
    skey = key.decode()
    state, outputs = core.fire(state, at, journey_config, key=skey, tier_of=tier_of)
    outputs += react(state, outputs, recommender, at, key=skey)
    work.put(key, state)
    routing.route_outputs(outputs, "internal", work.outputs_of(key))
    return state, outputs


@app.timer(settings.deadline_tick_s)
async def deadline_timer() -> None:
    """Send a tick to each ready partition whose earliest deadline is due (live clock only)."""
    if settings.clock != "live" or app.rebalancing:
        return
    for partition in list(table.cursors):
        due = deadlines.earliest(partition)
        if due is None or partition in deadlines.ticking:
            continue
        if due <= deadlines.clock(partition).now():
            deadlines.ticking.add(partition)
            await app.producer.send(
                INTERNAL,
                b"tick",
                internal_body("tick"),
                partition=partition,
                timestamp=None,
                headers=None,
            )
