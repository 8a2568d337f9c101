"""Cart and browse abandonment with deadlines, exactly-once ids and recovery tracking (pure core).

Model (all times are epoch seconds, UTC; deadlines use *event* time):

* Cart: the customer's one cart is ``journey.cart.Cart`` (its lines, id and last activity, and the
  rules of every change: add, remove, set_quantity, and an order removing the lines it bought).
  It lives in the journey; this core is handed it (``cart=``), after the event, and keeps only
  the deadline. While the cart has lines a ``cart`` deadline is pending at ``last cart activity +
  cart_delay_s``; emptying the cart (by changes or by an order that bought every line) cancels
  it; new activity moves it (an order that bought some of the lines is cart activity: the lines
  it did not buy stay, and are abandoned ``cart_delay_s`` after it). When it passes, one
  ``cart_abandoned`` record is emitted with the lines still in the cart.
* Browse: every customer event is session activity. A session ends after ``session_gap_s`` of
  inactivity (an event at exactly ``last + gap`` already starts a new session) or when an event
  carries an explicit session id different from the session's (an event without a session id never
  ends a session; a session without an explicit id adopts the first one it sees). An event older
  than the session's start, or carrying the id of a session ended by a new id, is late: it changes
  the cart but not the session. Add-to-cart means ``add``/``set_quantity`` with quantity > 0.
  A session *qualifies* when one category has >= ``browse_min_products`` distinct products
  viewed and the session has no add-to-cart and no placed order; a qualifying session has a
  ``browse`` deadline at ``last activity + session_gap_s``. When the session ends, one
  ``browse_abandoned`` record names the category with the most distinct products (ties: the most
  recently viewed one). A favourite (page view with action favourite) is session activity but
  not a view. A view without a price lists its product with price and tier null; such a record
  carries version 1-0-1 (every other 1-0-0).
* Deadlines live in the state (``pending``); ``next_due`` gives the earliest, ``fire`` emits
  what is due and re-checks against the current cart/session first. ``apply`` fires deadlines
  already passed at the event's time before processing it, so replays are ordered correctly.
* Ids: ``sha1(customer_key|kind|cart or session ref|due)[:20]``; the last ``max_fired`` fired ids
  are kept as markers, so a repeated fire never emits the same abandonment twice.
* Recovery: a placed order within ``recovery_window_s`` after a fired abandonment *matches* it
  when the order contains at least one product of the abandoned cart (cart), or of the abandoned
  category (browse: an order line of that category, or one of the products viewed there). Rule
  ``recovery_rule``: ``product_overlap`` (default) recovers matching abandonments only;
  ``any_order`` recovers on any order (the rule before 1-0-1). An abandonment fired before its
  products were remembered (a state written by an older version) matches every order. The order
  emits one ``abandonment_recovered`` per kind (for the latest recovered one of that kind), with
  the matching order lines (``recovered_products``) and their value; every abandonment of that
  kind it recovers is then closed, so each one recovers at most once. One that did not match
  stays open for a later order.

End of a replay: call ``flush`` (``fire`` with ``now=math.inf``) to emit every remaining deadline.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from journey.cart import Cart
from schemas.records import CartChange, CustomerEvent, IdentityLink, Order, PageView

VERSION = "1-0-0"
PRICELESS_VERSION = "1-0-1"  # browse_abandoned whose products may have a null price
RECOVERED_VERSION = "1-0-1"  # abandonment_recovered with recovered_products/value and the rule
CART = "cart"
BROWSE = "browse"
PRICE_TIERS = frozenset({"low", "mid", "high"})
STATE_FORMAT = 1
# recovery rules
PRODUCT_OVERLAP = "product_overlap"
ANY_ORDER = "any_order"
RECOVERY_RULES = (PRODUCT_OVERLAP, ANY_ORDER)
EMPTY_CART = Cart()

TierOf = Callable[[str, float], str | None]
Output = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonmentConfig:
    """Delays, thresholds and state bounds of the abandonment core."""

    cart_delay_s: float = 3600.0
    session_gap_s: float = 1800.0
    browse_min_products: int = 3
    recovery_window_s: float = 7 * 86400.0
    # which orders recover an abandonment: `product_overlap` (at least one product of the
    # abandoned cart / category) or `any_order`
    recovery_rule: str = PRODUCT_OVERLAP
    max_categories: int = 20
    max_products_per_category: int = 20
    max_fired: int = 20
    max_ended_sessions: int = 5
    max_id_len: int = 128

    def __post_init__(self) -> None:
        """Reject configurations that would break the bounds or the rules."""
        if self.cart_delay_s <= 0 or self.session_gap_s <= 0 or self.recovery_window_s < 0:
            raise ValueError("delays must be positive and the recovery window non-negative")
        if not 1 <= self.browse_min_products <= self.max_products_per_category:
            raise ValueError("browse_min_products must be in 1..max_products_per_category")
        if self.recovery_rule not in RECOVERY_RULES:
            raise ValueError(f"recovery_rule must be one of {', '.join(RECOVERY_RULES)}")
        for name in ("max_categories", "max_fired", "max_id_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_ended_sessions < 0:
            raise ValueError("max_ended_sessions must be >= 0")


DEFAULT_CONFIG = AbandonmentConfig()


class Deadline(NamedTuple):
    """A pending abandonment: kind (`cart`/`browse`), due time and the cart/session ref."""

    kind: str
    due: float
    ref: str


@dataclass(slots=True)
class Session:
    """The current session: identity, activity span and what was viewed, per category."""

    first_event_id: str
    started_at: float
    last_at: float
    sid: str | None = None
    views: dict[str, dict[str, float | None]] = field(default_factory=dict)
    carted: bool = False
    ordered: bool = False
    done: bool = False
    qualified: bool = False

    @property
    def ref(self) -> str:
        """The session identity used in ids: the explicit id, else `~<first event id>`."""
        return self.sid if self.sid is not None else "~" + self.first_event_id


@dataclass(slots=True)
class Fired:
    """A fired abandonment marker (dedupe and recovery).

    `products`: the abandoned cart's products (cart) or the products viewed in the abandoned
    category (browse); `category`: the abandoned category (browse). None for markers written
    before they were kept (such a marker matches any order).
    """

    id: str
    kind: str
    due: float
    recovered: bool = False
    products: list[str] | None = None
    category: str | None = None


@dataclass(slots=True)
class AbandonmentState:
    """Per-customer-key abandonment state; bounded by the config's limits."""

    session: Session | None = None
    pending: dict[str, Deadline] = field(default_factory=dict)
    fired: list[Fired] = field(default_factory=list)
    ended_sids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """An orjson-friendly snapshot (str/int/float/bool/None/list/dict only)."""
        s = self.session
        return {
            "v": STATE_FORMAT,
            "session": None
            if s is None
            else {
                "first_event_id": s.first_event_id,
                "started_at": s.started_at,
                "last_at": s.last_at,
                "sid": s.sid,
                "views": [[c, [[p, pr] for p, pr in ps.items()]] for c, ps in s.views.items()],
                "carted": s.carted,
                "ordered": s.ordered,
                "done": s.done,
            },
            "pending": [[d.kind, d.due, d.ref] for d in self.pending.values()],
            "fired": [
                [f.id, f.kind, f.due, f.recovered, f.products, f.category] for f in self.fired
            ],
            "ended_sids": list(self.ended_sids),
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], config: AbandonmentConfig = DEFAULT_CONFIG
    ) -> AbandonmentState:
        """Rebuild a state from `to_dict` output, re-applying the config's bounds.

        States written before the cart moved to the journey (`cart`, `cart_ref`, `cart_last`,
        `last_order` here, four-field `fired` markers) are read too: the cart fields are left to
        `journey.customer.CustomerState.from_dict`, old markers have no products.
        """
        st = cls()
        sd = data.get("session")
        if sd:
            s = Session(
                first_event_id=str(sd["first_event_id"]),
                started_at=float(sd["started_at"]),
                last_at=float(sd["last_at"]),
                sid=sd.get("sid"),
                carted=bool(sd.get("carted")),
                ordered=bool(sd.get("ordered")),
                done=bool(sd.get("done")),
            )
            for cat, prods in sd.get("views") or ():
                ps = {str(p): None if pr is None else float(pr) for p, pr in prods}
                _trim_dict(ps, config.max_products_per_category)
                s.views[str(cat)] = ps
            _trim_dict(s.views, config.max_categories)
            s.qualified = _qualifies(s, config)
            st.session = s
        for kind, due, ref in data.get("pending") or ():
            if kind in (CART, BROWSE):
                st.pending[kind] = Deadline(kind, float(due), str(ref))
        st.fired = [_fired_from(m) for m in data.get("fired") or ()]
        del st.fired[: -config.max_fired]
        st.ended_sids = [str(x) for x in data.get("ended_sids") or ()]
        _trim_list(st.ended_sids, config.max_ended_sessions)
        return st


# ---------------------------------------------------------------------------------------------
# public API


def apply(
    state: AbandonmentState | None,
    event: CustomerEvent,
    now: float,
    config: AbandonmentConfig = DEFAULT_CONFIG,
    *,
    customer_key: str,
    tier_of: TierOf | None = None,
    cart: Cart | None = None,
) -> tuple[AbandonmentState, list[Output]]:
    """Record one event: fire deadlines it shows passed, move/cancel deadlines, emit recoveries.

    `cart` is the customer's cart *after* the event (None: empty). The cart deadlines due at the
    event's time must be fired against the cart *before* the event changed it (`fire` with
    `now` = the event's time; `journey.customer.apply` does).
    """
    del now  # deadlines follow event time; `now` is part of the core signature only
    if state is None:
        state = AbandonmentState()
    if cart is None:
        cart = EMPTY_CART
    out: list[Output] = []
    t = event.occurred_at
    if not isinstance(event, (PageView, CartChange, Order, IdentityLink)) or not math.isfinite(t):
        return state, out
    if state.pending:
        _fire_due(state, cart, t, config, customer_key, tier_of, out)
    s = _track_session(state, event, t, config, customer_key, tier_of, out)
    if isinstance(event, CartChange):
        _sync_cart(state, cart, config, customer_key, out, "emptied")
        if s is not None and event.quantity > 0 and event.action != "remove":
            s.carted = True
    elif isinstance(event, Order) and event.action == "placed":
        _recover(state, event, t, config, customer_key, out)
        _sync_cart(state, cart, config, customer_key, out, "order")
        if s is not None:
            s.ordered = True
    elif isinstance(event, PageView) and s is not None and event.action == "view":
        _record_view(s, event, config)
    if s is not None:
        _schedule_browse(state, s, config, out)
    return state, out


def next_due(state: AbandonmentState | None) -> float | None:
    """The earliest pending deadline, or None when nothing is pending."""
    if state is None or not state.pending:
        return None
    return min(d.due for d in state.pending.values())


def fire(
    state: AbandonmentState,
    now: float,
    config: AbandonmentConfig = DEFAULT_CONFIG,
    *,
    customer_key: str,
    tier_of: TierOf | None = None,
    cart: Cart | None = None,
) -> tuple[AbandonmentState, list[Output]]:
    """Emit every abandonment due at `now` (due <= now) that still matches the current state."""
    out: list[Output] = []
    if state.pending:
        _fire_due(
            state, cart if cart is not None else EMPTY_CART, now, config, customer_key, tier_of, out
        )
    return state, out


def flush(
    state: AbandonmentState,
    config: AbandonmentConfig = DEFAULT_CONFIG,
    *,
    customer_key: str,
    tier_of: TierOf | None = None,
    cart: Cart | None = None,
) -> tuple[AbandonmentState, list[Output]]:
    """End of a replay: fire every remaining deadline (event time advanced past all of them)."""
    return fire(state, math.inf, config, customer_key=customer_key, tier_of=tier_of, cart=cart)


def merge(
    target: AbandonmentState | None,
    source: AbandonmentState,
    config: AbandonmentConfig = DEFAULT_CONFIG,
    *,
    cart: Cart | None = None,
) -> AbandonmentState:
    """One ID: fold an anonymous key's state into its customer's; mutates and returns `target`.

    Orders then reach the customer key only, so a cart or session left at the anonymous key
    could never be settled there. `cart` is the customer's cart after the merge (the journey
    merges the two carts, `journey.cart.merge`); its deadline is kept pending when either side
    had one pending (a cart whose abandonment already fired keeps none). The anonymous session
    replaces the customer's when its activity is more recent; fired markers are united, so the
    customer's order recovers an abandonment fired while anonymous.
    """
    t = target if target is not None else AbandonmentState()
    s = source
    cart_due = _cart_expected(cart if cart is not None else EMPTY_CART, config)
    if cart_due is None:
        t.pending.pop(CART, None)
    elif CART in s.pending or CART in t.pending:
        t.pending[CART] = cart_due
    if s.session is not None and (t.session is None or s.session.last_at > t.session.last_at):
        t.session = s.session
        browse_due = _browse_expected(t, config)
        if browse_due is not None:
            t.pending[BROWSE] = browse_due
        else:
            t.pending.pop(BROWSE, None)
    known = {f.id for f in t.fired}
    t.fired.extend(f for f in s.fired if f.id not in known)
    t.fired.sort(key=lambda f: f.due)
    _trim_list(t.fired, config.max_fired)
    t.ended_sids.extend(x for x in s.ended_sids if x not in t.ended_sids)
    _trim_list(t.ended_sids, config.max_ended_sessions)
    return t


def abandonment_id(customer_key: str, kind: str, ref: str, due: float) -> str:
    """The deterministic id of one abandonment."""
    return _sha("|".join((customer_key, kind, ref, f"{due:.3f}")))


def recovery_id(customer_key: str, abandonment: str, order_id: str) -> str:
    """The deterministic id of one recovery record."""
    return _sha("|".join((customer_key, "recovered", abandonment, order_id)))


def customer_id_of(customer_key: str) -> str | None:
    """`c:X` -> `X`; anonymous keys -> None."""
    return customer_key[2:] if customer_key.startswith("c:") else None


def rfc3339(t: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`."""
    t = min(max(t, 0.0), 253402300799.999)
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


# ---------------------------------------------------------------------------------------------
# internals


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]


def _trim_dict(d: dict[str, Any], cap: int) -> None:
    while len(d) > cap:
        del d[next(iter(d))]


def _trim_list(xs: list[Any], cap: int) -> None:
    if len(xs) > cap:
        del xs[: len(xs) - cap]


def _clip(s: str, config: AbandonmentConfig) -> str:
    return s if len(s) <= config.max_id_len else s[: config.max_id_len]


def _signal(name: str, kind: str, reason: str) -> Output:
    return {"type": "signal", "name": name, "kind": kind, "reason": reason}


def _header(kind_type: str, rid: str, customer_key: str, at: float) -> Output:
    return {
        "type": kind_type,
        "version": VERSION,
        "id": rid,
        "customer_key": customer_key,
        "customer_id": customer_id_of(customer_key),
        "occurred_at": rfc3339(at),
    }


def _qualifies(s: Session, config: AbandonmentConfig) -> bool:
    n = config.browse_min_products
    return any(len(ps) >= n for ps in s.views.values())


def _fired_from(m: list[Any]) -> Fired:
    """A stored marker: [id, kind, due, recovered] (older states) + [products, category]."""
    i, k, d, r = m[:4]
    products = m[4] if len(m) > 4 else None
    category = m[5] if len(m) > 5 else None
    return Fired(
        str(i),
        str(k),
        float(d),
        bool(r),
        [str(p) for p in products] if products is not None else None,
        str(category) if category is not None else None,
    )


def _cart_expected(cart: Cart, config: AbandonmentConfig) -> Deadline | None:
    if not cart or cart.last_activity is None or cart.ref is None:
        return None
    return Deadline(CART, cart.last_activity + config.cart_delay_s, cart.ref)


def _browse_expected(state: AbandonmentState, config: AbandonmentConfig) -> Deadline | None:
    s = state.session
    if s is None or s.done or s.carted or s.ordered or not s.qualified:
        return None
    return Deadline(BROWSE, s.last_at + config.session_gap_s, s.ref)


def _fire_due(
    state: AbandonmentState,
    cart: Cart,
    now: float,
    config: AbandonmentConfig,
    customer_key: str,
    tier_of: TierOf | None,
    out: list[Output],
) -> None:
    for dl in sorted(state.pending.values(), key=lambda d: (d.due, d.kind)):
        if dl.due > now:
            continue
        del state.pending[dl.kind]
        # re-check against the current state: it may have moved (e.g. config change) or gone
        exp = _cart_expected(cart, config) if dl.kind == CART else _browse_expected(state, config)
        if exp is None or exp.ref != dl.ref:
            out.append(_signal("abandonment_suppressed", dl.kind, "stale"))
            continue
        if exp.due > now:
            state.pending[dl.kind] = exp
            continue
        if dl.kind == CART:
            _emit_cart(state, cart, exp.due, config, customer_key, out)
        else:
            assert state.session is not None
            _emit_browse(
                state, state.session, exp.due, "inactivity", config, customer_key, tier_of, out
            )


def _mark(state: AbandonmentState, marker: Fired, config: AbandonmentConfig) -> bool:
    """Add a fired marker; False when this abandonment was already fired."""
    if _was_fired(state, marker.id):
        return False
    state.fired.append(marker)
    _trim_list(state.fired, config.max_fired)
    return True


def _was_fired(state: AbandonmentState, rid: str) -> bool:
    return any(f.id == rid for f in state.fired)


def _emit_cart(
    state: AbandonmentState,
    cart: Cart,
    due: float,
    config: AbandonmentConfig,
    customer_key: str,
    out: list[Output],
) -> None:
    ref = cart.ref
    last = cart.last_activity
    assert ref is not None and last is not None
    rid = abandonment_id(customer_key, CART, ref, due)
    products = [_clip(pid, config) for pid in cart]
    if not _mark(state, Fired(rid, CART, due, products=products), config):
        out.append(_signal("abandonment_duplicate", CART, "already_fired"))
        return
    lines = []
    value = 0.0
    items = 0
    for pid, ln in zip(products, cart.values(), strict=True):
        cat = _clip(ln.category, config) if ln.category is not None else None
        lines.append(
            {"product_id": pid, "quantity": ln.quantity, "price": ln.price, "category": cat}
        )
        items += ln.quantity
        if ln.price is not None:
            value += ln.quantity * ln.price
    rec = _header("cart_abandoned", rid, customer_key, due)
    rec.update(
        cart_id=_clip(ref, config),
        lines=lines,
        item_count=items,
        value=round(value, 2),
        last_activity_at=rfc3339(last),
        seconds_since_last_activity=max(due - last, 0.0),
    )
    out.append(rec)


def _tier(tier_of: TierOf | None, category: str, price: float | None) -> str | None:
    if tier_of is None or price is None:
        return None
    try:
        tier = tier_of(category, price)
    except Exception:  # an external lookup must never break the stream
        return None
    return tier if tier in PRICE_TIERS else None


def _emit_browse(
    state: AbandonmentState,
    s: Session,
    due: float,
    ended_by: str,
    config: AbandonmentConfig,
    customer_key: str,
    tier_of: TierOf | None,
    out: list[Output],
) -> None:
    s.done = True
    rid = abandonment_id(customer_key, BROWSE, s.ref, due)
    best = ""
    best_n = -1
    for cat, ps in s.views.items():  # ordered by recency: >= prefers the most recent on ties
        if len(ps) >= best_n:
            best, best_n = cat, len(ps)
    marker = Fired(rid, BROWSE, due, products=list(s.views[best]), category=best)
    if not _mark(state, marker, config):
        out.append(_signal("abandonment_duplicate", BROWSE, "already_fired"))
        return
    products = []
    high = 0
    for pid, price in s.views[best].items():
        tier = _tier(tier_of, best, price)
        is_high = tier == "high"
        high += is_high
        products.append(
            {"product_id": pid, "price": price, "price_tier": tier, "high_priced": is_high}
        )
    rec = _header("browse_abandoned", rid, customer_key, due)
    if any(p["price"] is None for p in products):
        rec["version"] = PRICELESS_VERSION
    rec.update(
        session_id=s.sid,
        session_started_at=rfc3339(s.started_at),
        ended_by=ended_by,
        category=best,
        products=products,
        distinct_products=len(products),
        high_priced_count=high,
        high_priced=2 * high > len(products),
        last_activity_at=rfc3339(s.last_at),
        seconds_since_last_activity=max(due - s.last_at, 0.0),
    )
    out.append(rec)


def _track_session(
    state: AbandonmentState,
    event: CustomerEvent,
    t: float,
    config: AbandonmentConfig,
    customer_key: str,
    tier_of: TierOf | None,
    out: list[Output],
) -> Session | None:
    """Put the event in a session (ending the current one if needed); None for a stale event."""
    sid = _clip(event.session_id, config) if event.session_id else None
    s = state.session
    if s is not None:
        new_sid = sid is not None and s.sid is not None and sid != s.sid
        if t < s.started_at or (new_sid and sid in state.ended_sids):
            return None  # a late (or re-delivered) event of an earlier session: no session effect
        if t - s.last_at >= config.session_gap_s:
            ended_by = "inactivity"
            due = s.last_at + config.session_gap_s
        elif new_sid:
            ended_by = "new_session"
            due = t
            if s.sid is not None and config.max_ended_sessions:
                state.ended_sids.append(s.sid)
                _trim_list(state.ended_sids, config.max_ended_sessions)
        else:
            if t > s.last_at:
                s.last_at = t
            if s.sid is None and sid is not None:
                s.sid = sid
            return s
        state.pending.pop(BROWSE, None)
        if not s.done and not s.carted and not s.ordered and s.qualified:
            _emit_browse(state, s, due, ended_by, config, customer_key, tier_of, out)
    s = Session(first_event_id=_clip(event.event_id, config), started_at=t, last_at=t, sid=sid)
    state.session = s
    return s


def _record_view(s: Session, event: PageView, config: AbandonmentConfig) -> None:
    cat = _clip(event.category, config)
    pid = _clip(event.product_id, config)
    ps = s.views.pop(cat, None)
    if ps is None:
        ps = {}
    s.views[cat] = ps  # most recently viewed category last
    _trim_dict(s.views, config.max_categories)
    seen = ps.pop(pid, None)  # a view without a price keeps the price seen before
    ps[pid] = seen if event.price is None else float(event.price)
    _trim_dict(ps, config.max_products_per_category)
    if len(ps) >= config.browse_min_products:
        s.qualified = True
    elif s.qualified and len(s.views) == config.max_categories:
        s.qualified = _qualifies(s, config)  # an eviction may have removed the qualifying one


def _schedule_browse(
    state: AbandonmentState, s: Session, config: AbandonmentConfig, out: list[Output]
) -> None:
    exp = _browse_expected(state, config)
    if exp is not None:
        state.pending[BROWSE] = exp
    elif state.pending.pop(BROWSE, None) is not None:
        reason = "order" if s.ordered else "cart_add" if s.carted else "other"
        out.append(_signal("abandonment_cancelled", BROWSE, reason))


def _sync_cart(
    state: AbandonmentState,
    cart: Cart,
    config: AbandonmentConfig,
    customer_key: str,
    out: list[Output],
    reason: str,
) -> None:
    """After a cart change or an order: the cart deadline follows the cart (pending, moved or
    cancelled); a deadline whose abandonment already fired is not scheduled again."""
    exp = _cart_expected(cart, config)
    if exp is not None and not _was_fired(
        state, abandonment_id(customer_key, CART, exp.ref, exp.due)
    ):
        state.pending[CART] = exp
    elif state.pending.pop(CART, None) is not None:
        out.append(_signal("abandonment_cancelled", CART, reason))


def _recover(
    state: AbandonmentState,
    order: Order,
    t: float,
    config: AbandonmentConfig,
    customer_key: str,
    out: list[Output],
) -> None:
    seen: set[str] = set()
    for f in reversed(state.fired):
        if f.recovered or f.due > t or t - f.due > config.recovery_window_s:
            continue
        matched = _matching_lines(f, order, config)
        if not matched and config.recovery_rule == PRODUCT_OVERLAP:
            continue  # stays open: a later order with its products may still recover it
        f.recovered = True
        if f.kind in seen:
            continue
        seen.add(f.kind)
        rec = _header(
            "abandonment_recovered",
            recovery_id(customer_key, f.id, order.order_id),
            customer_key,
            t,
        )
        rec["version"] = RECOVERED_VERSION
        rec.update(
            kind=f.kind,
            abandonment_id=f.id,
            abandoned_at=rfc3339(f.due),
            seconds_to_recover=t - f.due,
            order_id=order.order_id,
            order_value=order.total,
            currency=order.currency,
            recovery_rule=config.recovery_rule,
            recovered_products=matched,
            recovered_value=round(sum(m["quantity"] * m["unit_price"] for m in matched), 2),
        )
        out.append(rec)


def _matching_lines(f: Fired, order: Order, config: AbandonmentConfig) -> list[dict[str, Any]]:
    """The order lines of the abandoned cart's products (cart) or of its category (browse).

    A marker without products (written by an older version) matches every line.
    """
    products = set(f.products) if f.products is not None else None
    matched: list[dict[str, Any]] = []
    for line in order.lines:
        if products is not None and _clip(line.product_id, config) not in products:
            cat = _clip(line.category, config) if line.category is not None else None
            if f.kind != BROWSE or cat is None or cat != f.category:
                continue
        matched.append(
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "category": line.category,
            }
        )
    return matched
