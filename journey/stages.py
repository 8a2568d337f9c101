"""Customer journey: stages, segments, purchase paths and a bounded profile (pure core).

Rules (all times are event times, epoch seconds UTC; `now` is accepted for the common core
signature but no rule reads it, so a replay gives exactly the live result):

* Triggers are derived from each event, in this order: `first_contact` (no journey yet),
  `return_visit` (the event starts a session that is not the first), `category_interest` (a page
  view makes one category reach `seed_category_views` views in the current session),
  `add_to_cart` (cart `add`, or `set_quantity` raising a line), `favourite` (a page view with
  action favourite: kept in `favourites`, not counted as a view), `order_placed`. Each trigger walks
  `TRANSITIONS`; a (stage, trigger) pair not in the table leaves the stage as it is, so stages
  never move backwards. Every stage change goes through that table, a One ID merge's too
  (`merged_stage`: triggers `merged_<stage>` for the stage the merged history reached).
* Sessions: a new session starts when an event comes `session_gap_s` or more after `last_seen`, or
  carries a session id different from the current session's (an event without a session id never
  ends a session; a session without an id adopts the first one it sees).
* Segments: `customer` once an order was placed (stage purchase/repurchase), `lapsed` when such a
  customer's last activity is `lapsed_after_s` or more before the time asked about
  (`segment_at`), else `returning_visitor` from the second session on, else `new_visitor`. On
  each event the segment is first re-evaluated at the event's time (so a lapse is reported, with
  trigger `lapse`, before the event that ends it), then after applying it.
* Purchase path of a placed order, from the visitor type at the moment of the order
  (`visitor_type`, the merchant's definitions): a first-visit buyer (new visitor) ->
  `touch→purchase`; a buyer who visited before (a second session or later) and never bought
  (returning visitor) -> `touch→seed→purchase`; a buyer who bought before -> `repurchase`. A
  cart add, category interest or favourite in the first visit moves the stage to seed (a
  seeding signal, kept on the profile), but a purchase in that same first visit is still the
  new visitor's direct path.
* Out of order: an event earlier than `last_seen - out_of_order_grace_s` still updates the
  counters (views, categories, recent lists, cart lines older than it are left alone, orders and
  spend) so no event is lost whatever order it arrives in, but it never starts a session, never
  moves `last_seen` and fires no trigger except `order_placed` (an order is a fact: it always
  yields its `purchase` record and the stage a buyer must have). It adds an `out_of_order` signal.
  An event inside the grace but before `last_seen` is applied normally except that it cannot start
  a session.
* Irrelevant (state unchanged, `irrelevant` signal with a `reason`): identity links and other
  non-journey events, a cancellation of an order id not among the recent orders, a second placement
  of an order id already among them. A known cancellation reverses that order's orders count,
  spend, units and tag counters (not its categories or recently purchased ids) and is not counted
  as customer activity (it does not touch sessions or `last_seen`).
* Cart: the customer's one cart (`journey.cart`, also read by the abandonment core). A placed
  order removes from it only what it bought, by product and units; the other lines stay.
* Profile extras: favourite categories = top `favourite_categories` by views + purchased lines;
  price band = average unit price over the customer's order lines: `low` below `price_band_low`,
  `high` at or above `price_band_high`, else `mid` (None before any order); tags:
  `price_sensitive` when more than half of the (net) orders had an average unit price below the
  customer's average viewed price at the time (over the views with a known price), or in the
  `low` band ("discount tier"); `favourites` once a product was added to the favourites;
  `high_value` when total spend >= `high_value_spend`; `new_parent` (sticky) once a viewed, carted
  or bought category contains a `new_parent_keywords` word.
* Bounds: every collection is capped by the config (categories: the least counted is evicted;
  recent lists: the oldest by time), and every stored text longer than `max_text_len` is cut and
  suffixed with a hash of the whole, so a state's size is bounded whatever the input.

Records (`journey_transition`, schema `schemas/journey_transition/<version>.json`): one per
stage change (`kind` "stage"), per segment change (`kind` "segment") and per placed order (`kind`
"purchase", with `path`, `order_id`, `order_value`); version 1-0-1 (its trigger enum adds
`favourite`) for a change a favourite caused, 1-0-0 for every other. Id:
`sha1(customer_key|event_id|kind|q)[:20]` where `q` is the new stage, the new segment or the
order id (one event can change the stage twice, e.g. a first event that is an order: none ->
touch -> purchase).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, overload

from journey import activity
from journey import cart as carts
from journey.cart import Cart, clip
from journey.config import DEFAULT_CONFIG, JourneyConfig
from schemas.records import CartChange, CustomerEvent, Order, PageView

Output = dict[str, Any]

RECORD_TYPE = "journey_transition"
VERSION = "1-0-0"
FAVOURITE_VERSION = "1-0-1"  # journey_transition whose trigger enum has `favourite`
STATE_FORMAT = 1

# stages
TOUCH = "touch"
SEED = "seed"
PURCHASE = "purchase"
REPURCHASE = "repurchase"
STAGES = (TOUCH, SEED, PURCHASE, REPURCHASE)
STAGE_RANK: dict[str | None, int] = {None: 0, TOUCH: 1, SEED: 2, PURCHASE: 3, REPURCHASE: 4}
BUYER_STAGES = frozenset({PURCHASE, REPURCHASE})

# triggers derived from events
FIRST_CONTACT = "first_contact"
RETURN_VISIT = "return_visit"
ADD_TO_CART = "add_to_cart"
CATEGORY_INTEREST = "category_interest"
FAVOURITE = "favourite"
ORDER_PLACED = "order_placed"
TRIGGERS = (FIRST_CONTACT, RETURN_VISIT, ADD_TO_CART, CATEGORY_INTEREST, FAVOURITE, ORDER_PLACED)
# triggers that only appear on records
LAPSE = "lapse"
ACTIVITY = "activity"
IDENTITY_MERGE = "identity_merge"
# triggers of a One ID merge: the merged history shows this stage reached (the source journey's
# stage, or purchase/repurchase from the merged count of placed orders)
MERGED_TOUCH = "merged_touch"
MERGED_SEED = "merged_seed"
MERGED_PURCHASE = "merged_purchase"
MERGED_REPURCHASE = "merged_repurchase"
MERGE_TRIGGERS = (MERGED_TOUCH, MERGED_SEED, MERGED_PURCHASE, MERGED_REPURCHASE)

# the journey, as data: (stage, trigger) -> next stage; pairs not listed keep the stage
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, FIRST_CONTACT): TOUCH,
    (TOUCH, RETURN_VISIT): SEED,
    (TOUCH, ADD_TO_CART): SEED,
    (TOUCH, CATEGORY_INTEREST): SEED,
    (TOUCH, FAVOURITE): SEED,
    (TOUCH, ORDER_PLACED): PURCHASE,
    (SEED, ORDER_PLACED): PURCHASE,
    (PURCHASE, ORDER_PLACED): REPURCHASE,
    (REPURCHASE, ORDER_PLACED): REPURCHASE,
    # One ID merge: the further stage of the two histories
    (None, MERGED_TOUCH): TOUCH,
    (None, MERGED_SEED): SEED,
    (None, MERGED_PURCHASE): PURCHASE,
    (None, MERGED_REPURCHASE): REPURCHASE,
    (TOUCH, MERGED_SEED): SEED,
    (TOUCH, MERGED_PURCHASE): PURCHASE,
    (TOUCH, MERGED_REPURCHASE): REPURCHASE,
    (SEED, MERGED_PURCHASE): PURCHASE,
    (SEED, MERGED_REPURCHASE): REPURCHASE,
    (PURCHASE, MERGED_REPURCHASE): REPURCHASE,
}
MERGED: dict[str, str] = {
    TOUCH: MERGED_TOUCH,
    SEED: MERGED_SEED,
    PURCHASE: MERGED_PURCHASE,
    REPURCHASE: MERGED_REPURCHASE,
}

# purchase paths, by the visitor type at the moment of the order (journey.activity)
PATH_DIRECT = activity.PATH_DIRECT
PATH_SEEDED = activity.PATH_SEEDED
PATH_REPURCHASE = activity.PATH_REPURCHASE
PATHS = activity.PATHS

# segments: the seed's groups (journey.activity counts the operations view by them)
NEW_VISITOR = activity.NEW_VISITOR
RETURNING_VISITOR = activity.RETURNING_VISITOR
CUSTOMER = activity.CUSTOMER
LAPSED = activity.LAPSED
SEGMENTS = activity.GROUPS

# record kinds
KIND_STAGE = "stage"
KIND_SEGMENT = "segment"
KIND_PURCHASE = "purchase"

# price bands and tags
PRICE_BANDS = ("low", "mid", "high")
TAG_PRICE_SENSITIVE = "price_sensitive"
TAG_HIGH_VALUE = "high_value"
TAG_NEW_PARENT = "new_parent"
TAG_FAVOURITES = "favourites"
TAGS = (TAG_FAVOURITES, TAG_HIGH_VALUE, TAG_NEW_PARENT, TAG_PRICE_SENSITIVE)  # `tags` names


def next_stage(stage: str | None, trigger: str) -> str | None:
    """One step of the transition table (unknown pairs keep the stage)."""
    return TRANSITIONS.get((stage, trigger), stage)


def merged_stage(stage: str | None, source_stage: str | None, orders_placed: int) -> str | None:
    """The stage after a One ID merge, walked through `TRANSITIONS`.

    `stage` is the target's, `source_stage` the merged history's and `orders_placed` the placed
    orders of the merged journey (one makes a purchase, two a repurchase).
    """
    triggers = [MERGED[source_stage]] if source_stage in MERGED else []
    if orders_placed >= 2:
        triggers.append(MERGED_REPURCHASE)
    elif orders_placed == 1:
        triggers.append(MERGED_PURCHASE)
    for trigger in triggers:
        stage = next_stage(stage, trigger)
    return stage


@dataclass(slots=True, kw_only=True)
class CustomerJourney:
    """Journey position and bounded profile of one customer key.

    Recent collections are insertion-ordered dicts kept sorted by time, oldest first:
    `recent_views` product -> [category, price|None, t]; `favourites` product -> [category, t];
    `recent_orders` order id -> [total, units, line value, t, below view average 0/1, low band
    0/1]; `recent_purchases` product -> t. Their
    list values are replaced, never mutated in place. `cart` is the customer's one cart
    (`journey.cart.Cart`), stored as `cart` product -> [quantity, unit price|None,
    category|None, t] plus `cart_ref` and `cart_last` (its id and last activity; absent in
    states written before they existed).
    """

    customer_key: str
    customer_id: str | None = None
    anonymous_id: str | None = None
    stage: str | None = None
    segment: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    sessions: int = 0
    session_id: str | None = None
    session_start: float = 0.0
    session_categories: dict[str, int] = field(default_factory=dict)
    views: int = 0
    priced_views: int = 0
    view_price_sum: float = 0.0
    views_by_category: dict[str, int] = field(default_factory=dict)
    recent_views: dict[str, list[Any]] = field(default_factory=dict)
    cart: Cart = field(default_factory=Cart)
    orders: int = 0
    orders_placed: int = 0
    total_spend: float = 0.0
    last_order_at: float | None = None
    units_bought: int = 0
    units_value: float = 0.0
    orders_below_view_avg: int = 0
    orders_low_band: int = 0
    recent_orders: dict[str, list[Any]] = field(default_factory=dict)
    purchase_categories: dict[str, int] = field(default_factory=dict)
    recent_purchases: dict[str, float] = field(default_factory=dict)
    new_parent: bool = False
    favourites: dict[str, list[Any]] = field(default_factory=dict)
    activity: dict[str, list[Any]] = field(default_factory=dict)  # journey.activity

    @property
    def average_order_value(self) -> float | None:
        """Net spend per net order (None before any order)."""
        return self.total_spend / self.orders if self.orders > 0 else None

    def favourite_categories(self, n: int = 5) -> list[str]:
        """Top `n` categories by views + purchased lines (ties: name order)."""
        scores = dict(self.views_by_category)
        for cat, count in self.purchase_categories.items():
            scores[cat] = scores.get(cat, 0) + count
        return [c for c, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

    def price_band(self, config: JourneyConfig = DEFAULT_CONFIG) -> str | None:
        """`low`/`mid`/`high` from the average unit price of ordered lines (None before any)."""
        if self.units_bought <= 0:
            return None
        avg = self.units_value / self.units_bought
        if avg < config.price_band_low:
            return "low"
        return "high" if avg >= config.price_band_high else "mid"

    def tags(self, config: JourneyConfig = DEFAULT_CONFIG) -> list[str]:
        """Profile tags, sorted."""
        tags = []
        if self.total_spend >= config.high_value_spend:
            tags.append(TAG_HIGH_VALUE)
        if self.favourites:
            tags.append(TAG_FAVOURITES)
        if self.new_parent:
            tags.append(TAG_NEW_PARENT)
        n = self.orders
        if n > 0 and (2 * self.orders_below_view_avg > n or 2 * self.orders_low_band > n):
            tags.append(TAG_PRICE_SENSITIVE)
        return tags

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """Plain, orjson-friendly form; containers are copied unless `copy` is False.

        Without copies the form shares this journey's containers (the same JSON once encoded):
        for encoding at once, as the write path does.
        """
        c: Any = dict if copy else _same
        return {
            "format": STATE_FORMAT,
            "customer_key": self.customer_key,
            "customer_id": self.customer_id,
            "anonymous_id": self.anonymous_id,
            "stage": self.stage,
            "segment": self.segment,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "sessions": self.sessions,
            "session_id": self.session_id,
            "session_start": self.session_start,
            "session_categories": c(self.session_categories),
            "views": self.views,
            "priced_views": self.priced_views,
            "view_price_sum": self.view_price_sum,
            "views_by_category": c(self.views_by_category),
            "recent_views": c(self.recent_views),
            "cart": self.cart.lines_dict(),
            "cart_ref": self.cart.ref,
            "cart_last": self.cart.last_activity,
            "orders": self.orders,
            "orders_placed": self.orders_placed,
            "total_spend": self.total_spend,
            "last_order_at": self.last_order_at,
            "units_bought": self.units_bought,
            "units_value": self.units_value,
            "orders_below_view_avg": self.orders_below_view_avg,
            "orders_low_band": self.orders_low_band,
            "recent_orders": c(self.recent_orders),
            "purchase_categories": c(self.purchase_categories),
            "recent_purchases": c(self.recent_purchases),
            "new_parent": self.new_parent,
            "favourites": c(self.favourites),
            "activity": {day: list(e) for day, e in self.activity.items()}
            if copy
            else self.activity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerJourney:
        """Inverse of `to_dict` (missing keys take their defaults)."""
        g = data.get
        return cls(
            customer_key=data["customer_key"],
            customer_id=g("customer_id"),
            anonymous_id=g("anonymous_id"),
            stage=g("stage"),
            segment=g("segment"),
            first_seen=float(g("first_seen", 0.0)),
            last_seen=float(g("last_seen", 0.0)),
            sessions=int(g("sessions", 0)),
            session_id=g("session_id"),
            session_start=float(g("session_start", 0.0)),
            session_categories=dict(g("session_categories") or {}),
            views=int(g("views", 0)),
            # states written before priceless views existed had a price on every view
            priced_views=int(g("priced_views", g("views", 0))),
            view_price_sum=float(g("view_price_sum", 0.0)),
            views_by_category=dict(g("views_by_category") or {}),
            recent_views={k: list(v) for k, v in (g("recent_views") or {}).items()},
            cart=Cart.from_parts(g("cart"), g("cart_ref"), g("cart_last")),
            orders=int(g("orders", 0)),
            orders_placed=int(g("orders_placed", 0)),
            total_spend=float(g("total_spend", 0.0)),
            last_order_at=g("last_order_at"),
            units_bought=int(g("units_bought", 0)),
            units_value=float(g("units_value", 0.0)),
            orders_below_view_avg=int(g("orders_below_view_avg", 0)),
            orders_low_band=int(g("orders_low_band", 0)),
            recent_orders={k: list(v) for k, v in (g("recent_orders") or {}).items()},
            purchase_categories=dict(g("purchase_categories") or {}),
            recent_purchases={k: float(v) for k, v in (g("recent_purchases") or {}).items()},
            new_parent=bool(g("new_parent", False)),
            favourites={k: list(v) for k, v in (g("favourites") or {}).items()},
            activity=activity.from_dict(g("activity")),
        )


# ---------------------------------------------------------------------------------------------
# public functions


def visitor_type(j: CustomerJourney) -> str:
    """The seed's group of the customer now: bought before (customer or lapsed), else by visits.

    Read after the event's session was counted and before its order is: `j.segment` then holds
    the segment re-evaluated at the event's time, `lapsed` included.
    """
    if j.orders_placed or j.stage in BUYER_STAGES:
        return LAPSED if j.segment == LAPSED else CUSTOMER
    return RETURNING_VISITOR if j.sessions >= 2 else NEW_VISITOR


def segment_at(state: CustomerJourney | None, now: float, config: JourneyConfig) -> str | None:
    """The segment of a journey at time `now` (None for no journey)."""
    if state is None or state.stage is None:
        return None
    if state.stage in BUYER_STAGES:
        return LAPSED if now - state.last_seen >= config.lapsed_after_s else CUSTOMER
    return RETURNING_VISITOR if state.sessions >= 2 else NEW_VISITOR


@overload
def apply(
    state: CustomerJourney,
    event: CustomerEvent,
    now: float,
    config: JourneyConfig = ...,
    *,
    customer_key: str,
) -> tuple[CustomerJourney, list[Output]]: ...


@overload
def apply(
    state: None,
    event: CustomerEvent,
    now: float,
    config: JourneyConfig = ...,
    *,
    customer_key: str,
) -> tuple[CustomerJourney | None, list[Output]]: ...


def apply(
    state: CustomerJourney | None,
    event: CustomerEvent,
    now: float,
    config: JourneyConfig = DEFAULT_CONFIG,
    *,
    customer_key: str,
) -> tuple[CustomerJourney | None, list[Output]]:
    """Apply one customer event; mutates and returns `state` (None stays None if irrelevant)."""
    cls = type(event)
    if cls is not PageView and cls is not CartChange and cls is not Order:
        return state, [irrelevant("not_journey_event")]
    cap = config.max_text_len
    if cls is Order:
        assert isinstance(event, Order)
        if event.action != "placed":
            return _cancel(state, event, config)
        if state is not None and clip(event.order_id, cap) in state.recent_orders:
            return state, [irrelevant("known_order")]
    t = event.occurred_at
    out: list[Output] = []
    triggers: list[str] = []
    sid = event.session_id
    if sid is not None and len(sid) > cap:
        sid = clip(sid, cap)
    late = False
    j = state
    if j is None:
        j = CustomerJourney(
            customer_key=customer_key,
            customer_id=clip(customer_key[2:], cap) if customer_key.startswith("c:") else None,
            first_seen=t,
            last_seen=t,
            sessions=1,
            session_id=sid,
            session_start=t,
        )
        triggers.append(FIRST_CONTACT)
    else:
        seg = segment_at(j, t, config)
        if seg != j.segment:
            out.append(_segment_record(j, event, seg, LAPSE))
            j.segment = seg
        last = j.last_seen
        if t >= last:
            if t - last >= config.session_gap_s or (
                sid is not None and j.session_id is not None and sid != j.session_id
            ):
                j.sessions += 1
                j.session_start = t
                j.session_id = sid
                j.session_categories.clear()
                triggers.append(RETURN_VISIT)
                out.append(
                    {
                        "type": "signal",
                        "name": "return_visit",
                        "never_purchased": not j.orders_placed,
                    }
                )
            elif j.session_id is None:
                j.session_id = sid
            j.last_seen = t
        else:
            late = t < last - config.out_of_order_grace_s
            if t < j.first_seen:
                j.first_seen = t
    anon = event.anonymous_id
    if anon is not None and anon != j.anonymous_id:
        j.anonymous_id = clip(anon, cap)
    visitor = visitor_type(j)
    day = activity.day_of(t, config.timezone)
    returned = RETURN_VISIT in triggers and not j.orders_placed
    activity.visit(j.activity, day, visitor, returned_unbought=returned, keep=config.activity_days)

    if cls is PageView:
        assert isinstance(event, PageView)
        _view(j, event, t, late, triggers, config)
    elif cls is CartChange:
        assert isinstance(event, CartChange)
        _cart(j, event, t, late, triggers, config)
    else:
        assert isinstance(event, Order)
        path = activity.PATH_OF[visitor]
        _order(j, event, t, config)
        activity.order(j.activity, day, visitor, event.total)
        triggers.append(ORDER_PLACED)

    for trigger in triggers:
        before = j.stage
        after = TRANSITIONS.get((before, trigger), before)
        if after != before:
            j.stage = after
            out.append(
                transition_record(
                    j,
                    KIND_STAGE,
                    after or "",
                    event.event_id,
                    t,
                    event.anonymous_id,
                    trigger,
                    from_stage=before,
                    to_stage=after,
                    from_segment=j.segment,
                    to_segment=j.segment,
                )
            )
        if trigger == ORDER_PLACED:
            assert isinstance(event, Order)
            oid = clip(event.order_id, cap)
            out.append(
                transition_record(
                    j,
                    KIND_PURCHASE,
                    oid,
                    event.event_id,
                    t,
                    event.anonymous_id,
                    trigger,
                    from_stage=before,
                    to_stage=after,
                    from_segment=j.segment,
                    to_segment=CUSTOMER,
                    path=path,
                    order_id=oid,
                    order_value=event.total,
                )
            )
    seg = segment_at(j, j.last_seen, config)
    if seg != j.segment:
        out.append(_segment_record(j, event, seg, _segment_trigger(triggers)))
        j.segment = seg
    if late:
        out.append({"type": "signal", "name": "out_of_order"})
    return j, out


def merge(
    target: CustomerJourney, source: CustomerJourney, config: JourneyConfig = DEFAULT_CONFIG
) -> CustomerJourney:
    """Fold `source` (an anonymous history) into `target`; mutates and returns `target`.

    first/last seen: min/max; counters summed; recent lists merged by time (same key: the later
    entry) and re-bounded; cart lines bought at or after their last change are dropped; stage:
    the further one (repurchase once two orders were placed);
    sessions summed, minus one when the two current sessions are the same visit (same session id,
    or within `session_gap_s` of each other), in which case they are joined. `segment` is left as
    it was: the caller re-evaluates it and reports the change.
    """
    t, s = target, source
    gap = config.session_gap_s
    if t.sessions == 0 or s.sessions == 0:
        same_visit = False
    elif t.session_id is not None and s.session_id is not None:
        same_visit = t.session_id == s.session_id
    else:
        same_visit = s.session_start - t.last_seen < gap and t.session_start - s.last_seen < gap
    if same_visit:
        t.session_start = min(t.session_start, s.session_start)
        t.session_id = t.session_id if t.session_id is not None else s.session_id
        t.session_categories = _sum_counts(
            t.session_categories, s.session_categories, config.max_session_categories
        )
    elif s.sessions > 0 and (t.sessions == 0 or s.last_seen > t.last_seen):
        t.session_start = s.session_start
        t.session_id = s.session_id
        t.session_categories = dict(s.session_categories)
    t.sessions = t.sessions + s.sessions - (1 if same_visit else 0)
    t.first_seen = min(t.first_seen, s.first_seen)
    t.last_seen = max(t.last_seen, s.last_seen)
    t.customer_id = t.customer_id if t.customer_id is not None else s.customer_id
    t.anonymous_id = t.anonymous_id if t.anonymous_id is not None else s.anonymous_id

    t.views += s.views
    t.priced_views += s.priced_views
    t.view_price_sum += s.view_price_sum
    t.views_by_category = _sum_counts(
        t.views_by_category, s.views_by_category, config.max_categories
    )
    t.recent_views = _merge_recent(t.recent_views, s.recent_views, 2, config.max_recent_views)
    t.favourites = _merge_recent(t.favourites, s.favourites, 1, config.max_recent_views)

    t.orders += s.orders
    t.orders_placed += s.orders_placed
    t.total_spend += s.total_spend
    t.units_bought += s.units_bought
    t.units_value += s.units_value
    t.orders_below_view_avg += s.orders_below_view_avg
    t.orders_low_band += s.orders_low_band
    for oid, entry in s.recent_orders.items():
        if oid in t.recent_orders:  # the same order in both histories: count it once
            _count_order(t, entry, -1)
            t.orders_placed -= 1
    t.recent_orders = _merge_recent(t.recent_orders, s.recent_orders, 3, config.max_recent_orders)
    if s.last_order_at is not None and (
        t.last_order_at is None or s.last_order_at > t.last_order_at
    ):
        t.last_order_at = s.last_order_at
    t.purchase_categories = _sum_counts(
        t.purchase_categories, s.purchase_categories, config.max_purchase_categories
    )
    t.recent_purchases = _merge_times(
        t.recent_purchases, s.recent_purchases, config.max_recent_purchases
    )
    t.new_parent = t.new_parent or s.new_parent
    t.activity = activity.merge(t.activity, s.activity, config.activity_days)
    t.cart = carts.merge(t.cart, s.cart, t.recent_purchases, config.max_cart_lines)

    t.stage = merged_stage(t.stage, s.stage, t.orders_placed)
    return t


def profile(state: CustomerJourney, now: float, config: JourneyConfig = DEFAULT_CONFIG) -> Output:
    """A read-only view of the profile with its derived fields (segment at `now`, tags, ...)."""
    j = state
    return {
        "customer_key": j.customer_key,
        "customer_id": j.customer_id,
        "anonymous_id": j.anonymous_id,
        "stage": j.stage,
        "segment": segment_at(j, now, config),
        "first_seen": j.first_seen,
        "last_seen": j.last_seen,
        "sessions": j.sessions,
        "session": {"id": j.session_id, "start": j.session_start, "last_activity": j.last_seen},
        "views_by_category": dict(j.views_by_category),
        "recent_views": [
            {"product_id": p, "category": v[0], "price": v[1], "at": v[2]}
            for p, v in j.recent_views.items()
        ],
        "favourites": [
            {"product_id": p, "category": v[0], "at": v[1]} for p, v in j.favourites.items()
        ],
        "cart": [
            {
                "product_id": p,
                "quantity": v.quantity,
                "unit_price": v.price,
                "category": v.category,
                "at": v.at,
            }
            for p, v in j.cart.items()
        ],
        "orders": j.orders,
        "total_spend": j.total_spend,
        "average_order_value": j.average_order_value,
        "last_order_at": j.last_order_at,
        "recent_order_ids": list(j.recent_orders),
        "favourite_categories": j.favourite_categories(config.favourite_categories),
        "price_band": j.price_band(config),
        "recently_purchased": [{"product_id": p, "at": at} for p, at in j.recent_purchases.items()],
        "tags": j.tags(config),
    }


def transition_id(customer_key: str, event_id: str, kind: str, qualifier: str) -> str:
    """Deterministic record id: sha1 of `customer_key|event_id|kind|qualifier`, hex[:20]."""
    text = f"{customer_key}|{event_id}|{kind}|{qualifier}"
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]


def transition_record(
    j: CustomerJourney,
    kind: str,
    qualifier: str,
    event_id: str,
    t: float,
    anonymous_id: str | None,
    trigger: str,
    *,
    from_stage: str | None,
    to_stage: str | None,
    from_segment: str | None,
    to_segment: str | None,
    path: str | None = None,
    order_id: str | None = None,
    order_value: float | None = None,
) -> Output:
    """One `journey_transition` record for journey `j`."""
    return {
        "type": RECORD_TYPE,
        "version": FAVOURITE_VERSION if trigger == FAVOURITE else VERSION,
        "id": transition_id(j.customer_key, event_id, kind, qualifier),
        "customer_key": j.customer_key,
        "customer_id": j.customer_id,
        "anonymous_id": anonymous_id if anonymous_id is not None else j.anonymous_id,
        "kind": kind,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "from_segment": from_segment,
        "to_segment": to_segment,
        "trigger": trigger,
        "path": path,
        "order_id": order_id,
        "order_value": order_value,
        "occurred_at": format_time(t),
        "event_id": event_id,
    }


def format_time(t: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`."""
    t = min(max(t, 0.0), 253402300799.999)
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def irrelevant(reason: str) -> Output:
    """The `irrelevant` signal."""
    return {"type": "signal", "name": "irrelevant", "reason": reason}


def is_new_parent_category(category: str, keywords: tuple[str, ...]) -> bool:
    """Whether a category name contains one of the new-parent keywords (case-insensitive)."""
    return _parent_category(category, keywords)


# ---------------------------------------------------------------------------------------------
# internals


@lru_cache(maxsize=4096)
def _parent_category(category: str, keywords: tuple[str, ...]) -> bool:
    low = category.lower()
    return any(k in low for k in keywords)


def _segment_record(j: CustomerJourney, event: CustomerEvent, seg: str | None, trig: str) -> Output:
    return transition_record(
        j,
        KIND_SEGMENT,
        seg or "",
        event.event_id,
        event.occurred_at,
        event.anonymous_id,
        trig,
        from_stage=j.stage,
        to_stage=j.stage,
        from_segment=j.segment,
        to_segment=seg,
    )


def _segment_trigger(triggers: list[str]) -> str:
    for trigger in (ORDER_PLACED, RETURN_VISIT, FIRST_CONTACT):
        if trigger in triggers:
            return trigger
    return ACTIVITY


def _view(
    j: CustomerJourney,
    event: PageView,
    t: float,
    late: bool,
    triggers: list[str],
    config: JourneyConfig,
) -> None:
    cap = config.max_text_len
    cat = event.category
    if len(cat) > cap:
        cat = clip(cat, cap)
    pid = event.product_id
    if len(pid) > cap:
        pid = clip(pid, cap)
    if event.action == "favourite":
        _remember(j.favourites, pid, [cat, t], t, 1, config.max_recent_views)
        if not late:
            triggers.append(FAVOURITE)
        return
    j.views += 1
    if event.price is not None:
        j.priced_views += 1
        j.view_price_sum += event.price
    _count(j.views_by_category, cat, 1, config.max_categories)
    _remember(j.recent_views, pid, [cat, event.price, t], t, 2, config.max_recent_views)
    if not j.new_parent and _parent_category(cat, config.new_parent_keywords):
        j.new_parent = True
    if not late and t >= j.session_start:
        n = _count(j.session_categories, cat, 1, config.max_session_categories)
        if n == config.seed_category_views:
            triggers.append(CATEGORY_INTEREST)


def _cart(
    j: CustomerJourney,
    event: CartChange,
    t: float,
    late: bool,
    triggers: list[str],
    config: JourneyConfig,
) -> None:
    cap = config.max_text_len
    pid = clip(event.product_id, cap)
    cat = clip(event.category, cap) if event.category is not None else None
    if cat is not None and not j.new_parent and _parent_category(cat, config.new_parent_keywords):
        j.new_parent = True
    step = carts.change(
        j.cart,
        pid,
        event.action,
        event.quantity,
        t,
        clip(event.event_id, cap),
        price=event.price,
        category=cat,
        bought_at=j.recent_purchases.get(pid),
        cap=config.max_cart_lines,
    )
    if step.raised and not late:
        triggers.append(ADD_TO_CART)


def _order(j: CustomerJourney, event: Order, t: float, config: JourneyConfig) -> None:
    cap = config.max_text_len
    keywords = config.new_parent_keywords
    units = 0
    value = 0.0
    bought: list[tuple[str, int]] = []
    for line in event.lines:
        units += line.quantity
        value += line.quantity * line.unit_price
        pid = clip(line.product_id, cap)
        _remember_time(j.recent_purchases, pid, t, config.max_recent_purchases)
        bought.append((pid, line.quantity))
        if line.category is not None:
            cat = clip(line.category, cap)
            _count(j.purchase_categories, cat, 1, config.max_purchase_categories)
            if not j.new_parent and _parent_category(cat, keywords):
                j.new_parent = True
    carts.buy(j.cart, bought, t)  # only the lines it bought, by the units bought
    avg = value / units if units > 0 else None
    below = avg is not None and j.priced_views > 0 and avg < j.view_price_sum / j.priced_views
    low = avg is not None and avg < config.price_band_low
    entry = [event.total, units, value, t, int(below), int(low)]
    _count_order(j, entry, 1)
    j.orders_placed += 1
    if j.last_order_at is None or t > j.last_order_at:
        j.last_order_at = t
    _remember(j.recent_orders, clip(event.order_id, cap), entry, t, 3, config.max_recent_orders)


def _count_order(j: CustomerJourney, entry: list[Any], sign: int) -> None:
    total, units, value, _t, below, low = entry
    j.orders += sign
    j.total_spend += sign * total
    j.units_bought += sign * units
    j.units_value += sign * value
    j.orders_below_view_avg += sign * below
    j.orders_low_band += sign * low


def _cancel(
    state: CustomerJourney | None, event: Order, config: JourneyConfig
) -> tuple[CustomerJourney | None, list[Output]]:
    oid = clip(event.order_id, config.max_text_len)
    entry = state.recent_orders.pop(oid, None) if state is not None else None
    if state is None or entry is None:
        return state, [irrelevant("unknown_order")]
    j = state
    _count_order(j, entry, -1)
    if j.orders <= 0:
        j.total_spend = 0.0
        j.units_value = 0.0
        j.last_order_at = None
    elif j.last_order_at == entry[3]:
        latest = max((e[3] for e in j.recent_orders.values()), default=None)
        if latest is not None:
            j.last_order_at = latest
    return j, [{"type": "signal", "name": "order_cancelled"}]


def _count(counts: dict[str, int], key: str, n: int, cap: int) -> int:
    v = counts.get(key)
    if v is None:
        if len(counts) >= cap:
            del counts[min(counts, key=counts.__getitem__)]
        counts[key] = n
        return n
    v += n
    counts[key] = v
    return v


def _remember(
    d: dict[str, list[Any]], key: str, value: list[Any], t: float, at: int, cap: int
) -> None:
    old = d.get(key)
    if old is not None:
        if old[at] > t:
            return
        del d[key]
    if d and next(reversed(d.values()))[at] > t:
        d[key] = value
        items = sorted(d.items(), key=lambda kv: kv[1][at])[-cap:]
        d.clear()
        d.update(items)
        return
    d[key] = value
    if len(d) > cap:
        del d[next(iter(d))]


def _remember_time(d: dict[str, float], key: str, t: float, cap: int) -> None:
    old = d.get(key)
    if old is not None:
        if old > t:
            return
        del d[key]
    if d and next(reversed(d.values())) > t:
        d[key] = t
        items = sorted(d.items(), key=lambda kv: kv[1])[-cap:]
        d.clear()
        d.update(items)
        return
    d[key] = t
    if len(d) > cap:
        del d[next(iter(d))]


def _sum_counts(a: dict[str, int], b: dict[str, int], cap: int) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    if len(out) > cap:
        out = dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:cap])
    return out


def _merge_recent(
    a: dict[str, list[Any]], b: dict[str, list[Any]], at: int, cap: int
) -> dict[str, list[Any]]:
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        if old is None or v[at] > old[at]:
            out[k] = v
    return dict(sorted(out.items(), key=lambda kv: (kv[1][at], kv[0]))[-cap:])


def _merge_times(a: dict[str, float], b: dict[str, float], cap: int) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        if k not in out or v > out[k]:
            out[k] = v
    return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0]))[-cap:])


def _same(value: Any) -> Any:
    """The value itself (`CustomerJourney.to_dict` without copies)."""
    return value
