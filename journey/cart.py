"""The customer's cart: the one cart model of the journey and the abandonment cores (pure).

One `Cart` per customer key lives in its journey (`CustomerJourney.cart`); the abandonment core
reads that same object for its deadlines and records, it keeps no cart of its own.

* Lines: product -> `CartLine(quantity, unit price | None, category | None, at)`, where `at` is
  the time of the line's last change; kept sorted by `at`, oldest first, at most `cap` lines (the
  oldest is evicted).
* Every quantity change goes through one table, `QUANTITY`: `(action, quantity before, units)`
  -> quantity after, for the cart actions `add`, `remove`, `set_quantity` and for `bought` (an
  order line). A line whose quantity falls to 0 or below is dropped.
* Out of order: a change older than the line's last change is ignored; a change that raises a
  line at or before the product's latest purchase is ignored (carts and orders travel on
  different topics: an add processed after the order that bought it must not put it back).
* An order removes what it bought: each order line lowers its product's cart line by the
  quantity bought (lines changed after the order are left alone); lines it did not buy stay.
* Activity: `ref` is the cart id (the event id of the change that started the cart, or that
  first changed it after an upgrade left it without one) and `last_activity` the time of the
  latest change applied, a cart change or an order that bought from it. Both are None while the
  cart is empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ADD = "add"
REMOVE = "remove"
SET_QUANTITY = "set_quantity"
BOUGHT = "bought"

# the only place a line's quantity changes: (action) -> f(quantity before, units) -> after
QUANTITY: dict[str, Callable[[int, int], int]] = {
    ADD: lambda had, units: had + units,
    REMOVE: lambda had, units: had - units if units > 0 else 0,  # remove 0: the whole line
    SET_QUANTITY: lambda had, units: units,
    BOUGHT: lambda had, units: had - units,
}


class CartLine(NamedTuple):
    """One cart line: quantity, unit price last seen, category last seen, time of last change."""

    quantity: int
    price: float | None
    category: str | None
    at: float


class CartStep(NamedTuple):
    """What one change did: applied or ignored, and the line's quantity before and after."""

    applied: bool
    had: int
    now: int

    @property
    def raised(self) -> bool:
        """Whether the change raised the line (an add-to-cart)."""
        return self.applied and self.now > self.had


IGNORED = CartStep(False, 0, 0)


@dataclass(slots=True, eq=False)
class Cart(Mapping[str, CartLine]):
    """The cart lines (a read-only mapping product -> line) and the cart's id and activity."""

    lines: dict[str, CartLine] = field(default_factory=dict)
    ref: str | None = None
    last_activity: float | None = None

    def __getitem__(self, product_id: str) -> CartLine:
        return self.lines[product_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def lines_dict(self) -> dict[str, list[Any]]:
        """The lines in their stored form: product -> [quantity, price, category, at]."""
        return {p: list(line) for p, line in self.lines.items()}

    def copy(self) -> Cart:
        """An independent copy (lines are immutable tuples)."""
        return Cart(dict(self.lines), self.ref, self.last_activity)

    @classmethod
    def from_parts(
        cls, lines: Mapping[str, Any] | None, ref: str | None, last_activity: float | None
    ) -> Cart:
        """Rebuild from the stored form (`lines_dict()`, `ref`, `last_activity`)."""
        cart = cls()
        for p, v in (lines or {}).items():
            q, price, cat, at = v
            cart.lines[str(p)] = CartLine(
                int(q), float(price) if price is not None else None, cat, float(at)
            )
        if cart.lines:
            cart.ref = str(ref) if ref is not None else None
            cart.last_activity = float(last_activity) if last_activity is not None else None
        return cart


def change(
    cart: Cart,
    product_id: str,
    action: str,
    units: int,
    t: float,
    event_id: str,
    *,
    price: float | None = None,
    category: str | None = None,
    bought_at: float | None = None,
    cap: int,
) -> CartStep:
    """Apply one cart change (`add`, `remove`, `set_quantity`) at time `t`; mutates `cart`."""
    line = cart.lines.get(product_id)
    if line is not None and line.at > t:  # the line changed after this (late) event
        return IGNORED
    had = line.quantity if line is not None else 0
    qty = QUANTITY[action](had, units)
    if qty > had and bought_at is not None and bought_at >= t:  # a late add of something bought
        return IGNORED
    if qty <= 0:
        cart.lines.pop(product_id, None)
    else:
        if price is None and line is not None:
            price = line.price
        if category is None and line is not None:
            category = line.category
        _put(cart.lines, product_id, CartLine(qty, price, category, t), cap)
    _touch(cart, t, event_id)
    return CartStep(True, had, max(qty, 0))


def buy(cart: Cart, bought: Iterable[tuple[str, int]], t: float) -> dict[str, int]:
    """An order placed at `t` removes what it bought; returns product -> units taken from the cart.

    Each (product, units) lowers that product's line by the units (the `bought` row of
    `QUANTITY`); lines changed after `t` and products not in the cart are left alone.
    """
    wanted: dict[str, int] = {}
    for pid, units in bought:
        wanted[pid] = wanted.get(pid, 0) + units
    taken: dict[str, int] = {}
    for pid, units in wanted.items():
        line = cart.lines.get(pid)
        if line is None or line.at > t:
            continue
        qty = QUANTITY[BOUGHT](line.quantity, units)
        taken[pid] = line.quantity - max(qty, 0)
        if qty <= 0:
            del cart.lines[pid]
        else:
            _put(cart.lines, pid, line._replace(quantity=qty, at=t), len(cart.lines))
    if taken:
        _touch(cart, t, None)
    return taken


def merge(target: Cart, source: Cart, bought: Mapping[str, float], cap: int) -> Cart:
    """One ID: the union of two carts; mutates and returns `target`.

    The same product in both: the line changed last. Lines bought (per `bought`, product -> time
    of the latest purchase) at or after their last change are dropped. The cart id is the
    target's while it has one, else the source's; the activity is the later one.
    """
    lines = dict(target.lines)
    for pid, line in source.lines.items():
        old = lines.get(pid)
        if old is None or line.at > old.at:
            lines[pid] = line
    kept = sorted(
        ((p, ln) for p, ln in lines.items() if bought.get(p, -1e300) < ln.at),
        key=lambda kv: (kv[1].at, kv[0]),
    )[-cap:]
    target.lines = dict(kept)
    if not target.lines:
        target.ref = target.last_activity = None
        return target
    if target.ref is None:
        target.ref = source.ref
    activity = [x for x in (target.last_activity, source.last_activity) if x is not None]
    target.last_activity = max(activity) if activity else None
    return target


def clip(text: str, cap: int) -> str:
    """`text`, or when longer than `cap` its head plus a hash of the whole (stays unique)."""
    if len(text) <= cap:
        return text
    digest = hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]
    return text[: cap - 21] + "#" + digest


def _touch(cart: Cart, t: float, event_id: str | None) -> None:
    """Record cart activity at `t` (the cart id starts with the first change of a cart)."""
    if not cart.lines:
        cart.ref = cart.last_activity = None
        return
    if cart.ref is None or cart.last_activity is None:
        if event_id is None:  # an order cannot start a cart
            return
        cart.ref, cart.last_activity = event_id, t
    elif t > cart.last_activity:
        cart.last_activity = t


def _put(lines: dict[str, CartLine], pid: str, line: CartLine, cap: int) -> None:
    """Set a line keeping the lines sorted by `at` (oldest first) and at most `cap` of them."""
    lines.pop(pid, None)
    if lines and next(reversed(lines.values())).at > line.at:
        lines[pid] = line
        ordered = sorted(lines.items(), key=lambda kv: kv[1].at)[-cap:]
        lines.clear()
        lines.update(ordered)
        return
    lines[pid] = line
    while len(lines) > cap:
        del lines[next(iter(lines))]
