"""The single-process reference of the reliability suite: whole customer states and output ids.

It applies the pure cores to the same events as the worker does per event and at deadlines
(`streams/agents/customers.py`, mirrored here, not imported: the agent module needs a running
Faust app), with the configuration the test worker builds from its settings:

* per input partition (the Kafka default partitioner on the customer key), an event-time clock
  (`streams.clock.Clock` in `event` mode): `now` is the partition's newest event time;
* a page view's price is observed into the price tiers before anything else;
* events older than the partition's event time minus the late grace are dead-lettered;
* `journey.customer.apply(state, event, now, config, key=..., tier_of=...)`, then
  `recommend.triggers.react(state, outputs, recommender, now, key=..., event=event)`;
* after the event, the partition's due deadlines fire at the partition's `now`
  (`journey.customer.fire` then `react` without an event), the agent's end-of-batch step with
  batches of one event;
* the final flush fires every remaining deadline at its due time, deadline after deadline, in
  order of due time per partition (`fire_partition(..., flush=True)`).

One `Recommender` (rules, holdout) serves every customer, as in one worker process.

What the worker may legitimately do differently, and how `compare_states` treats it, is
documented on `comparable` below; nothing else is normalised.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from harness.process import wire_key
from journey import customer as core
from journey.config import JourneyConfig
from journey.customer import CustomerState
from recommend import budget
from recommend.rules import load_rules
from recommend.triggers import Recommender, react
from schemas import contracts
from schemas.records import PageView
from streams import topics
from streams.clock import Clock
from streams.settings import Settings

ABANDONMENT_TYPES = ("cart_abandoned", "browse_abandoned", "abandonment_recovered")
RECOMMENDATION_TYPES = ("recommendation", "recommendation_converted", "discount_trigger")
# the output topics whose ids the suite compares, and the record types each one carries
ID_TOPICS = {
    topics.ABANDONMENT: ABANDONMENT_TYPES,
    topics.GOODS_FIND_PEOPLE: ("recommendation", "recommendation_converted"),
    topics.DISCOUNT_TRIGGERS: ("discount_trigger",),
}


def journey_config(settings: Settings) -> JourneyConfig:
    """The agent's `journey_config`, built from the worker's settings the same way."""
    return settings.journey_config()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the Kafka default partitioner (aiokafka, Java client) gives a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Reference:
    """Every customer's final state (dict form) and the ids of the compared output types."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)  # output type -> ids
    late: int = 0

    def ids_of(self, types: Iterable[str]) -> set[str]:
        """The union of the ids of some output types."""
        return set().union(*(self.ids.get(t, set()) for t in types))


def reference(events: list[dict[str, Any]], settings: Settings) -> Reference:
    """Apply the pure cores to `events` (in produce order) as the worker with `settings` does."""
    config = journey_config(settings)
    recommender = Recommender(
        rules=load_rules(settings.rules_file or None), holdout=settings.experiment_holdout
    )
    tier_of = recommender.catalog.tiers.tier_of
    states: dict[str, CustomerState] = {}
    clocks: dict[int, Clock] = {}
    heaps: dict[int, list[tuple[float, str]]] = {}
    due_of: dict[str, float] = {}
    result = Reference()

    budget_rows: dict[str, dict[str, Any]] = {}  # one shared budget per store-day, as the owner
    cap = recommender.rules.discount.daily_budget_per_store

    def collect(outputs: list[dict[str, Any]]) -> None:
        for out in outputs:
            if out["type"] == "internal" and out["message"].get("kind") == budget.REQUEST:
                # a discount reservation: the store-day's owner grants it (second hop)
                request = budget.Reservation.from_message(out["message"])
                assert request is not None, out
                budget_rows[out["key"]], granted = budget.grant(
                    budget_rows.get(out["key"]), request, cap
                )
                collect(granted)
                continue
            if out["type"] == "internal":
                # the workloads have no identity links: nothing else goes through the internal topic
                raise AssertionError(f"internal message in a reference workload: {out}")
            if out["type"] in ABANDONMENT_TYPES or out["type"] in RECOMMENDATION_TYPES:
                result.ids.setdefault(out["type"], set()).add(out["id"])

    def track(partition: int, key: str, state: CustomerState) -> None:
        due = core.next_due(state)
        if due is None:
            due_of.pop(key, None)
        elif due_of.get(key) != due:
            due_of[key] = due
            heapq.heappush(heaps.setdefault(partition, []), (due, key))

    def pop_due(partition: int, now: float) -> list[str]:
        heap = heaps.get(partition, [])
        keys = []
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            if due_of.get(key) == due:
                del due_of[key]
                keys.append(key)
        return keys

    def fire_at(partition: int, key: str, state: CustomerState, at: float) -> CustomerState:
        state, outputs = core.fire(state, at, config, key=key, tier_of=tier_of)
        outputs += react(state, outputs, recommender, at, key=key)
        states[key] = state
        track(partition, key, state)
        collect(outputs)
        return state

    def fire_partition(partition: int, *, flush: bool) -> None:
        now = clocks[partition].now()
        for key in pop_due(partition, float("inf") if flush else now):
            state = states[key]
            due = core.next_due(state)
            state = fire_at(partition, key, state, due if flush and due is not None else now)
            while flush and (due := core.next_due(state)) is not None:
                state = fire_at(partition, key, state, due)

    for raw in events:
        key_bytes = wire_key(raw)
        key = key_bytes.decode()
        partition = partition_of(key_bytes, settings.partitions)
        clock = clocks.setdefault(partition, Clock("event"))
        event = contracts.decode(
            orjson.dumps(raw),
            float("inf"),
            max_bytes=settings.max_payload_bytes,
            future_tolerance=settings.future_tolerance_s,
        )
        assert not isinstance(event, contracts.Rejection), event
        if isinstance(event, PageView):
            recommender.catalog.tiers.observe(
                event.category, event.product_id, event.price, catalog=False
            )
        if event.occurred_at < clock.event_time - settings.late_grace_s:
            result.late += 1
            continue
        now = clock.observe(event.occurred_at)
        state, outputs = core.apply(states.get(key), event, now, config, key=key, tier_of=tier_of)
        outputs += react(state, outputs, recommender, now, key=key, event=event)
        states[key] = state
        track(partition, key, state)
        collect(outputs)
        fire_partition(partition, flush=False)
    for partition in sorted(clocks):
        fire_partition(partition, flush=True)
    result.states = {k: s.to_dict() for k, s in states.items()}
    return result


def comparable(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state as compared: whole, nothing left out.

    The agent fires a partition's due deadlines after every record, as the reference does, so
    even the processing times decisions record (`recommend.sent[i][0]`) must be equal.
    """
    return state


@dataclass
class StateComparison:
    """Reference states against the latest changelog value of each key."""

    compared: int
    differing: list[str]
    missing: list[str]  # keys with a reference state but no changelog value
    extra: list[str]  # keys in the changelog the reference does not have


def compare_states(
    expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> StateComparison:
    """Compare whole customer states (`CustomerState.to_dict()`), key by key."""
    missing = sorted(k for k in expected if k not in actual)
    extra = sorted(k for k in actual if k not in expected and not k.startswith("__"))
    differing = sorted(
        k for k in expected if k in actual and comparable(actual[k]) != comparable(expected[k])
    )
    return StateComparison(len(expected), differing, missing, extra)


def first_difference(expected: Any, actual: Any, path: str = "") -> str:
    """Where two JSON values first differ, for failure messages."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            if expected.get(k) != actual.get(k):
                return first_difference(expected.get(k), actual.get(k), f"{path}.{k}")
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            if e != a:
                return first_difference(e, a, f"{path}[{i}]")
    return f"{path or '.'}: expected {str(expected)[:200]}, got {str(actual)[:200]}"


# What the worker keeps per process, outside the customer state: the learned co-purchases and
# the store-wide repeat shares (from the orders this process has seen), the price tiers (from
# the page views it has seen). (The daily discount budget is changelogged and shared: one
# budget per store-day, modelled in `collect` with the owner's grant rule.)
# They are not changelogged: with two workers each learns from its own partitions, and a
# restarted worker starts from nothing. A single-process reference cannot reproduce decisions
# that depend on them, so the suite keeps its decisions independent of them:
# * the rules file of the suite's workers (and of the reference) is the packaged one with the
#   daily discount budget made unreachable (`suite_rules`); with 50 a day, which abandoners get
#   a discount depends on the order in which their reservations reach the store-day's owner;
# * the workload never has a customer order a product twice and has one line per order, so
#   no store-wide repeat share or co-purchase pair exists (`tests/reliability/scenarios.py`);
# * page-view prices are fixed per product, so every process converges on the same tiers.
BUDGET_LINE = "daily_budget_per_store = 50 "
UNREACHABLE_BUDGET = "daily_budget_per_store = 1000000000 "


def suite_rules(path: Path) -> Path:
    """Write the packaged rules file with the daily discount budget out of reach to `path`."""
    text = resources.files("recommend").joinpath("rules.toml").read_text(encoding="utf-8")
    assert BUDGET_LINE in text, "recommend/rules.toml changed: update tests/reliability"
    path.write_text(text.replace(BUDGET_LINE, UNREACHABLE_BUDGET))
    load_rules(path)  # validated as the worker will
    return path


def journey_reference(
    events: list[dict[str, Any]], config: JourneyConfig
) -> tuple[dict[str, Any], set[str]]:
    """Journeys per key and abandonment ids, the pure core applied at each event's own time.

    For workers on the live clock (the bad-input suite), whose `now` is wall time: journeys
    and abandonment ids do not depend on it, the rest of the state does.
    """
    states: dict[str, Any] = {}
    ids: set[str] = set()
    for raw in events:
        event = contracts.decode(orjson.dumps(raw), now=float("inf"))
        assert not isinstance(event, contracts.Rejection), event
        key = wire_key(raw).decode()
        state, outputs = core.apply(states.get(key), event, event.occurred_at, config, key=key)
        states[key] = state
        ids.update(o["id"] for o in outputs if o["type"].endswith("_abandoned"))
    for key, state in states.items():
        while (due := core.next_due(state)) is not None:
            state, outputs = core.fire(state, due, config, key=key)
            ids.update(o["id"] for o in outputs if o["type"].endswith("_abandoned"))
    return {k: s.journey.to_dict() for k, s in states.items() if s.journey}, ids
