"""Audiences: the customers of a group, selected from stored customer states and paged (pure).

A query names any of: a segment (at `now`), a stage, a profile tag, a last-seen interval, whether
the customer has bought, and an interval in which a cart of theirs was abandoned. Every given
condition must hold. Intervals are half-open, `from <= t < to`; either bound may be left out.

* bought: a placed order is on the journey (stage purchase or repurchase, or a placed order
  counted), the rule of the `customer` segment; an order cancelled later still counts.
* abandoned cart: a `cart` abandonment fired whose time (the cart's last activity plus the cart
  delay, the `due` of its marker) is in the interval. Only the markers the state keeps are
  seen: the last `max_fired` abandonments (cart and browse) of each customer key.
* keys without a journey (an anonymous key aliased to a customer key, a forgotten customer) are
  never selected; an anonymous key with its own journey is, with `customer_id` None.

Rows are sorted by customer key; a page holds at most `limit` rows after the key `after` (the
last key of the previous page) and says the key to ask the next page from, if there is one.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from journey.abandonment import CART, AbandonmentState
from journey.config import DEFAULT_CONFIG, JourneyConfig
from journey.stages import (
    BUYER_STAGES,
    SEGMENTS,
    STAGES,
    TAGS,
    CustomerJourney,
    segment_at,
)

# the query's parameters, as the API and the command line name them
PARAMETERS = (
    "segment",
    "stage",
    "tag",
    "seen_from",
    "seen_to",
    "bought",
    "abandoned_cart_from",
    "abandoned_cart_to",
    "limit",
    "after",
)
TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no"})

StoredState = Mapping[str, Any] | bytes


class AudienceError(ValueError):
    """A query parameter that cannot be used; the message says which and what is accepted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudienceQuery:
    """The conditions of an audience (None: any) and the page asked for."""

    segment: str | None = None
    stage: str | None = None
    tag: str | None = None
    seen_from: float | None = None
    seen_to: float | None = None
    bought: bool | None = None
    abandoned_cart_from: float | None = None
    abandoned_cart_to: float | None = None
    limit: int | None = None
    after: str | None = None

    def __post_init__(self) -> None:
        """Reject unknown names, empty intervals and a limit below one."""
        for name, value, valid in (
            ("segment", self.segment, SEGMENTS),
            ("stage", self.stage, STAGES),
            ("tag", self.tag, TAGS),
        ):
            if value is not None and value not in valid:
                raise AudienceError(f"unknown {name} {value!r}: one of {', '.join(valid)}")
        for name, low, high in (
            ("seen", self.seen_from, self.seen_to),
            ("abandoned_cart", self.abandoned_cart_from, self.abandoned_cart_to),
        ):
            if low is not None and high is not None and low >= high:
                raise AudienceError(f"{name}_from must be before {name}_to")
        if self.limit is not None and self.limit < 1:
            raise AudienceError("limit must be at least 1")

    @property
    def wants_abandoned_cart(self) -> bool:
        """Whether the query asks for a cart abandoned in an interval."""
        return self.abandoned_cart_from is not None or self.abandoned_cart_to is not None


@dataclass(frozen=True, slots=True)
class AudienceRow:
    """One customer of an audience (times: epoch seconds UTC; revenue: net spend)."""

    customer_key: str
    customer_id: str | None
    anonymous_id: str | None
    segment: str | None
    stage: str | None
    tags: tuple[str, ...]
    first_seen: float
    last_seen: float
    sessions: int
    orders: int
    revenue: float
    last_order_at: float | None
    last_cart_abandoned_at: float | None


@dataclass(frozen=True, slots=True)
class AudiencePage:
    """The rows of one page, by key, and the key after which the next page starts (or None)."""

    rows: tuple[AudienceRow, ...]
    next_after: str | None


def parse_time(name: str, value: str) -> float:
    """Epoch seconds, or an ISO 8601 date or time (UTC unless it carries an offset)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise AudienceError(f"{name} must be a finite time, not {value!r}")
        return number
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise AudienceError(
            f"{name} must be epoch seconds or an ISO 8601 time, not {value!r}"
        ) from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()


def parse_bool(name: str, value: str) -> bool:
    """true/false, 1/0 or yes/no (any case)."""
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise AudienceError(f"{name} must be true or false, not {value!r}")


def parse_query(params: Mapping[str, str], *, max_limit: int | None = None) -> AudienceQuery:
    """The query of text parameters (API query string, command-line options); empty = absent."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise AudienceError(f"unknown parameter {unknown[0]!r}: one of {', '.join(PARAMETERS)}")
    given = {k: v for k, v in params.items() if v is not None and v.strip() != ""}
    limit = None
    if "limit" in given:
        try:
            limit = int(given["limit"])
        except ValueError:
            raise AudienceError(f"limit must be a whole number, not {given['limit']!r}") from None
        if max_limit is not None and limit > max_limit:
            raise AudienceError(f"limit must be at most {max_limit}")

    def moment(name: str) -> float | None:
        return parse_time(name, given[name]) if name in given else None

    return AudienceQuery(
        segment=given.get("segment"),
        stage=given.get("stage"),
        tag=given.get("tag"),
        seen_from=moment("seen_from"),
        seen_to=moment("seen_to"),
        bought=parse_bool("bought", given["bought"]) if "bought" in given else None,
        abandoned_cart_from=moment("abandoned_cart_from"),
        abandoned_cart_to=moment("abandoned_cart_to"),
        limit=limit,
        after=given.get("after"),
    )


def cart_abandonments(abandonment: Any, config: JourneyConfig = DEFAULT_CONFIG) -> list[float]:
    """The times of the cart abandonments a stored abandonment state remembers."""
    if not isinstance(abandonment, Mapping) or not abandonment:
        return []
    state = AbandonmentState.from_dict(dict(abandonment), config.abandonment)
    return [f.due for f in state.fired if f.kind == CART]


def member(
    key: str,
    state: Mapping[str, Any],
    query: AudienceQuery,
    now: float,
    config: JourneyConfig = DEFAULT_CONFIG,
) -> AudienceRow | None:
    """The customer's row when its stored state meets every condition of the query, else None."""
    data = state.get("journey")
    if not isinstance(data, Mapping) or not data:
        return None
    j = CustomerJourney.from_dict(dict(data))
    if query.stage is not None and j.stage != query.stage:
        return None
    if not _within(j.last_seen, query.seen_from, query.seen_to):
        return None
    if query.bought is not None and query.bought != (
        j.orders_placed > 0 or j.stage in BUYER_STAGES
    ):
        return None
    segment = segment_at(j, now, config)
    if query.segment is not None and segment != query.segment:
        return None
    tags = tuple(sorted(j.tags(config)))
    if query.tag is not None and query.tag not in tags:
        return None
    carts = cart_abandonments(state.get("abandonment"), config)
    if query.wants_abandoned_cart and not any(
        _within(t, query.abandoned_cart_from, query.abandoned_cart_to) for t in carts
    ):
        return None
    return AudienceRow(
        customer_key=key,
        customer_id=j.customer_id,
        anonymous_id=j.anonymous_id,
        segment=segment,
        stage=j.stage,
        tags=tags,
        first_seen=j.first_seen,
        last_seen=j.last_seen,
        sessions=j.sessions,
        orders=j.orders,
        revenue=round(j.total_spend, 2),
        last_order_at=j.last_order_at,
        last_cart_abandoned_at=max(carts, default=None),
    )


def select(
    items: Iterable[tuple[str | bytes, StoredState]],
    query: AudienceQuery,
    now: float,
    config: JourneyConfig = DEFAULT_CONFIG,
) -> AudiencePage:
    """The page of the audience among (customer key, stored state) pairs, sorted by key.

    A state is a decoded dict or its stored bytes (decoded only when its key is past `after`);
    top-level fields other than `journey` and `abandonment` (such as a record's outbox) are
    not read.
    """
    rows = _rows(items, query, now, config)
    if query.limit is None:
        return AudiencePage(tuple(sorted(rows, key=_by_key)), None)
    first = heapq.nsmallest(query.limit + 1, rows, key=_by_key)
    page = tuple(first[: query.limit])
    more = len(first) > query.limit
    return AudiencePage(page, page[-1].customer_key if more else None)


def merge_pages(pages: Iterable[AudiencePage], limit: int | None) -> AudiencePage:
    """One page of the union of workers' pages of the same query (each answered for its keys).

    Each worker's page holds its first `limit` keys after `after`, so the first `limit` keys of
    the union are the first `limit` of the whole store; there are more when any page said so or
    the union is longer than `limit`.
    """
    pages = list(pages)
    rows = sorted((row for page in pages for row in page.rows), key=_by_key)
    if limit is None:
        return AudiencePage(tuple(rows), None)
    page = tuple(rows[:limit])
    more = len(rows) > limit or any(p.next_after is not None for p in pages)
    return AudiencePage(page, page[-1].customer_key if more and page else None)


# ---------------------------------------------------------------------------------------------
# internals


def _rows(
    items: Iterable[tuple[str | bytes, StoredState]],
    query: AudienceQuery,
    now: float,
    config: JourneyConfig,
) -> Iterator[AudienceRow]:
    after = query.after
    for raw_key, value in items:
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        if after is not None and key <= after:
            continue
        state = orjson.loads(value) if isinstance(value, bytes) else value
        if not isinstance(state, Mapping):
            continue
        row = member(key, state, query, now, config)
        if row is not None:
            yield row


def _by_key(row: AudienceRow) -> str:
    return row.customer_key


def _within(t: float, low: float | None, high: float | None) -> bool:
    return (low is None or t >= low) and (high is None or t < high)
