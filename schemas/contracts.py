"""Decode, validate and encode wire records against the JSON Schemas shipped in this package.

`decode` is the hot path: one orjson parse, one compiled fastjsonschema validator, one dataclass.
It never raises; anything unusable comes back as a `Rejection` with a category and a message that
names fields and rules only (never payload values).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final

import fastjsonschema
import orjson

from schemas.records import (
    EVENT_TYPES,
    TYPE_NAMES,
    CartChange,
    CatalogItem,
    Event,
    IdentityLink,
    Order,
    OrderLine,
    PageView,
)

CATEGORIES: Final = (
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "unknown_type",
    "schema_violation",
    "negative_value",
    "future_time",
    "missing_identity",
)
"""Rejection categories `decode` produces for bad payloads."""

DEAD_LETTER_CATEGORIES: Final = (*CATEGORIES, "adapter_row", "late_event", "internal_error")
"""Every category a dead-letter record may carry."""

MAX_PAYLOAD_BYTES: Final = 65536
FUTURE_TOLERANCE_S: Final = 300.0
BLOCKED_IDS: Final = frozenset({"", "0", "-1", "null", "none", "undefined", "anonymous"})
"""Placeholder id values (compared stripped and lower-cased) that count as no id."""

CURRENT_VERSION: Final = "1-0-0"
"""The SchemaVer `decode` assumes when `version` is absent, and `encode` writes by default."""

PAGE_VIEW_OPEN: Final = "1-0-1"
"""page_view version with an optional price and `action` (`encode` writes it when needed)."""

EARLIEST_TIME: Final = 946684800.0
"""2000-01-01T00:00:00Z: anything earlier is a broken clock, not an event."""

SCHEMA_BASE_URI: Final = "https://journeystream.example/schemas/"
"""Base of every schema `$id`; `$ref`s under it resolve to this package, never the network."""

RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""The `occurred_at` pattern of every schema (RFC 3339 with an explicit offset)."""

Validator = Callable[[Any], Any]

_PACKAGE: Final = __name__.rpartition(".")[0] or "schemas"
_TYPE_DIR = re.compile(r"[a-z][a-z0-9_]*")
_VERSION_FILE = re.compile(r"[0-9]+-[0-9]+-[0-9]+\.json")
_RFC3339 = re.compile(RFC3339_PATTERN.replace("$", r"\Z"))
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_BLOCKED_MAX_LEN: Final = 16
_AMOUNT_FIELDS: Final = frozenset({"price", "quantity", "total", "unit_price", "stock"})
_MAX_MESSAGE: Final = 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload could not be decoded: one of `CATEGORIES` and a privacy-safe message."""

    category: str
    message: str


_Builder = Callable[[dict[str, Any], float, float], Event | Rejection]

_NO_IDENTITY: Final = Rejection("missing_identity", "needs a usable anonymous_id or customer_id")
_LINK_NEEDS_BOTH: Final = Rejection(
    "missing_identity", "identity_link needs a usable anonymous_id and customer_id"
)


# ---------------------------------------------------------------- schema files and validators


@cache
def _schema_files() -> dict[tuple[str, str], Traversable]:
    """Every `<type>/<version>.json` in the package, found by scanning its folders once."""
    found: dict[tuple[str, str], Traversable] = {}
    for folder in resources.files(_PACKAGE).iterdir():
        if not folder.is_dir() or not _TYPE_DIR.fullmatch(folder.name):
            continue
        for file in folder.iterdir():
            if file.is_file() and _VERSION_FILE.fullmatch(file.name):
                found[(folder.name, file.name.removesuffix(".json"))] = file
    return found


def available_schemas() -> dict[str, tuple[str, ...]]:
    """Schema type names and their versions (oldest first) shipped in this package."""
    versions: dict[str, list[str]] = {}
    for type_name, version in _schema_files():
        versions.setdefault(type_name, []).append(version)
    return {
        name: tuple(sorted(found, key=lambda v: tuple(int(p) for p in v.split("-"))))
        for name, found in sorted(versions.items())
    }


def load_schema(type_name: str, version: str = CURRENT_VERSION) -> dict[str, Any]:
    """The parsed JSON Schema of a type and version; KeyError when there is none."""
    file = _schema_files().get((type_name, version))
    if file is None:
        raise KeyError(f"no schema {type_name}/{version}.json")
    schema: dict[str, Any] = orjson.loads(file.read_bytes())
    return schema


def _resolve_local(uri: str) -> dict[str, Any]:
    """Resolve a `$ref` under SCHEMA_BASE_URI to a packaged schema; refuse anything else."""
    if not uri.startswith(SCHEMA_BASE_URI):
        raise LookupError(f"refusing to fetch a schema outside {SCHEMA_BASE_URI}: {uri}")
    type_name, _, file = uri.removeprefix(SCHEMA_BASE_URI).partition("/")
    return load_schema(type_name, file.partition("#")[0].removesuffix(".json"))


def _compile(type_name: str, version: str, *, use_formats: bool) -> Validator:
    """Compile a packaged schema; `default`s are never written into the data."""
    return fastjsonschema.compile(
        load_schema(type_name, version),
        handlers={"https": _resolve_local, "http": _resolve_local},
        use_default=False,
        use_formats=use_formats,
    )


@cache
def validator_for(type_name: str, version: str = CURRENT_VERSION) -> Validator:
    """The compiled fastjsonschema validate function of any packaged schema (cached)."""
    return _compile(type_name, version, use_formats=True)


# ---------------------------------------------------------------------------------- time


def format_time(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with microseconds, e.g. 2026-11-02T02:00:00.000000+00:00."""
    seconds = math.floor(ts)
    micros = round((ts - seconds) * 1_000_000)
    moment = _EPOCH + timedelta(seconds=seconds, microseconds=micros)
    return moment.isoformat(timespec="microseconds")


def _parse_checked(text: str) -> float:
    """Epoch seconds of a string already matching RFC3339_PATTERN; ValueError if impossible."""
    if text[-3] == ":" and text[-2] > "5":
        raise ValueError("offset minutes out of range")
    if text[10] == "t" or text[-1] == "z":
        text = text.upper()
    return datetime.fromisoformat(text).timestamp()


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 date-time with an explicit offset; ValueError otherwise."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 date-time with an explicit offset")
    return _parse_checked(text)


def _occurred_at(text: str, now: float, tolerance: float) -> float | Rejection:
    """Validated event time: a real instant, not before 2000, not beyond now + tolerance."""
    try:
        at = _parse_checked(text)
    except (ValueError, OverflowError):
        return Rejection("schema_violation", "occurred_at: not a real date-time (date or offset)")
    if at < EARLIEST_TIME:
        return Rejection("schema_violation", "occurred_at: before 2000-01-01T00:00:00Z")
    if at - now > tolerance:
        return Rejection(
            "future_time",
            f"occurred_at: {at - now:.0f} s ahead of the processing clock "
            f"(tolerance {tolerance:g} s)",
        )
    return at


# ------------------------------------------------------------------------------ builders


def _usable(value: str | None) -> str | None:
    """The id, or None when absent or a blocked placeholder."""
    if value is None or (len(value) <= _BLOCKED_MAX_LEN and value.strip().lower() in BLOCKED_IDS):
        return None
    return value


def _envelope(
    data: dict[str, Any], now: float, tolerance: float, *, both: bool = False
) -> dict[str, Any] | Rejection:
    """The fields every customer event carries (ids usable, time checked), or the rejection."""
    anonymous_id = _usable(data.get("anonymous_id"))
    customer_id = _usable(data.get("customer_id"))
    if both and (anonymous_id is None or customer_id is None):
        return _LINK_NEEDS_BOTH
    if anonymous_id is None and customer_id is None:
        return _NO_IDENTITY
    at = _occurred_at(data["occurred_at"], now, tolerance)
    if isinstance(at, Rejection):
        return at
    get = data.get
    return {
        "event_id": data["event_id"],
        "occurred_at": at,
        "anonymous_id": anonymous_id,
        "customer_id": customer_id,
        "channel": get("channel"),
        "store_id": get("store_id"),
        "session_id": get("session_id"),
    }


def _page_view(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated page_view 1-0-0 payload as a PageView (an `action` field is unknown there)."""
    env = _envelope(data, now, tolerance)
    if isinstance(env, Rejection):
        return env
    get = data.get
    return PageView(
        **env,
        product_id=data["product_id"],
        category=data["category"],
        price=float(data["price"]),
        brand=get("brand"),
        title=get("title"),
    )


def _page_view_open(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated page_view 1-0-1 payload: price may be absent, `action` may be favourite."""
    env = _envelope(data, now, tolerance)
    if isinstance(env, Rejection):
        return env
    get = data.get
    price = get("price")
    return PageView(
        **env,
        product_id=data["product_id"],
        category=data["category"],
        price=None if price is None else float(price),
        brand=get("brand"),
        title=get("title"),
        action=get("action") or "view",
    )


def _cart(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated cart payload as a CartChange."""
    env = _envelope(data, now, tolerance)
    if isinstance(env, Rejection):
        return env
    get = data.get
    price = get("price")
    return CartChange(
        **env,
        action=data["action"],
        product_id=data["product_id"],
        quantity=int(data["quantity"]),
        price=None if price is None else float(price),
        category=get("category"),
    )


def _order(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated order payload as an Order."""
    env = _envelope(data, now, tolerance)
    if isinstance(env, Rejection):
        return env
    get = data.get
    lines = tuple(
        OrderLine(
            product_id=line["product_id"],
            quantity=int(line["quantity"]),
            unit_price=float(line["unit_price"]),
            category=line.get("category"),
        )
        for line in data["lines"]
    )
    return Order(
        **env,
        action=data["action"],
        order_id=data["order_id"],
        lines=lines,
        total=float(data["total"]),
        currency=get("currency"),
    )


def _catalog_item(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated catalog_item payload as a CatalogItem."""
    at = _occurred_at(data["occurred_at"], now, tolerance)
    if isinstance(at, Rejection):
        return at
    return CatalogItem(
        event_id=data["event_id"],
        occurred_at=at,
        product_id=data["product_id"],
        title=data["title"],
        category_path=tuple(data["category_path"]),
        price=float(data["price"]),
        stock=int(data["stock"]),
        attributes=data.get("attributes") or {},
    )


def _identity_link(data: dict[str, Any], now: float, tolerance: float) -> Event | Rejection:
    """A validated identity_link payload as an IdentityLink."""
    env = _envelope(data, now, tolerance, both=True)
    if isinstance(env, Rejection):
        return env
    get = data.get
    return IdentityLink(
        **env,
        reason=get("reason") or "login",
    )


_BUILDERS: Final[dict[str, _Builder]] = {
    "page_view": _page_view,
    "cart": _cart,
    "order": _order,
    "catalog_item": _catalog_item,
    "identity_link": _identity_link,
}
_VERSION_BUILDERS: Final[dict[tuple[str, str], _Builder]] = {
    ("page_view", PAGE_VIEW_OPEN): _page_view_open,
}
"""Builders of versions whose fields differ from the type's first version."""
_DECODERS: dict[tuple[str, str], tuple[Validator, _Builder]] = {}


def _decoder_for(type_name: str, version: str) -> tuple[Validator, _Builder] | None:
    """Validator and builder of an input type+version, compiled on first use; None if unknown."""
    key = (type_name, version)
    found = _DECODERS.get(key)
    if found is None:
        build = _VERSION_BUILDERS.get(key) or _BUILDERS.get(type_name)
        if build is None or key not in _schema_files():
            return None
        # No `format` checks here (the hot path): occurred_at is held to its pattern by the
        # schema and then parsed by datetime, which rejects impossible dates and offsets.
        found = _DECODERS[key] = (_compile(type_name, version, use_formats=False), build)
    return found


# ------------------------------------------------------------------------------ rejections


def _json_kind(value: object) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _unparsable(raw: bytes | bytearray | memoryview, error: orjson.JSONDecodeError) -> Rejection:
    """Classify a payload orjson refused: bad UTF-8, a non-finite number, or not JSON."""
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"invalid UTF-8 at byte {exc.start}")
    if not raw:
        return Rejection("not_json", "empty payload")
    if "infinity" in error.msg:
        return Rejection("schema_violation", "a number is not finite (out of the double range)")
    return Rejection("not_json", f"{error.msg} at char {error.pos}")


def _phrase(rule: str | None, definition: Any, field: str) -> str:
    """A readable statement of the schema rule a field broke."""
    if rule == "type":
        kinds = definition if isinstance(definition, list) else [definition]
        return "must be " + " or ".join(kinds)
    if rule in ("pattern", "format") and field.endswith("occurred_at"):
        return "must be an RFC 3339 date-time with an explicit offset (Z or +hh:mm)"
    phrases = {
        "minimum": "must be >= {}",
        "maximum": "must be <= {}",
        "exclusiveMinimum": "must be > {}",
        "exclusiveMaximum": "must be < {}",
        "minLength": "must have at least {} characters",
        "maxLength": "must have at most {} characters",
        "minItems": "must have at least {} items",
        "maxItems": "must have at most {} items",
        "pattern": "must match {}",
        "format": "must be a valid {}",
        "const": "must be {}",
    }
    if rule == "enum":
        return "must be one of " + ", ".join("null" if v is None else str(v) for v in definition)
    if rule in phrases:
        return phrases[rule].format(definition)
    return f"violates the '{rule}' rule"


def _violation(error: fastjsonschema.JsonSchemaValueException) -> Rejection:
    """The rejection for a schema validation error, naming the field and the rule only."""
    name = error.name or "data"
    field = name[5:] if name.startswith("data.") else ("" if name == "data" else name)
    rule = error.rule
    definition = error.rule_definition
    if rule == "anyOf" and field == "":
        return _NO_IDENTITY
    if rule == "required":
        present = error.value if isinstance(error.value, dict) else {}
        missing = [key for key in definition if key not in present]
        if field == "" and ("anonymous_id" in missing or "customer_id" in missing):
            return _LINK_NEEDS_BOTH
        where = f"{field}: " if field else ""
        return Rejection("schema_violation", f"{where}missing required {', '.join(missing)}")
    value = error.value
    if (
        rule in ("minimum", "exclusiveMinimum")
        and field.rpartition(".")[2] in _AMOUNT_FIELDS
        and isinstance(value, int | float)
        and value < 0
    ):
        return Rejection("negative_value", f"{field}: must not be negative (minimum {definition})")
    return Rejection(
        "schema_violation", f"{field or 'payload'}: {_phrase(rule, definition, field)}"
    )


# --------------------------------------------------------------------------- decode/encode


def decode(
    raw: bytes | None,
    now: float,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    future_tolerance: float = FUTURE_TOLERANCE_S,
) -> Event | Rejection:
    """Decode and validate one wire payload into a typed event, or say why not (never raises)."""
    try:
        if raw is None:
            return Rejection("not_json", "no payload (null message value)")
        if raw.__class__ is not bytes and not isinstance(raw, bytearray | memoryview):
            return Rejection("not_json", f"payload is {type(raw).__name__}, not bytes")
        if len(raw) > max_bytes:
            return Rejection("too_large", f"payload is {len(raw)} bytes, limit {max_bytes}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _unparsable(raw, exc)
        if data.__class__ is not dict:
            return Rejection("not_object", f"payload is a JSON {_json_kind(data)}, not an object")
        type_name = data.get("type")
        if type_name.__class__ is not str:
            return Rejection("unknown_type", "type: missing or not a string")
        version = data.get("version")
        if version is None:
            version = CURRENT_VERSION
        elif version.__class__ is not str:
            return Rejection("unknown_type", "version: not a string")
        decoder = _DECODERS.get((type_name, version)) or _decoder_for(type_name, version)
        if decoder is None:
            if type_name in _BUILDERS:
                return Rejection("unknown_type", f"version: no {type_name} schema of that version")
            return Rejection("unknown_type", "type: not an input event type")
        validate, build = decoder
        try:
            validate(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _violation(exc)
        return build(data, now, future_tolerance)
    except Exception as exc:  # the contract is "never raises": a bug must not stop the stream
        return Rejection("internal_error", f"decoder failed: {type(exc).__name__}")


_WIRE_FIELDS: Final = {cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES.values()}


def wire_version(event: Event) -> str:
    """The oldest version that carries the event (page_view 1-0-1 when priceless or a favourite)."""
    if event.__class__ is PageView:
        assert isinstance(event, PageView)
        if event.price is None or event.action != "view":
            return PAGE_VIEW_OPEN
    return CURRENT_VERSION


def to_wire(event: Event) -> dict[str, Any]:
    """The wire dict of an event: `type`, `version`, then its non-None fields."""
    cls = event.__class__
    wire: dict[str, Any] = {"type": TYPE_NAMES[cls], "version": wire_version(event)}
    for name in _WIRE_FIELDS[cls]:
        value = getattr(event, name)
        if value is None or (name == "action" and value == "view" and cls is PageView):
            continue
        if name == "occurred_at":
            value = format_time(value)
        elif name == "lines":
            value = [_line_wire(line) for line in value]
        wire[name] = value
    return wire


def _line_wire(line: OrderLine) -> dict[str, Any]:
    """The wire dict of an order line."""
    wire: dict[str, Any] = {
        "product_id": line.product_id,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
    }
    if line.category is not None:
        wire["category"] = line.category
    return wire


def encode(event: Event) -> bytes:
    """The orjson wire bytes of an event; `decode(encode(e), now) == e` for valid events."""
    return orjson.dumps(to_wire(event))


# ------------------------------------------------------------------------------ dead letters


# JOURNEYSTREAM_DEAD_LETTER_PAYLOAD: keep the original bytes, or only their sha256 and length
DEAD_LETTER_PAYLOADS: Final = ("original", "hash")
DEAD_LETTER_HASH_VERSION: Final = "1-0-1"


def dead_letter(
    category: str,
    message: str,
    *,
    original: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int | None,
    offset: int | None,
    line: int | None = None,
    now: float,
    payload: str = "original",
) -> dict[str, Any]:
    """A dead_letter record (1-0-0; 1-0-1 with payload "hash") with a deterministic id."""
    if payload not in DEAD_LETTER_PAYLOADS:
        raise ValueError(f"unknown dead-letter payload {payload!r}")
    if category not in DEAD_LETTER_CATEGORIES:
        raise ValueError(f"unknown dead-letter category {category!r}")
    if offset is not None:
        position = [str(partition), str(offset)]
    elif line is not None:
        position = [str(line)]
    else:
        position = ["sha1:" + hashlib.sha1(original or b"", usedforsecurity=False).hexdigest()]
    parts = "|".join([topic, *position, category]).encode()
    source: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    if line is not None:
        source["line"] = line
    record: dict[str, Any] = {
        "type": "dead_letter",
        "version": CURRENT_VERSION,
        "id": hashlib.sha1(parts, usedforsecurity=False).hexdigest()[:20],
        "category": category,
        "message": message[:_MAX_MESSAGE],
        "source": source,
        "original_b64": None if original is None else base64.b64encode(original).decode("ascii"),
        "original_key_b64": None if key is None else base64.b64encode(key).decode("ascii"),
        "occurred_at": format_time(now),
    }
    if payload == "hash":  # the bytes' sha256 and length instead of the bytes (1-0-1)
        record["version"] = DEAD_LETTER_HASH_VERSION
        record["original_b64"] = None
        record["original_sha256"] = (
            None if original is None else hashlib.sha256(original).hexdigest()
        )
        record["original_length"] = None if original is None else len(original)
    return record
