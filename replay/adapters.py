"""Format adapters: read shop exports as wire-contract event dicts (see `replay/README.md`).

`read_events(path, fmt, mapping=None)` streams a file (plain or gzip, detected by its magic
bytes) and yields, in file order, either a wire dict ready for `orjson.dumps` or an
`AdapterRejection` for a row it cannot turn into an event. Schema validation is not done here:
the pipeline's decoder validates every dict later.

Formats (`FORMATS`):

- ``jsonl``: one JSON object per line, passed through unchanged; blank lines are skipped; a line
  that is not a JSON object is rejected.
- ``rees46``: the REES46 export ``event_time,event_type,product_id,category_id,category_code,
  brand,price,user_id,user_session``. ``view`` -> ``page_view``; ``cart`` -> ``cart``
  set_quantity 1; ``remove_from_cart`` -> ``cart`` set_quantity 0; ``purchase`` rows are grouped
  into orders (below). REES46 has no quantities: a ``cart`` row says the product is in the cart
  (carting it again does not make it two), a ``remove_from_cart`` row that it no longer is.
  ``customer_id`` = user_id, ``session_id`` = user_session, ``category`` = category_code, else
  ``"cat-" + category_id``; event ids are ``"rees46-L<line>"``.
- ``online-retail``: the UCI Online Retail export ``InvoiceNo,StockCode,Description,Quantity,
  InvoiceDate,UnitPrice,CustomerID,Country`` (UTF-8 or latin-1, line by line). One invoice -> one
  ``order`` (``cancelled`` for ``C`` invoices, quantities made positive), ``order_id`` =
  InvoiceNo, ``customer_id`` = CustomerID without ``.0``, guest invoices (no CustomerID) get
  ``anonymous_id = "guest-" + InvoiceNo``; ``channel`` "web", ``store_id`` = Country, currency
  GBP; a line's category is a product noun found in its description (see `retail_category`).
  Rejected rows: quantity 0, a negative quantity outside a ``C`` invoice (stock adjustments), a
  positive one inside it, a negative price, an unparsable number or date, no StockCode.
- ``csv``: any CSV with a header, described by a `ColumnMapping`; on the command line::

      customer=user_id,product=item,type=action,time=ts,price=amount,category=cat,
      types=view:view;addtocart:cart_add;transaction:purchase

  (one string, no spaces after commas). Keys: ``customer``, ``anonymous`` (at least one of the
  two), ``product``, ``type``, ``time`` (required columns), ``price``, ``category``,
  ``quantity``, ``session``, ``order``, ``id`` (optional columns), ``timefmt`` (``iso`` default,
  ``epoch`` seconds, ``epoch_ms``, or a strptime format such as ``%d/%m/%Y %H:%M``; times without
  an offset are UTC), ``prefix`` (event/order id prefix, default ``csv``) and ``types``:
  ``source:target`` pairs separated by ``;`` with targets ``view``, ``cart_add``,
  ``cart_remove``, ``purchase``, ``favourite`` (default: the targets map to themselves), and
  ``header``: the column names, separated by ``;``, of a file without a header line. Values
  cannot contain ``,``. Without a price column, views and favourites are ``page_view`` 1-0-1
  without a price, cart rows carry none, and purchase rows are rejected (order lines need a unit
  price); ``favourite`` rows are ``page_view`` 1-0-1 with ``action`` ``favourite``.

Order grouping (rees46, and csv without an order column): the purchase rows of one session (or
of one customer when there is no session) form one order until that session has a non-purchase
row, or more than 5 minutes of file time pass after its last purchase row, or the file ends;
then the order is emitted, before the row that closed it. With an order column (csv) or an
invoice (online-retail) the rows of one order id form one order, closed 5 minutes of file time
after its last row. An order's ``occurred_at`` is its last row's time and its id is the
``"<prefix>-L<line>"`` of its first row (online-retail: ``"online-retail-<InvoiceNo>"``). So
orders come out up to 5 minutes after later rows of other sessions, never after a later row of
their own session; sort with `sort_key` when global time order matters. An order of more than
500 lines (the schema's limit) is emitted as parts of up to 500 lines; part k >= 2 has
``#k`` appended to its event id and order id.

Line numbers are 1-based physical lines of the file (the header is line 1).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, TypeAlias

import orjson

FORMATS: tuple[str, ...] = ("jsonl", "rees46", "online-retail", "csv")
ORDER_GAP_SECONDS = 300.0
MAX_ORDER_LINES = 500  # the order schema's maxItems
TYPE_TARGETS: tuple[str, ...] = ("view", "cart_add", "cart_remove", "purchase", "favourite")
OPEN_PAGE_VIEW = "1-0-1"  # page_view version whose price is optional and which has `action`
TIME_FORMATS: tuple[str, ...] = ("iso", "epoch", "epoch_ms")
UNCATEGORIZED = "uncategorized"

_GZIP_MAGIC = b"\x1f\x8b"
_REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
_RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

WireEvent: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterRejection:
    """A source row that could not become an event: where, why, and its raw bytes."""

    line: int
    category: str = "adapter_row"
    message: str
    raw: bytes


AdapterItem: TypeAlias = WireEvent | AdapterRejection


# --------------------------------------------------------------------------- column mapping


@dataclass(frozen=True, kw_only=True)
class ColumnMapping:
    """Which columns of a generic CSV hold what, and how its event types map to wire events."""

    product: str
    event_type: str
    time: str
    price: str | None = None
    customer: str | None = None
    anonymous: str | None = None
    time_format: str = "iso"
    category: str | None = None
    quantity: str | None = None
    session: str | None = None
    order: str | None = None
    event_id: str | None = None
    prefix: str = "csv"
    header: tuple[str, ...] | None = None
    type_map: dict[str, str] = field(default_factory=lambda: {t: t for t in TYPE_TARGETS})

    _SPEC_KEYS: ClassVar[dict[str, str]] = {
        "customer": "customer",
        "anonymous": "anonymous",
        "product": "product",
        "type": "event_type",
        "time": "time",
        "timefmt": "time_format",
        "price": "price",
        "category": "category",
        "quantity": "quantity",
        "session": "session",
        "order": "order",
        "id": "event_id",
        "prefix": "prefix",
    }

    def __post_init__(self) -> None:
        if not (self.customer or self.anonymous):
            raise ValueError("column mapping needs a customer or an anonymous column")
        for name in ("product", "event_type", "time"):
            if not getattr(self, name):
                raise ValueError(f"column mapping needs a {name!r} column")
        if self.time_format not in TIME_FORMATS and "%" not in self.time_format:
            raise ValueError(
                f"time format {self.time_format!r} is not one of {TIME_FORMATS} "
                "nor a strptime format"
            )
        if not self.type_map:
            raise ValueError("column mapping maps no event type")
        for source, target in self.type_map.items():
            if target not in TYPE_TARGETS:
                raise ValueError(f"type {source!r} maps to {target!r}, not one of {TYPE_TARGETS}")
        if not self.prefix:
            raise ValueError("id prefix must not be empty")
        if self.header is not None:
            unnamed = [c for c in self.columns().values() if c not in self.header]
            if not self.header or unnamed:
                raise ValueError(f"header names no column {', '.join(unnamed)}")

    @classmethod
    def from_spec(cls, spec: str) -> ColumnMapping:
        """Parse `key=value,...` (syntax in the module docstring) into a mapping."""
        values: dict[str, Any] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise ValueError(f"mapping item {item!r} is not key=value")
            if key == "types":
                attr = "type_map"
                parsed: Any = _parse_type_map(value)
            elif key == "header":
                attr = "header"
                parsed = tuple(name.strip() for name in value.split(";") if name.strip())
            elif key in cls._SPEC_KEYS:
                attr = cls._SPEC_KEYS[key]
                parsed = value
            else:
                known = ", ".join([*cls._SPEC_KEYS, "types", "header"])
                raise ValueError(f"unknown mapping key {key!r} (known: {known})")
            if attr in values:
                raise ValueError(f"mapping key {key!r} given twice")
            values[attr] = parsed
        missing = [k for k, a in cls._SPEC_KEYS.items() if a in _REQUIRED and a not in values]
        if missing:
            raise ValueError(f"mapping lacks required key(s): {', '.join(missing)}")
        return cls(**values)

    def columns(self) -> dict[str, str]:
        """The role -> column name of every configured column."""
        roles = (
            "product",
            "event_type",
            "time",
            "price",
            "customer",
            "anonymous",
            "category",
            "quantity",
            "session",
            "order",
            "event_id",
        )
        return {role: col for role in roles if (col := getattr(self, role))}


_REQUIRED = frozenset({"product", "event_type", "time"})


def _parse_type_map(value: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in value.split(";"):
        pair = pair.strip()
        if not pair:
            continue
        source, sep, target = pair.rpartition(":")
        if not sep or not source:
            raise ValueError(f"type pair {pair!r} is not source:target")
        mapping[source.strip()] = target.strip()
    return mapping


# --------------------------------------------------------------------------- public API


def read_events(
    path: str | os.PathLike[str], fmt: str, *, mapping: ColumnMapping | None = None
) -> Iterator[AdapterItem]:
    """Stream the events (or row rejections) of a file in format `fmt`, in file order."""
    source = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "csv" and mapping is None:
        raise ValueError("format 'csv' needs a column mapping")
    if fmt != "csv" and mapping is not None:
        raise ValueError(f"a column mapping only applies to format 'csv', not {fmt!r}")
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if fmt == "jsonl":
        return _read_jsonl(source)
    if fmt == "rees46":
        return _read_rees46(source)
    if fmt == "online-retail":
        return _read_online_retail(source)
    assert mapping is not None
    return _read_mapped_csv(source, mapping)


def sort_key(event: Mapping[str, Any]) -> float:
    """Epoch seconds of an event's `occurred_at` (RFC 3339); +inf when missing or unparsable."""
    value = event.get("occurred_at")
    if not isinstance(value, str):
        return math.inf
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return math.inf
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --------------------------------------------------------------------------- file reading


def _open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        # GzipFile.readline is slow per call; a BufferedReader on top reads lines in C.
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=1 << 16)
    return open(path, "rb")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _LineSource:
    """Decoded lines of a binary file for `csv.reader`, keeping the raw lines of each record."""

    __slots__ = ("_lines", "pending")

    def __init__(self, lines: IO[bytes]) -> None:
        self._lines = iter(lines)
        self.pending: list[bytes] = []

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.pending.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


_Record: TypeAlias = tuple[int, list[str] | None, list[bytes], str]


def _csv_records(path: Path) -> Iterator[_Record]:
    """(first line, fields or None, raw lines, CSV error) for each record, header included."""
    with _open_binary(path) as handle:
        source = _LineSource(handle)
        reader = csv.reader(source)
        while True:
            error = ""
            fields: list[str] | None
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                fields, error = None, f"unparsable CSV: {exc}"
            parts, source.pending = source.pending, []
            yield reader.line_num - len(parts) + 1, fields, parts, error


def _header(records: Iterator[_Record], path: Path, wanted: tuple[str, ...]) -> dict[str, int]:
    """Read the header record and return the index of every wanted column."""
    first = next(records, None)
    if first is None or first[1] is None:
        raise ValueError(f"{path}: no CSV header")
    names = [name.strip().lstrip("\ufeff") for name in first[1]]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"{path}: header lacks column(s) {', '.join(missing)}; has {names}")
    return {name: names.index(name) for name in wanted}


def _reject(line: int, message: str, parts: list[bytes]) -> AdapterRejection:
    raw = b"".join(parts).rstrip(b"\r\n")
    return AdapterRejection(line=line, message=message, raw=raw)


# --------------------------------------------------------------------------- parsing helpers


def _iso_datetime(text: str) -> datetime:
    if text.endswith(" UTC"):
        text = text[:-4]
    elif text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _epoch_datetime(text: str) -> datetime:
    return datetime.fromtimestamp(float(text), tz=UTC)


def _epoch_ms_datetime(text: str) -> datetime:
    return datetime.fromtimestamp(float(text) / 1000.0, tz=UTC)


def _time_parser(time_format: str) -> Callable[[str], datetime]:
    if time_format == "iso":
        return _iso_datetime
    if time_format == "epoch":
        return _epoch_datetime
    if time_format == "epoch_ms":
        return _epoch_ms_datetime
    return lambda text: datetime.strptime(text, time_format)


class _Clock:
    """Parse timestamps to (epoch seconds, RFC 3339 UTC), remembering the last one."""

    __slots__ = ("_parse", "_text", "_value")

    def __init__(self, parse: Callable[[str], datetime]) -> None:
        self._parse = parse
        self._text: str | None = None
        self._value = (0.0, "")

    def __call__(self, text: str) -> tuple[float, str]:
        if text == self._text:
            return self._value
        try:
            moment = self._parse(text.strip())
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            value = (moment.timestamp(), moment.isoformat())
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"unparsable time {text!r}: {exc}") from None
        self._text, self._value = text, value
        return value


def _price(text: str, what: str = "price") -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"unparsable {what} {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not finite")
    if value < 0:
        raise ValueError(f"negative {what} {text!r}")
    return value


def _quantity(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"unparsable quantity {text!r}") from None
    if not value.is_integer():
        raise ValueError(f"quantity {text!r} is not a whole number")
    return int(value)


def _total(lines: list[WireEvent]) -> float:
    return round(sum(line["quantity"] * line["unit_price"] for line in lines), 6)


# --------------------------------------------------------------------------- order grouping


@dataclass(slots=True)
class _PendingOrder:
    key: str
    seq: int
    head: WireEvent
    lines: list[WireEvent] = field(default_factory=list)
    last_time: float = -math.inf
    last_iso: str = ""

    def build(self) -> list[WireEvent]:
        """The order event; parts 2.. (ids suffixed "#k") when it has more than 500 lines."""
        parts: list[WireEvent] = []
        for start in range(0, len(self.lines), MAX_ORDER_LINES):
            lines = self.lines[start : start + MAX_ORDER_LINES]
            event = dict(self.head)
            if start:
                suffix = f"#{start // MAX_ORDER_LINES + 1}"
                event["event_id"] = f"{event['event_id']}{suffix}"
                event["order_id"] = f"{event['order_id']}{suffix}"
            event["occurred_at"] = self.last_iso
            event["lines"] = lines
            event["total"] = _total(lines)
            parts.append(event)
        return parts


class _OrderGroups:
    """Open orders by key; closed explicitly or when `gap` seconds of file time pass."""

    def __init__(self, gap: float = ORDER_GAP_SECONDS) -> None:
        self._open: dict[str, _PendingOrder] = {}
        self._gap = gap
        self._oldest = math.inf

    def get(self, key: str) -> _PendingOrder | None:
        return self._open.get(key)

    def start(self, key: str, seq: int, head: WireEvent) -> _PendingOrder:
        pending = _PendingOrder(key=key, seq=seq, head=head)
        self._open[key] = pending
        return pending

    def add(self, pending: _PendingOrder, line: WireEvent, when: float, iso: str) -> None:
        pending.lines.append(line)
        if when >= pending.last_time:
            pending.last_time, pending.last_iso = when, iso
        self._oldest = min(self._oldest, when)

    def pop(self, key: str) -> list[WireEvent]:
        pending = self._open.pop(key, None)
        return [] if pending is None else pending.build()

    def expire(self, now: float) -> list[WireEvent]:
        if now - self._oldest <= self._gap:
            return []
        done = [p for p in self._open.values() if now - p.last_time > self._gap]
        for pending in done:
            del self._open[pending.key]
        self._oldest = min((p.last_time for p in self._open.values()), default=math.inf)
        return self._built(done)

    def drain(self) -> list[WireEvent]:
        done = list(self._open.values())
        self._open.clear()
        self._oldest = math.inf
        return self._built(done)

    @staticmethod
    def _built(done: list[_PendingOrder]) -> list[WireEvent]:
        done.sort(key=lambda p: (p.last_time, p.seq))
        return [event for pending in done for event in pending.build()]


def _order_head(event_id: str, ids: WireEvent, action: str, order_id: str) -> WireEvent:
    head: WireEvent = {"type": "order", "event_id": event_id, "occurred_at": ""}
    head.update(ids)
    head["action"] = action
    head["order_id"] = order_id
    return head


# --------------------------------------------------------------------------- jsonl


def _read_jsonl(path: Path) -> Iterator[AdapterItem]:
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield _reject(number, f"not JSON: {exc}", [raw])
                continue
            if not isinstance(value, dict):
                yield _reject(number, f"not a JSON object: {type(value).__name__}", [raw])
                continue
            yield value


# --------------------------------------------------------------------------- rees46


def _read_rees46(path: Path) -> Iterator[AdapterItem]:
    records = _csv_records(path)
    col = _header(records, path, _REES46_COLUMNS)
    width = len(_REES46_COLUMNS)
    i_time, i_type, i_product = col["event_time"], col["event_type"], col["product_id"]
    i_cat_id, i_cat_code, i_brand = col["category_id"], col["category_code"], col["brand"]
    i_price, i_user, i_session = col["price"], col["user_id"], col["user_session"]
    clock = _Clock(_iso_datetime)
    groups = _OrderGroups()
    order_counts: dict[str, int] = {}
    for line, fields, parts, error in records:
        if fields is None:
            yield _reject(line, error, parts)
            continue
        if not fields:
            continue
        if len(fields) < width or (len(fields) > width and any(fields[width:])):
            yield _reject(line, f"expected {width} fields, got {len(fields)}", parts)
            continue
        etype = fields[i_type]
        if etype not in ("view", "cart", "remove_from_cart", "purchase"):
            yield _reject(line, f"unknown event_type {etype!r}", parts)
            continue
        product = fields[i_product].strip()
        if not product:
            yield _reject(line, "empty product_id", parts)
            continue
        try:
            when, iso = clock(fields[i_time])
            price = _price(fields[i_price])
        except ValueError as exc:
            yield _reject(line, str(exc), parts)
            continue
        category = fields[i_cat_code].strip() or (
            f"cat-{fields[i_cat_id].strip()}" if fields[i_cat_id].strip() else UNCATEGORIZED
        )
        user = fields[i_user].strip()
        session = fields[i_session].strip()
        key = session or f"user:{user}"
        ids: WireEvent = {}
        if user:
            ids["customer_id"] = user
        if session:
            ids["session_id"] = session
        yield from groups.expire(when)
        if etype == "purchase":
            pending = groups.get(key)
            if pending is None:
                count = order_counts[key] = order_counts.get(key, 0) + 1
                head = _order_head(f"rees46-L{line}", ids, "placed", f"rees46-{key}-{count}")
                pending = groups.start(key, line, head)
            order_line = {
                "product_id": product,
                "quantity": 1,
                "unit_price": price,
                "category": category,
            }
            groups.add(pending, order_line, when, iso)
            continue
        yield from groups.pop(key)
        event: WireEvent = {"type": "", "event_id": f"rees46-L{line}", "occurred_at": iso}
        event.update(ids)
        if etype == "view":
            event["type"] = "page_view"
            event.update(product_id=product, category=category, price=price)
            brand = fields[i_brand].strip()
            if brand:
                event["brand"] = brand
        else:
            # no quantities in REES46: the product is in the cart (1) or no longer is (0)
            event["type"] = "cart"
            event.update(
                action="set_quantity",
                product_id=product,
                quantity=1 if etype == "cart" else 0,
                price=price,
                category=category,
            )
        yield event
    yield from groups.drain()


# --------------------------------------------------------------------------- online retail

_WORD = re.compile(r"[a-z]{3,}")
_NOUN_WORDS = """
    apron bag basket bauble beaker bell blanket book bottle bowl box bracelet brooch brush
    bucket bunting cabinet cake calendar candle card case chalkboard charm clip clock coaster
    container cup curtain cushion cutlery decoration dish doily doiley doormat doorstop drawer
    earrings eraser frame garland glass glove handbag hanger hat holder hook jar jug kit knife
    knob lamp lampshade lantern light magnet mat mirror mug napkin necklace notebook organiser
    ornament pan parasol pen pencil plate pot purse rack ring ruler saucer scarf sign
    sketchbook slipper sock spoon stand sticker tag tape teapot tin tissue towel toy tray
    umbrella vase voucher wallet washbag wrap wreath postage carriage discount
"""
_RETAIL_NOUNS = frozenset(_NOUN_WORDS.split())
_category_cache: dict[str, str | None] = {}


def retail_category(description: str) -> str | None:
    """A product noun from a retail description (last known noun, else last word), or None."""
    cached = _category_cache.get(description, "")
    if cached != "":
        return cached
    words = _WORD.findall(description.lower())
    found: str | None = None
    for word in reversed(words):
        if word in _RETAIL_NOUNS:
            found = word
            break
        if word.endswith("s") and word[:-1] in _RETAIL_NOUNS:
            found = word[:-1]
            break
        if word.endswith("es") and word[:-2] in _RETAIL_NOUNS:
            found = word[:-2]
            break
    if found is None and words:
        found = words[-1]
    if len(_category_cache) < 100_000:
        _category_cache[description] = found
    return found


def _read_online_retail(path: Path) -> Iterator[AdapterItem]:
    records = _csv_records(path)
    col = _header(records, path, _RETAIL_COLUMNS)
    width = len(_RETAIL_COLUMNS)
    i_invoice, i_stock, i_desc = col["InvoiceNo"], col["StockCode"], col["Description"]
    i_qty, i_date, i_price = col["Quantity"], col["InvoiceDate"], col["UnitPrice"]
    i_customer, i_country = col["CustomerID"], col["Country"]
    clock = _Clock(_iso_datetime)
    groups = _OrderGroups()
    for line, fields, parts, error in records:
        if fields is None:
            yield _reject(line, error, parts)
            continue
        if not fields:
            continue
        if len(fields) != width:
            yield _reject(line, f"expected {width} fields, got {len(fields)}", parts)
            continue
        invoice = fields[i_invoice].strip()
        stock = fields[i_stock].strip()
        if not invoice or not stock:
            yield _reject(line, "empty InvoiceNo or StockCode", parts)
            continue
        cancelled = invoice[0] in "Cc"
        try:
            when, iso = clock(fields[i_date])
            quantity = _quantity(fields[i_qty])
            price = _price(fields[i_price], "UnitPrice")
        except ValueError as exc:
            yield _reject(line, str(exc), parts)
            continue
        if quantity == 0:
            yield _reject(line, "quantity 0", parts)
            continue
        if cancelled and quantity > 0:
            yield _reject(line, "positive quantity in a cancellation invoice", parts)
            continue
        if not cancelled and quantity < 0:
            yield _reject(line, "negative quantity outside a cancellation (stock adjust)", parts)
            continue
        yield from groups.expire(when)
        pending = groups.get(invoice)
        if pending is None:
            customer = fields[i_customer].strip()
            if customer.endswith(".0"):
                customer = customer[:-2]
            ids: WireEvent = (
                {"customer_id": customer} if customer else {"anonymous_id": f"guest-{invoice}"}
            )
            ids["channel"] = "web"
            country = fields[i_country].strip()
            if country:
                ids["store_id"] = country
            action = "cancelled" if cancelled else "placed"
            head = _order_head(f"online-retail-{invoice}", ids, action, invoice)
            head["currency"] = "GBP"
            pending = groups.start(invoice, line, head)
        order_line: WireEvent = {
            "product_id": stock,
            "quantity": abs(quantity),
            "unit_price": price,
        }
        category = retail_category(fields[i_desc])
        if category:
            order_line["category"] = category
        groups.add(pending, order_line, when, iso)
    yield from groups.drain()


# --------------------------------------------------------------------------- mapped csv


def _read_mapped_csv(path: Path, mapping: ColumnMapping) -> Iterator[AdapterItem]:
    records = _csv_records(path)
    roles = mapping.columns()
    if mapping.header is None:
        col = _header(records, path, tuple(dict.fromkeys(roles.values())))
    else:  # a file without a header line: the mapping names its columns
        col = {name: mapping.header.index(name) for name in roles.values()}
    idx = {role: col[name] for role, name in roles.items()}
    width = max(idx.values()) + 1
    clock = _Clock(_time_parser(mapping.time_format))
    groups = _OrderGroups()
    order_counts: dict[str, int] = {}
    prefix = mapping.prefix

    def cell(fields: list[str], role: str) -> str:
        i = idx.get(role)
        return fields[i].strip() if i is not None else ""

    for line, fields, parts, error in records:
        if fields is None:
            yield _reject(line, error, parts)
            continue
        if not fields:
            continue
        if len(fields) < width:
            yield _reject(line, f"expected at least {width} fields, got {len(fields)}", parts)
            continue
        source_type = cell(fields, "event_type")
        kind = mapping.type_map.get(source_type)
        if kind is None:
            yield _reject(line, f"unmapped event type {source_type!r}", parts)
            continue
        product = cell(fields, "product")
        if not product:
            yield _reject(line, "empty product", parts)
            continue
        try:
            when, iso = clock(cell(fields, "time"))
            price = _price(cell(fields, "price")) if mapping.price else None
            qty_text = cell(fields, "quantity")
            quantity = _quantity(qty_text) if qty_text else 1
        except ValueError as exc:
            yield _reject(line, str(exc), parts)
            continue
        if quantity < 0 or (quantity == 0 and kind != "cart_remove"):
            yield _reject(line, f"quantity {quantity} for {kind}", parts)
            continue
        customer, anonymous = cell(fields, "customer"), cell(fields, "anonymous")
        session = cell(fields, "session")
        ids: WireEvent = {}
        if anonymous:
            ids["anonymous_id"] = anonymous
        if customer:
            ids["customer_id"] = customer
        if session:
            ids["session_id"] = session
        who = session or customer or anonymous
        category = cell(fields, "category") or UNCATEGORIZED
        event_id = cell(fields, "event_id") or f"{prefix}-L{line}"
        yield from groups.expire(when)
        if kind == "purchase":
            if price is None:
                yield _reject(line, "purchase row without a price: map a price column", parts)
                continue
            order_value = cell(fields, "order")
            key = f"order:{order_value}" if order_value else f"who:{who}"
            pending = groups.get(key)
            if pending is None:
                if order_value:
                    order_id = order_value
                else:
                    count = order_counts[key] = order_counts.get(key, 0) + 1
                    order_id = f"{prefix}-{who}-{count}"
                pending = groups.start(key, line, _order_head(event_id, ids, "placed", order_id))
            order_line: WireEvent = {
                "product_id": product,
                "quantity": quantity,
                "unit_price": price,
                "category": category,
            }
            groups.add(pending, order_line, when, iso)
            continue
        yield from groups.pop(f"who:{who}")
        event: WireEvent = {"type": "", "event_id": event_id, "occurred_at": iso}
        event.update(ids)
        if kind in ("view", "favourite"):
            event["type"] = "page_view"
            event.update(product_id=product, category=category)
            if price is not None:
                event["price"] = price
            if kind == "favourite":
                event["action"] = "favourite"
            if price is None or kind == "favourite":
                event["version"] = OPEN_PAGE_VIEW
        else:
            event["type"] = "cart"
            event.update(
                action="add" if kind == "cart_add" else "remove",
                product_id=product,
                quantity=quantity,
                price=price,
                category=category,
            )
            if price is None:  # cart 1-0-0 has an optional price
                del event["price"]
        yield event
    yield from groups.drain()
