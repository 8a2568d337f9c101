"""Composite per-key customer state and its one entry point: dedupe -> One ID routing -> journey.

`apply(state, message, now, config, key=...)` takes either a decoded `CustomerEvent` that arrived
at `key`, or an internal message dict that arrived at `key` through the internal topic. Internal
messages (all JSON-friendly; events inside them are `journey.identity.event_to_dict` dicts, and
`apply` also accepts an already decoded event there):

* forward — an event to apply at `key` without re-keying it (sent by an aliased anonymous key to
  its customer key, or to re-key an event that arrived at the wrong key)::

      {"kind": "forward", "event": <event>, "from_key": "a:<anon>"}

* link_request — sent by `c:<cust>` to `a:<anon>` when an event carrying both ids shows an
  anonymous id the customer has neither merged nor asked for (step 1 of One ID)::

      {"kind": "link_request", "anonymous_key": "a:<anon>", "customer_key": "c:<cust>",
       "event_id": <id of the event carrying both ids>, "occurred_at": <epoch s>}

* identity_merge — sent by `a:<anon>` to `c:<cust>` when it becomes an alias (step 2); `snapshot`
  is the anonymous journey (`CustomerJourney.to_dict()`, or None if it had none), `seen` its
  dedupe memory (`SeenEvents.to_dict()`), so an event applied before the alias is never counted
  again at the customer key, and `abandonment` its cart, session and deadlines
  (`AbandonmentState.to_dict()`, or None), which move to the customer key where orders arrive::

      {"kind": "identity_merge", "anonymous_key": "a:<anon>", "customer_key": "c:<cust>",
       "event_id": <link event id>, "occurred_at": <epoch s>, "snapshot": {...} | None,
       "seen": {...}, "abandonment": {...} | None}

Outputs: `journey_transition` records, internal messages `{"type": "internal", "key": <target>,
"message": <one of the above>}`, and signals `duplicate`, `rekey`, `identity_linked`,
`identity_merged`, `identity_conflict`, `identity_cap`, `identity_merge_repeat`, `irrelevant`
plus those of `journey.stages.apply`.

Late events: the state keeps a reorder window, the journey as it was before the oldest of the
customer's recent events plus those events (within `reorder_window_s` of the newest, at most
`reorder_max_events`). An event earlier than the newest one but inside the window rebuilds the
journey from that base with the events in time order, so the journey is what in-order arrival
would have given. It emits its purchase record (an order is a fact), one transition for the net
change of stage or segment (trigger `activity`), and a `reordered` signal; records the rebuild
changes for other events are not re-sent. An event older than the window is applied
with `journey.stages`' out-of-order rules (counters only). A One ID merge restarts the window.

Race safety: every event is applied exactly once, either in the anonymous journey (before the
alias: it travels in the snapshot, with its id in `seen`) or at the customer key (forwarded after
the alias, or sent there directly); a snapshot is merged at most once per anonymous id. Counters
are sums and recent lists are merged by time, so any interleaving at the customer key of
forwarded events, the merge and direct events gives the same views, orders, spend, categories and
recent products (session counts and purchase paths may differ: they depend on arrival order).
After aliasing, the anonymous key drops its journey (the snapshot carried it away).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from journey import abandonment as abandon
from journey import identity as ident
from journey.abandonment import AbandonmentState, TierOf
from journey.cart import Cart
from journey.config import DEFAULT_CONFIG, JourneyConfig
from journey.dedupe import SeenEvents, absorb, seen_before
from journey.identity import (
    ANONYMOUS_PREFIX,
    CUSTOMER_EVENT_TYPES,
    CUSTOMER_PREFIX,
    IdentityState,
    event_from_dict,
    event_to_dict,
)
from journey.stages import (
    ACTIVITY,
    IDENTITY_MERGE,
    KIND_PURCHASE,
    KIND_SEGMENT,
    KIND_STAGE,
    CustomerJourney,
    clip,
    irrelevant,
    merge,
    merged_stage,
    segment_at,
    transition_record,
)
from journey.stages import apply as apply_journey
from schemas.records import CartChange, CustomerEvent, IdentityLink, Order, PageView

Output = dict[str, Any]
Message = CustomerEvent | dict[str, Any]

FORWARD = "forward"
LINK_REQUEST = "link_request"
IDENTITY_MERGE_MESSAGE = "identity_merge"
JOURNEY_EVENT_TYPES = (PageView, CartChange, Order)


@dataclass(slots=True)
class ReorderWindow:
    """The journey before the window's oldest event (dict form) and the events since, in order."""

    base: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain, orjson-friendly form."""
        return {"base": self.base, "events": self.events}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReorderWindow:
        """Inverse of `to_dict`."""
        if not data:
            return cls()
        return cls(base=data.get("base"), events=list(data.get("events") or ()))


@dataclass(slots=True)
class CustomerState:
    """All state of one customer key: journey, identity, dedupe memory, abandonment, recommend."""

    journey: CustomerJourney | None = None
    identity: IdentityState = field(default_factory=IdentityState)
    seen: SeenEvents = field(default_factory=SeenEvents)
    abandonment: AbandonmentState | None = None
    recommend: dict[str, Any] = field(default_factory=dict)
    window: ReorderWindow = field(default_factory=ReorderWindow)

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """Plain, orjson-friendly form (`copy` False: see `CustomerJourney.to_dict`)."""
        journey = self.journey
        return {
            "window": self.window.to_dict(),
            "journey": journey.to_dict(copy=copy) if journey is not None else None,
            "identity": self.identity.to_dict(),
            "seen": self.seen.to_dict(),
            "abandonment": self.abandonment.to_dict() if self.abandonment is not None else None,
            "recommend": self.recommend,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CustomerState:
        """Inverse of `to_dict` (None or {} gives an empty state).

        Also reads states written before the journey and the abandonment shared one cart: see
        `upgrade_journey`.
        """
        if not data:
            return cls()
        journey = upgrade_journey(data.get("journey"), data.get("abandonment"))
        return cls(
            journey=CustomerJourney.from_dict(journey) if journey else None,
            identity=IdentityState.from_dict(data.get("identity")),
            seen=SeenEvents.from_dict(data.get("seen")),
            abandonment=AbandonmentState.from_dict(data["abandonment"])
            if data.get("abandonment")
            else None,
            recommend=dict(data.get("recommend") or {}),
            window=ReorderWindow.from_dict(data.get("window")),
        )


def upgrade_journey(
    journey: dict[str, Any] | None, abandonment: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A stored journey dict with its cart's id and activity, also from an older layout.

    Before the one cart model the journey kept the cart lines (with their times) and the
    abandonment state its own copy of the lines, the cart id (`cart_ref`) and last activity
    (`cart_last`). The journey's lines are kept; the id and activity come from the old
    abandonment state when it still had a cart, so a pending cart deadline stays valid. A
    journey cart the old abandonment state had dropped (it cleared the whole cart on any order)
    gets no id: no deadline, until its next change starts one.
    """
    if not journey or "cart_ref" in journey or not journey.get("cart"):
        return journey
    journey = dict(journey)
    old = abandonment or {}
    if old.get("cart") and old.get("cart_ref") is not None and old.get("cart_last") is not None:
        journey["cart_ref"] = old["cart_ref"]
        journey["cart_last"] = old["cart_last"]
    return journey


def apply(
    state: CustomerState | None,
    message: Message,
    now: float,
    config: JourneyConfig = DEFAULT_CONFIG,
    *,
    key: str,
    tier_of: TierOf | None = None,
) -> tuple[CustomerState, list[Output]]:
    """Apply an event or internal message that arrived at `key`; mutates and returns the state."""
    if state is None:
        state = CustomerState()
    if not isinstance(message, dict):
        return _on_event(state, message, now, config, key, forwarded=False, tier_of=tier_of)
    kind = message.get("kind")
    if kind == FORWARD:
        event = message.get("event")
        if isinstance(event, dict):
            event = event_from_dict(event)
        if event is None or not isinstance(event, CUSTOMER_EVENT_TYPES):
            return state, [irrelevant("bad_forward")]
        return _on_event(state, event, now, config, key, forwarded=True, tier_of=tier_of)
    if kind == IDENTITY_MERGE_MESSAGE:
        return _on_merge(state, message, config, key)
    if kind == LINK_REQUEST:
        anon_key = message.get("anonymous_key")
        target = message.get("customer_key")
        if anon_key != key or not isinstance(target, str) or not ident.is_customer_key(target):
            return state, [irrelevant("bad_link_request")]
        return _link(state, key, target, message.get("event_id", ""), message.get("occurred_at"))
    return state, [irrelevant("unknown_message")]


def internal(target: str, message: dict[str, Any]) -> Output:
    """An internal-topic output for `target`."""
    return {"type": "internal", "key": target, "message": message}


def forward_message(event: CustomerEvent, from_key: str) -> dict[str, Any]:
    """The `forward` internal message for an event."""
    return {"kind": FORWARD, "event": event_to_dict(event), "from_key": from_key}


def _signal(name: str, **labels: Any) -> Output:
    return {"type": "signal", "name": name, **labels}


def _on_event(
    state: CustomerState,
    event: CustomerEvent,
    now: float,
    config: JourneyConfig,
    key: str,
    *,
    forwarded: bool,
    tier_of: TierOf | None = None,
) -> tuple[CustomerState, list[Output]]:
    if not isinstance(event, CUSTOMER_EVENT_TYPES):
        return state, [irrelevant("not_customer_event")]
    try:
        proper = ident.customer_key(event)
    except ValueError:
        return state, [irrelevant("missing_identity")]
    if not forwarded and proper != key:
        return state, [internal(proper, forward_message(event, key)), _signal("rekey")]
    if seen_before(state.seen, event.event_id, event.occurred_at, config):
        return state, [_signal("duplicate")]
    if type(event) is IdentityLink:
        if not ident.is_anonymous_key(key) or event.customer_id is None:
            return state, [irrelevant("link_not_at_anonymous_key")]
        target = CUSTOMER_PREFIX + event.customer_id
        return _link(state, key, target, event.event_id, event.occurred_at)
    alias = state.identity.alias_of
    if alias is not None and ident.is_anonymous_key(key):
        return state, [internal(alias, forward_message(event, key))]
    due: list[Output] = []
    if state.abandonment is not None and state.abandonment.pending:
        # deadlines the event shows passed fire against the cart as it was before the event
        state.abandonment, due = abandon.fire(
            state.abandonment,
            event.occurred_at,
            config.abandonment,
            customer_key=key,
            tier_of=tier_of,
            cart=_cart(state),
        )
    journey, out = _apply_in_order(state, event, now, config, key)
    state.journey = journey
    state.abandonment, fired = abandon.apply(
        state.abandonment,
        event,
        now,
        config.abandonment,
        customer_key=key,
        tier_of=tier_of,
        cart=_cart(state),
    )
    out.extend(due)
    out.extend(fired)
    anon = event.anonymous_id
    if anon is not None and event.customer_id is not None and key.startswith(CUSTOMER_PREFIX):
        out.extend(_maybe_request_link(state, key, anon, event, config))
    return state, out


def _apply_in_order(
    state: CustomerState, event: CustomerEvent, now: float, config: JourneyConfig, key: str
) -> tuple[CustomerJourney | None, list[Output]]:
    """Apply a journey event through the reorder window (see the module docstring)."""
    journey, window = state.journey, state.window
    t = event.occurred_at
    if not config.reorder_window_s or type(event) not in JOURNEY_EVENT_TYPES:
        return apply_journey(journey, event, now, config, customer_key=key)
    newest = journey.last_seen if journey is not None else t
    late = t < newest
    if late and (not window.events or t < newest - config.reorder_window_s):
        # beyond the window: out-of-order rules, in the journey and in the base alike, so that a
        # later rebuild from the base keeps this event
        if window.events:
            _fold(window, [event], config, key)
        return apply_journey(journey, event, now, config, customer_key=key)
    record = event_to_dict(event)
    if not late:
        horizon = t - config.reorder_window_s
        if not window.events or window.events[-1]["occurred_at"] < horizon:
            # every remembered event left the window: the current journey is the new base
            window.base = journey.to_dict() if journey is not None else None
            window.events = []
        window.events.append(record)
        _trim(window, horizon, config, key)
        return apply_journey(journey, event, now, config, customer_key=key)
    # late, inside the window: rebuild from the base with the events in time order
    assert journey is not None  # late means an event was seen before
    before_stage, before_segment = journey.stage, journey.segment
    position = len(window.events)
    while position and window.events[position - 1]["occurred_at"] > t:
        position -= 1
    window.events.insert(position, record)
    rebuilt = CustomerJourney.from_dict(window.base) if window.base else None
    own: list[Output] = []
    for i, data in enumerate(window.events):
        replayed = event_from_dict(data)
        if replayed is None:
            continue
        rebuilt, out = apply_journey(
            rebuilt, replayed, replayed.occurred_at, config, customer_key=key
        )
        if i == position:
            own = out
    _trim(window, newest - config.reorder_window_s, config, key)
    if rebuilt is None:  # cannot happen for a journey event; keep the journey as it was
        return journey, [_signal("reordered")]
    # the late event's purchase is a fact and is sent; for stage and segment only the net change
    # is sent (its records in the rebuild could repeat what was sent, e.g. a first contact)
    out = [o for o in own if o.get("kind") == KIND_PURCHASE]
    stage_changed = rebuilt.stage != before_stage
    if stage_changed or rebuilt.segment != before_segment:
        kind = KIND_STAGE if stage_changed else KIND_SEGMENT
        value = rebuilt.stage if stage_changed else rebuilt.segment
        out.append(
            transition_record(
                rebuilt,
                kind,
                f"reorder:{value}",
                event.event_id,
                t,
                event.anonymous_id,
                ACTIVITY,
                from_stage=before_stage,
                to_stage=rebuilt.stage,
                from_segment=before_segment,
                to_segment=rebuilt.segment,
            )
        )
    return rebuilt, [*out, _signal("reordered")]


def _trim(window: ReorderWindow, horizon: float, config: JourneyConfig, key: str) -> None:
    """Fold the events older than `horizon`, and any over the cap, into the base."""
    events = window.events
    n = 0
    while n < len(events) and events[n]["occurred_at"] < horizon:
        n += 1
    n = max(n, len(events) - config.reorder_max_events)
    if n <= 0:
        return
    decoded = (event_from_dict(data) for data in events[:n])
    _fold(window, [e for e in decoded if e is not None], config, key)
    del events[:n]


def _fold(
    window: ReorderWindow, events: list[CustomerEvent], config: JourneyConfig, key: str
) -> None:
    """Apply `events` to the window's base journey, in the order given."""
    base = CustomerJourney.from_dict(window.base) if window.base else None
    for event in events:
        base, _ = apply_journey(base, event, event.occurred_at, config, customer_key=key)
    window.base = base.to_dict() if base is not None else None


def _maybe_request_link(
    state: CustomerState, key: str, anon: str, event: CustomerEvent, config: JourneyConfig
) -> list[Output]:
    idn = state.identity
    if anon in idn.merged or anon in idn.link_requested:
        return []
    if not ident.wants_link(idn, anon, config):
        idn.link_requested.append(anon)  # remembered so the cap is reported once per id
        if len(idn.link_requested) > config.link_requests_cap:
            del idn.link_requested[0]
        return [_signal("identity_cap", stage="request")]
    message = {
        "kind": LINK_REQUEST,
        "anonymous_key": ANONYMOUS_PREFIX + anon,
        "customer_key": key,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
    }
    return [internal(ANONYMOUS_PREFIX + anon, message)]


def _link(
    state: CustomerState, key: str, target: str, event_id: str, occurred_at: Any
) -> tuple[CustomerState, list[Output]]:
    outcome = ident.on_link(state.identity, target)
    if outcome == "same":
        return state, []
    if outcome == "conflict":
        return state, [_signal("identity_conflict")]
    journey = state.journey
    message = {
        "kind": IDENTITY_MERGE_MESSAGE,
        "anonymous_key": key,
        "customer_key": target,
        "event_id": event_id,
        "occurred_at": occurred_at,
        "snapshot": journey.to_dict() if journey is not None else None,
        "seen": state.seen.to_dict(),
        "abandonment": state.abandonment.to_dict() if state.abandonment is not None else None,
    }
    state.journey = None
    state.abandonment = None  # its cart and session continue at the customer key
    state.window = ReorderWindow()
    return state, [internal(target, message), _signal("identity_linked")]


def _on_merge(
    state: CustomerState, message: dict[str, Any], config: JourneyConfig, key: str
) -> tuple[CustomerState, list[Output]]:
    anon_key = message.get("anonymous_key")
    if (
        message.get("customer_key") != key
        or not ident.is_customer_key(key)
        or not isinstance(anon_key, str)
        or not ident.is_anonymous_key(anon_key)
    ):
        return state, [irrelevant("bad_identity_merge")]
    anon = anon_key[len(ANONYMOUS_PREFIX) :]
    outcome = ident.on_merge(state.identity, anon, config)
    if outcome == "already":
        return state, [_signal("identity_merge_repeat")]
    if outcome == "cap":
        return state, [_signal("identity_cap", stage="merge")]
    seen = message.get("seen")
    if isinstance(seen, dict):
        absorb(state.seen, SeenEvents.from_dict(seen), config)
    out: list[Output] = [_signal("identity_merged")]
    state.window = ReorderWindow()  # events before the merge cannot be re-sequenced any more
    anonymous_abandonment = message.get("abandonment")
    if not isinstance(anonymous_abandonment, dict):
        anonymous_abandonment = None
    snapshot = message.get("snapshot")
    if isinstance(snapshot, dict):
        out.extend(_merge_journey(state, snapshot, anonymous_abandonment, message, config, key))
    if anonymous_abandonment is not None:
        # after the journeys: the merged cart decides the cart deadline
        source_abandonment = AbandonmentState.from_dict(anonymous_abandonment, config.abandonment)
        state.abandonment = abandon.merge(
            state.abandonment, source_abandonment, config.abandonment, cart=_cart(state)
        )
    return state, out


def _merge_journey(
    state: CustomerState,
    snapshot: dict[str, Any],
    anonymous_abandonment: dict[str, Any] | None,
    message: dict[str, Any],
    config: JourneyConfig,
    key: str,
) -> list[Output]:
    """Fold the anonymous journey snapshot into the customer's; the records of its changes."""
    out: list[Output] = []
    upgraded = upgrade_journey(snapshot, anonymous_abandonment)
    assert upgraded is not None
    source = CustomerJourney.from_dict(upgraded)
    j = state.journey
    if j is None:
        source.customer_key = key
        source.customer_id = clip(key[len(CUSTOMER_PREFIX) :], config.max_text_len)
        source.segment = None
        source.stage = merged_stage(None, source.stage, source.orders_placed)
        before_stage: str | None = None
        j = state.journey = source
    else:
        before_stage = j.stage
        merge(j, source, config)
    event_id = str(message.get("event_id", ""))
    at = message.get("occurred_at")
    t = float(at) if isinstance(at, int | float) else j.last_seen
    if j.stage != before_stage:
        out.append(
            transition_record(
                j,
                KIND_STAGE,
                f"merge:{j.stage}",
                event_id,
                t,
                None,
                IDENTITY_MERGE,
                from_stage=before_stage,
                to_stage=j.stage,
                from_segment=j.segment,
                to_segment=j.segment,
            )
        )
    seg = segment_at(j, j.last_seen, config)
    if seg != j.segment:
        out.append(
            transition_record(
                j,
                KIND_SEGMENT,
                f"merge:{seg}",
                event_id,
                t,
                None,
                IDENTITY_MERGE,
                from_stage=j.stage,
                to_stage=j.stage,
                from_segment=j.segment,
                to_segment=seg,
            )
        )
        j.segment = seg
    return out


def _cart(state: CustomerState) -> Cart | None:
    """The customer's one cart (it lives in the journey)."""
    return state.journey.cart if state.journey is not None else None


def next_due(state: CustomerState | None) -> float | None:
    """The customer's earliest deadline: abandonment, or a reminder of the recommend slot."""
    if state is None:
        return None
    due = abandon.next_due(state.abandonment)
    reminder = state.recommend.get("due") if isinstance(state.recommend, dict) else None
    if isinstance(reminder, int | float) and (due is None or reminder < due):
        return float(reminder)
    return due


def fire(
    state: CustomerState,
    now: float,
    config: JourneyConfig = DEFAULT_CONFIG,
    *,
    key: str,
    tier_of: TierOf | None = None,
) -> tuple[CustomerState, list[Output]]:
    """Fire the customer's deadlines due at `now` (processing time)."""
    if state.abandonment is None:
        return state, []
    state.abandonment, out = abandon.fire(
        state.abandonment,
        now,
        config.abandonment,
        customer_key=key,
        tier_of=tier_of,
        cart=_cart(state),
    )
    return state, out
