"""The demo's deterministic scenario: a small baby-and-home store over five days.

`generate(seed, start, customers)` returns wire events (dicts ready for `orjson.dumps`) sorted by
`occurred_at`: first the catalog (`catalog_item` events), then the journeys of named actors and
of `customers` generated visitors. `scenario_story(...)` returns the lines the demo prints about
who does what. Same arguments -> identical output, event ids included
(`"scn<seed>-<nnnnn>"`, numbered in time order).

Named actors (always present):

- ``c-mother-1``: a mother who compares formula and buys stage-1 infant formula and wipes.
- ``c-father-1``: a logged-in father who views the three premium strollers in one evening
  session and leaves (no cart, no order).
- ``a-device-login-1``: an anonymous device that browses, logs in as ``c-login-1``
  (``identity_link``) and buys.

Generated visitors cycle through: new visitors who sign up and buy in their first session
(``c-new-N``), returning visitors who browse over several sessions (gaps > 30 min) and then buy
(``c-return-N``), old customers with an early first order and a repurchase days later
(``c-old-N``), abandoned carts (``c-abandon-N``), carts abandoned for more than an hour then
ordered (``c-recover-N``), and noise visitors who view one product and leave (``a-noise-N``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DEFAULT_START = datetime(2026, 11, 2, 9, 0, 0, tzinfo=timezone(timedelta(hours=8)))
STORE_ID = "baby-home-1"
SCENARIO_DAYS = 5

WireEvent = dict[str, Any]


@dataclass(frozen=True)
class Product:
    """One catalog item of the scenario store."""

    product_id: str
    title: str
    path: tuple[str, ...]
    price: float
    stock: int
    brand: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str:
        """The page-view category key: the path joined by '/'."""
        return "/".join(self.path)


CATALOG: tuple[Product, ...] = (
    Product(
        "formula-s1",
        "Gentle Start Infant Formula, Stage 1, 800 g",
        ("baby", "formula"),
        36.0,
        400,
        "Petal",
        {"stage": 1},
    ),
    Product(
        "formula-s2",
        "Gentle Start Follow-on Formula, Stage 2, 800 g",
        ("baby", "formula"),
        34.0,
        350,
        "Petal",
        {"stage": 2},
    ),
    Product(
        "diapers-s",
        "Soft Dry Diapers, Size S, 84 pcs",
        ("baby", "diapers"),
        29.0,
        600,
        "Cloudy",
        {"size": "S"},
    ),
    Product(
        "diapers-m",
        "Soft Dry Diapers, Size M, 72 pcs",
        ("baby", "diapers"),
        29.0,
        600,
        "Cloudy",
        {"size": "M"},
    ),
    Product("wipes-80", "Water Baby Wipes, 80 pcs", ("baby", "wipes"), 6.5, 900, "Cloudy"),
    Product(
        "bottle-set",
        "Anti-colic Bottle Set",
        ("baby", "feeding"),
        45.0,
        120,
        "Petal",
        {"pieces": 3},
    ),
    Product(
        "stroller-aurora",
        "Aurora Carbon Stroller",
        ("baby", "strollers"),
        5980.0,
        8,
        "Aurora",
        {"tier": "premium"},
    ),
    Product(
        "stroller-summit",
        "Summit All-terrain Stroller",
        ("baby", "strollers"),
        4590.0,
        12,
        "Summit",
        {"tier": "premium"},
    ),
    Product(
        "stroller-velvet",
        "Velvet Travel System",
        ("baby", "strollers"),
        3690.0,
        10,
        "Velvet",
        {"tier": "premium"},
    ),
    Product(
        "stroller-city",
        "City Fold Stroller",
        ("baby", "strollers"),
        1590.0,
        30,
        "Urbo",
        {"tier": "mid"},
    ),
    Product(
        "stroller-breeze",
        "Breeze Light Stroller",
        ("baby", "strollers"),
        1290.0,
        25,
        "Urbo",
        {"tier": "mid"},
    ),
    Product(
        "stroller-pocket",
        "Pocket Umbrella Stroller",
        ("baby", "strollers"),
        399.0,
        60,
        "Hopp",
        {"tier": "budget"},
    ),
    Product("kettle-glass", "Glass Electric Kettle", ("home", "kitchen"), 129.0, 80, "Kasa"),
    Product("knife-set", "Five-piece Kitchen Knife Set", ("home", "kitchen"), 259.0, 40, "Kasa"),
    Product("towels-bath", "Cotton Bath Towel Pair", ("home", "bath"), 79.0, 150, "Linu"),
    Product(
        "storage-boxes", "Stacking Storage Boxes, 3 pcs", ("home", "storage"), 49.0, 200, "Linu"
    ),
)
PRODUCTS: dict[str, Product] = {p.product_id: p for p in CATALOG}
PREMIUM_STROLLERS = ("stroller-aurora", "stroller-summit", "stroller-velvet")
MID_STROLLERS = ("stroller-city", "stroller-breeze")
CONSUMABLES = ("formula-s1", "formula-s2", "diapers-s", "diapers-m", "wipes-80")
HOME = ("kettle-glass", "knife-set", "towels-bath", "storage-boxes")
REPURCHASES = (("diapers-s", "diapers-m"), ("formula-s1", "formula-s2"), ("wipes-80", "wipes-80"))
KINDS = (
    "new_buyer",
    "returning",
    "old_customer",
    "abandoned",
    "recovered",
    "noise",
    "new_buyer",
    "noise",
    "returning",
    "abandoned",
)


class _Script:
    """Collects events and story lines with their times; sorts and numbers them at the end."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._events: list[tuple[float, int, WireEvent]] = []
        self._story: list[tuple[float, int, str]] = []

    def emit(self, when: datetime, event: WireEvent) -> None:
        self._events.append((when.timestamp(), len(self._events), event))

    def say(self, when: datetime, text: str) -> None:
        self._story.append((when.timestamp(), len(self._story), f"{_clock(when)}  {text}"))

    def events(self, seed: int) -> list[WireEvent]:
        ordered = sorted(self._events, key=lambda item: (item[0], item[1]))
        for number, (_, _, event) in enumerate(ordered, start=1):
            event["event_id"] = f"scn{seed}-{number:05d}"
        return [event for _, _, event in ordered]

    def story(self) -> list[str]:
        return [text for _, _, text in sorted(self._story)]


def _clock(when: datetime) -> str:
    return when.strftime("%a %m-%d %H:%M")


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


class _Visitor:
    """One device/person walking through sessions; emits wire events into the script."""

    def __init__(
        self,
        script: _Script,
        rng: random.Random,
        handle: str,
        *,
        anonymous_id: str | None = None,
        customer_id: str | None = None,
        channel: str = "web",
    ) -> None:
        self.script = script
        self.rng = rng
        self.handle = handle
        self.anonymous_id = anonymous_id
        self.customer_id = customer_id
        self.channel = channel
        self.now = script.start
        self.sessions = 0
        self.session_id = ""
        self.cart: dict[str, int] = {}
        self.orders = 0

    def session(self, when: datetime) -> None:
        self.sessions += 1
        self.session_id = f"s-{self.handle}-{self.sessions}"
        self.now = when

    def wait(self, low: float, high: float) -> None:
        self.now += timedelta(seconds=round(self.rng.uniform(low, high)))

    def _event(self, kind: str) -> WireEvent:
        event: WireEvent = {"type": kind, "event_id": "", "occurred_at": _iso(self.now)}
        if self.anonymous_id:
            event["anonymous_id"] = self.anonymous_id
        if self.customer_id:
            event["customer_id"] = self.customer_id
        event["session_id"] = self.session_id
        event["channel"] = self.channel
        event["store_id"] = STORE_ID
        return event

    def view(self, product_id: str) -> None:
        self.wait(20, 150)
        product = PRODUCTS[product_id]
        event = self._event("page_view")
        event.update(
            product_id=product.product_id,
            category=product.category,
            price=product.price,
            brand=product.brand,
            title=product.title,
        )
        self.script.emit(self.now, event)

    def add(self, product_id: str, quantity: int = 1) -> None:
        self.wait(15, 90)
        product = PRODUCTS[product_id]
        self.cart[product_id] = self.cart.get(product_id, 0) + quantity
        event = self._event("cart")
        event.update(
            action="add",
            product_id=product.product_id,
            quantity=quantity,
            price=product.price,
            category=product.category,
        )
        self.script.emit(self.now, event)

    def link(self, customer_id: str, reason: str = "login") -> None:
        self.wait(10, 60)
        self.customer_id = customer_id
        event = self._event("identity_link")
        event["reason"] = reason
        self.script.emit(self.now, event)

    def checkout(self) -> str:
        self.wait(40, 180)
        lines: list[WireEvent] = [
            {
                "product_id": pid,
                "quantity": qty,
                "unit_price": PRODUCTS[pid].price,
                "category": PRODUCTS[pid].category,
            }
            for pid, qty in self.cart.items()
        ]
        self.orders += 1
        order_id = f"o-{self.handle}-{self.orders}"
        event = self._event("order")
        event.update(
            action="placed",
            order_id=order_id,
            lines=lines,
            total=round(sum(PRODUCTS[p].price * q for p, q in self.cart.items()), 2),
            currency="CNY",
        )
        self.script.emit(self.now, event)
        self.cart = {}
        return order_id


def _day(script: _Script, day: int, hour: float) -> datetime:
    """A moment `day` days after the start, at `hour` hours past the start's time of day."""
    return script.start + timedelta(days=day, seconds=round(hour * 3600))


def _opening_hours(script: _Script, when: datetime, rng: random.Random) -> datetime:
    """`when`, or the next morning when it falls after 21:30 (relative to a 09:00 start)."""
    elapsed = (when - script.start).total_seconds()
    day, into = divmod(elapsed, 86400.0)
    if into <= 12.5 * 3600:
        return when
    return _day(script, int(day) + 1, rng.uniform(0.2, 3.0))


def _titles(ids: list[str] | tuple[str, ...]) -> str:
    return ", ".join(ids)


# --------------------------------------------------------------------------- named actors


def _mother(script: _Script, rng: random.Random) -> None:
    v = _Visitor(script, rng, "mother-1", customer_id="c-mother-1", channel="app")
    v.session(_day(script, 0, 1.25))
    script.say(v.now, "c-mother-1, a new mother, compares stage-1 and stage-2 infant formula")
    for pid in ("formula-s1", "formula-s2", "formula-s1", "wipes-80"):
        v.view(pid)
    v.add("formula-s1", 2)
    v.add("wipes-80", 1)
    order_id = v.checkout()
    script.say(v.now, f"c-mother-1 buys 2 x stage-1 formula and wipes (order {order_id})")


def _father(script: _Script, rng: random.Random) -> None:
    v = _Visitor(script, rng, "father-1", customer_id="c-father-1")
    v.session(_day(script, 1, 11.5))
    for pid in PREMIUM_STROLLERS:
        v.view(pid)
    script.say(
        v.now,
        f"c-father-1 views three premium strollers ({_titles(PREMIUM_STROLLERS)}) in one "
        "session and leaves: no cart, no order",
    )


def _login_device(script: _Script, rng: random.Random) -> None:
    v = _Visitor(script, rng, "device-login-1", anonymous_id="a-device-login-1", channel="app")
    v.session(_day(script, 2, 3.0))
    v.view("bottle-set")
    v.view("diapers-s")
    v.link("c-login-1", "login")
    script.say(v.now, "a-device-login-1 browses anonymously, then logs in as c-login-1")
    v.add("bottle-set")
    v.add("diapers-s", 2)
    order_id = v.checkout()
    script.say(v.now, f"c-login-1 buys a bottle set and diapers (order {order_id})")


# --------------------------------------------------------------------------- generated actors


def _new_buyer(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(
        script, rng, f"new-{n}", anonymous_id=f"a-new-{n}", channel=rng.choice(["web", "app"])
    )
    v.session(_day(script, rng.randint(0, 3), rng.uniform(0.5, 10.5)))
    pool = list(CONSUMABLES + HOME)
    first, second = rng.sample(pool, 2)
    v.view(first)
    v.view(second)
    v.link(f"c-new-{n}", "signup")
    v.add(second, rng.randint(1, 2))
    order_id = v.checkout()
    script.say(v.now, f"c-new-{n} signs up on a first visit and buys {second} (order {order_id})")


def _returning(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(script, rng, f"return-{n}", customer_id=f"c-return-{n}")
    first_day = rng.randint(0, 1)
    target = rng.choice((*MID_STROLLERS, "stroller-pocket", "knife-set", "kettle-glass"))
    sessions = rng.randint(2, 3)
    for k in range(sessions):
        v.session(_day(script, first_day + k, rng.uniform(0.5, 10.5)))
        v.view(target)
        v.view(rng.choice(CATALOG).product_id)
        if k == sessions - 1:
            v.add(target)
            order_id = v.checkout()
            script.say(
                v.now,
                f"c-return-{n} comes back for session {sessions} and buys {target} "
                f"(order {order_id})",
            )
        else:
            script.say(v.now, f"c-return-{n} browses {target} (session {k + 1}) and leaves")


def _old_customer(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(script, rng, f"old-{n}", customer_id=f"c-old-{n}", channel="app")
    first_item, later_item = REPURCHASES[n % len(REPURCHASES)]
    v.session(_day(script, 0, rng.uniform(0.3, 3.0)))
    v.view(first_item)
    v.add(first_item, 2)
    first_order = v.checkout()
    script.say(v.now, f"c-old-{n} buys {first_item} early on (order {first_order})")
    v.session(_day(script, rng.randint(3, 4), rng.uniform(0.5, 10.0)))
    v.view(later_item)
    v.add(later_item, 2)
    later_order = v.checkout()
    script.say(
        v.now,
        f"c-old-{n} repurchases {later_item} (order {later_order}) days after buying "
        f"{first_item} (order {first_order})",
    )


def _abandoned(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(script, rng, f"abandon-{n}", customer_id=f"c-abandon-{n}")
    v.session(_day(script, rng.randint(0, 3), rng.uniform(0.5, 10.0)))
    item = rng.choice(MID_STROLLERS + HOME + ("bottle-set",))
    v.view(item)
    v.add(item)
    script.say(v.now, f"c-abandon-{n} adds {item} to the cart and never comes back")


def _recovered(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(script, rng, f"recover-{n}", customer_id=f"c-recover-{n}")
    v.session(_day(script, rng.randint(0, 2), rng.uniform(0.5, 8.0)))
    item = rng.choice(MID_STROLLERS + HOME + ("bottle-set",))
    v.view(item)
    v.add(item)
    script.say(v.now, f"c-recover-{n} adds {item} to the cart and leaves")
    v.session(_opening_hours(script, v.now + timedelta(hours=rng.uniform(1.5, 8.0)), rng))
    v.view(item)
    order_id = v.checkout()
    script.say(v.now, f"c-recover-{n} comes back and orders the cart (order {order_id})")


def _noise(script: _Script, rng: random.Random, n: int) -> None:
    v = _Visitor(script, rng, f"noise-{n}", anonymous_id=f"a-noise-{n}")
    v.session(_day(script, rng.randint(0, 4), rng.uniform(0.0, 11.0)))
    v.view(rng.choice(CATALOG).product_id)


_GENERATED = {
    "new_buyer": _new_buyer,
    "returning": _returning,
    "old_customer": _old_customer,
    "abandoned": _abandoned,
    "recovered": _recovered,
    "noise": _noise,
}


def _catalog(script: _Script) -> None:
    for offset, product in enumerate(CATALOG):
        when = script.start + timedelta(seconds=offset)
        script.emit(
            when,
            {
                "type": "catalog_item",
                "event_id": "",
                "occurred_at": _iso(when),
                "product_id": product.product_id,
                "title": product.title,
                "category_path": list(product.path),
                "price": product.price,
                "stock": product.stock,
                "attributes": dict(product.attributes, brand=product.brand),
            },
        )
    script.say(script.start, f"the store publishes its catalog: {len(CATALOG)} items")


def _play(seed: int, start: datetime | None, customers: int) -> _Script:
    if customers < 0:
        raise ValueError("customers must be >= 0")
    begin = start or DEFAULT_START
    if begin.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    script = _Script(begin)
    _catalog(script)
    _mother(script, random.Random(f"{seed}:mother"))
    _father(script, random.Random(f"{seed}:father"))
    _login_device(script, random.Random(f"{seed}:login"))
    counts: dict[str, int] = {}
    for index in range(customers):
        kind = KINDS[index % len(KINDS)]
        counts[kind] = counts.get(kind, 0) + 1
        _GENERATED[kind](script, random.Random(f"{seed}:{index}"), counts[kind])
    return script


def generate(seed: int = 7, start: datetime | None = None, customers: int = 40) -> list[WireEvent]:
    """The scenario's wire events sorted by occurred_at (deterministic for equal arguments)."""
    return _play(seed, start, customers).events(seed)


def scenario_story(seed: int = 7, start: datetime | None = None, customers: int = 40) -> list[str]:
    """Human-readable lines, in time order, about who does what in `generate(...)`."""
    return _play(seed, start, customers).story()
