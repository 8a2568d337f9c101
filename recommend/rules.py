"""The merchant rules file (TOML): complements, discounts, caps, reminders, re-engagement (pure).

`load_rules(path)` reads and validates a file (`None`: the packaged `recommend/rules.toml`);
`parse_rules(text, source)` validates text. Any problem raises `RulesError` whose message names
the source, the line (best effort for semantic errors) and the dotted key, e.g.
`rules.toml: line 48: discount.max_percent: must be a number in (0, 100], got 150`.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from recommend.catalog import item_matches
from recommend.copurchase import CoPurchaseConfig
from recommend.experiments import HOLDOUT, ExperimentConfig

DAY = 86400.0
HOUR = 3600.0

# strategy names (used in records, cooldowns and metrics)
COMPLEMENTS = "complements_after_purchase"
DOWNSELL = "downsell_after_browse"
DISCOUNT = "discount_after_abandonment"
REPLENISHMENT = "replenishment"
FAVOURITES = "favourites_repurchase"
POPULAR = "popular_in_category"
RECALL = "recall_returning"
WIN_BACK = "win_back"
STRATEGIES = (
    COMPLEMENTS,
    DOWNSELL,
    DISCOUNT,
    REPLENISHMENT,
    FAVOURITES,
    POPULAR,
    RECALL,
    WIN_BACK,
)
# what a re-engagement strategy sends: a recommendation, or a discount trigger on its top product
OFFER_RECOMMENDATION = "recommendation"
OFFER_DISCOUNT = "discount"
OFFERS = (OFFER_RECOMMENDATION, OFFER_DISCOUNT)

Path_ = tuple[str | int, ...]


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the key and (when found) the line."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


@dataclass(frozen=True, slots=True)
class Selector:
    """Products by category (covers sub-categories), product id and/or attribute values."""

    category: str | None = None
    product: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    limit: int = 1

    def matches(self, product_id: str, category: str | None, attributes: Mapping[str, Any]) -> bool:
        """Whether a product (its category and attributes) is selected."""
        if self.product is not None and product_id != self.product:
            return False
        if self.category is not None and category is None:
            return False
        return item_matches(category or "", dict(attributes), self.category, dict(self.attributes))

    def describe(self) -> str:
        """Short human text, e.g. `baby/diapers (size=S)`."""
        head = self.product or self.category or "*"
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"{head} ({attrs})" if attrs else head


@dataclass(frozen=True, slots=True)
class ComplementRule:
    """Bought a product matching `when` -> suggest products matching each `suggest` selector."""

    name: str
    when: Selector
    suggest: tuple[Selector, ...]


@dataclass(frozen=True, slots=True)
class DiscountPolicy:
    """Discount size, per-customer cooldown, per-store daily budget and validity."""

    default_percent: float = 10.0
    max_percent: float = 30.0
    cooldown_days: float = 7.0
    daily_budget_per_store: int = 50
    expires_hours: float = 48.0
    percent_by_category: Mapping[str, float] = field(default_factory=dict)

    def percent_for(self, category: str | None) -> float:
        """The most specific category override (else the default), capped at `max_percent`."""
        best: tuple[int, float] | None = None
        if category is not None:
            for cat, pct in self.percent_by_category.items():
                if (category == cat or category.startswith(cat + "/")) and (
                    best is None or len(cat) > best[0]
                ):
                    best = (len(cat), pct)
        pct = best[1] if best is not None else self.default_percent
        return min(pct, self.max_percent)


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """Messages per customer per rolling 24 h and per-strategy cooldowns."""

    max_per_day: int = 3
    cooldown_hours: float = 24.0
    strategy_cooldown_hours: Mapping[str, float] = field(default_factory=dict)

    def cooldown_s(self, strategy: str) -> float:
        """Cooldown of one strategy in seconds."""
        return self.strategy_cooldown_hours.get(strategy, self.cooldown_hours) * HOUR


@dataclass(frozen=True, slots=True)
class Recall:
    """Recall of a never-purchased visitor on their `visits`-th visit (0: off), once."""

    visits: int = 3
    offer: str = OFFER_RECOMMENDATION


@dataclass(frozen=True, slots=True)
class WinBack:
    """Win back a buyer `after_days` of inactivity (the lapse; 0: off), once per lapse."""

    after_days: float = 90.0
    offer: str = OFFER_RECOMMENDATION

    @property
    def after_s(self) -> float | None:
        """The inactivity before the win-back in seconds, None when off."""
        return self.after_days * DAY if self.after_days > 0 else None


@dataclass(frozen=True, slots=True)
class Store:
    """One store of the directory and its shopping guide."""

    id: str
    name: str
    address: str
    region: str | None = None
    guide_name: str | None = None
    guide_contact: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The `store` object of output records."""
        return {
            "id": self.id,
            "name": self.name,
            "address": self.address,
            "guide": {"name": self.guide_name, "contact": self.guide_contact},
        }


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the merchant configures."""

    k: int = 5
    just_bought_days: float = 30.0
    complements: tuple[ComplementRule, ...] = ()
    copurchase: CoPurchaseConfig = field(default_factory=CoPurchaseConfig)
    downsell_min_high: int = 3
    discount: DiscountPolicy = field(default_factory=DiscountPolicy)
    frequency: FrequencyCap = field(default_factory=FrequencyCap)
    replenishment_days: Mapping[str, float] = field(default_factory=dict)
    replenishment_default_days: float = 0.0
    stores: Mapping[str, Store] = field(default_factory=dict)
    experiments: Mapping[str, ExperimentConfig] = field(default_factory=dict)
    recall: Recall = field(default_factory=Recall)
    win_back: WinBack = field(default_factory=WinBack)

    def replenish_interval_s(self, category: str | None) -> float | None:
        """Replenishment interval of a category (most specific entry), None when not replenished."""
        best: tuple[int, float] | None = None
        if category is not None:
            for cat, days in self.replenishment_days.items():
                if (category == cat or category.startswith(cat + "/")) and (
                    best is None or len(cat) > best[0]
                ):
                    best = (len(cat), days)
        days = best[1] if best is not None else self.replenishment_default_days
        return days * DAY if days > 0 else None


# ---------------------------------------------------------------------------------------------
# loading


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a rules file; None reads the packaged default `recommend/rules.toml`."""
    if path is None:
        text = resources.files("recommend").joinpath("rules.toml").read_text(encoding="utf-8")
        return parse_rules(text, "rules.toml")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}: cannot read rules file: {exc}") from exc
    return parse_rules(text, str(p))


def parse_rules(text: str, source: str = "rules") -> Rules:
    """Validate rules-file text (TOML) into `Rules`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: invalid TOML: {exc}") from exc
    return _Parser(text, source).rules(data)


_SECTIONS = (
    "general",
    "complement",
    "copurchase",
    "downsell",
    "discount",
    "frequency",
    "replenishment",
    "recall",
    "win_back",
    "store",
    "experiment",
)


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    # -- errors -----------------------------------------------------------------------------

    def fail(self, path: Path_, problem: str) -> RulesError:
        key = _dotted(path)
        line = self.line_of(path)
        where = f"line {line}: " if line is not None else ""
        return RulesError(f"{self.source}: {where}{key}: {problem}", key=key, line=line)

    def line_of(self, path: Path_) -> int | None:
        """Best-effort 1-based line of a key: its table header, then the key inside it."""
        if not path:
            return None
        start: int | None = None
        rest: Path_ = ()
        head = path[0]
        if len(path) >= 2 and isinstance(path[1], int):
            seen = -1
            pattern = re.compile(r"^\s*\[\[\s*" + re.escape(str(head)) + r"\s*\]\]")
            for i, line in enumerate(self.lines):
                if pattern.match(line):
                    seen += 1
                    if seen == path[1]:
                        start, rest = i, path[2:]
                        break
        else:
            names = [str(p) for p in path if isinstance(p, str)]
            for n in range(len(names), 0, -1):
                header = re.compile(
                    r"^\s*\[\s*" + r"\s*\.\s*".join(map(_key_re, names[:n])) + r"\s*\]"
                )
                found = next((i for i, ln in enumerate(self.lines) if header.match(ln)), None)
                if found is not None:
                    start, rest = found, tuple(names[n:])
                    break
        keys = [p for p in rest if isinstance(p, str)]
        if start is None:
            if not keys and isinstance(head, str):
                keys = [head]
            start = -1
        if not keys:
            return start + 1 if start >= 0 else None
        target = re.compile(r"(^|[{,\s])" + _key_re(keys[-1]) + r"\s*=")
        for i in range(start + 1, len(self.lines)):
            line = self.lines[i]
            if i > start + 1 and line.lstrip().startswith("[") and start >= 0:
                break
            if target.search(line.split("#", 1)[0]):
                return i + 1
        return start + 1 if start >= 0 else None

    # -- typed getters ----------------------------------------------------------------------

    def table(self, value: Any, path: Path_, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    (*path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})"
                )
        return value

    def number(
        self,
        value: Any,
        path: Path_,
        *,
        low: float = 0.0,
        high: float = math.inf,
        low_open: bool = False,
    ) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and math.isfinite(value):
            ok = (value > low if low_open else value >= low) and value <= high
        else:
            ok = False
        if not ok:
            bracket = "(" if low_open else "["
            top = "inf)" if high == math.inf else f"{_fmt(high)}]"
            raise self.fail(
                path, f"must be a number in {bracket}{_fmt(low)}, {top}, got {_show(value)}"
            )
        return float(value)

    def integer(self, value: Any, path: Path_, *, low: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.fail(path, f"must be an integer >= {low}, got {_show(value)}")
        return value

    def string(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string, got {_show(value)}")
        return value

    def percent(self, value: Any, path: Path_) -> float:
        return self.number(value, path, low=0.0, high=100.0, low_open=True)

    # -- sections ---------------------------------------------------------------------------

    def rules(self, data: dict[str, Any]) -> Rules:
        self.table(data, (), _SECTIONS)
        general = self.table(data.get("general", {}), ("general",), ("k", "just_bought_days"))
        k = self.integer(general.get("k", 5), ("general", "k"), low=1)
        just_bought = self.number(
            general.get("just_bought_days", 30), ("general", "just_bought_days")
        )
        complements = self.complements(data.get("complement", []))
        cp = self.table(
            data.get("copurchase", {}),
            ("copurchase",),
            ("half_life_days", "min_support", "min_confidence", "max_pairs_per_product"),
        )
        copurchase = CoPurchaseConfig(
            half_life_days=self.number(
                cp.get("half_life_days", 30), ("copurchase", "half_life_days"), low_open=True
            ),
            min_support=self.number(cp.get("min_support", 1.0), ("copurchase", "min_support")),
            min_confidence=self.number(
                cp.get("min_confidence", 0.1), ("copurchase", "min_confidence"), high=1.0
            ),
            max_pairs_per_product=self.integer(
                cp.get("max_pairs_per_product", 50), ("copurchase", "max_pairs_per_product"), low=1
            ),
        )
        down = self.table(data.get("downsell", {}), ("downsell",), ("min_high_priced",))
        min_high = self.integer(
            down.get("min_high_priced", 3), ("downsell", "min_high_priced"), low=1
        )
        return Rules(
            k=k,
            just_bought_days=just_bought,
            complements=complements,
            copurchase=copurchase,
            downsell_min_high=min_high,
            discount=self.discount(data.get("discount", {})),
            frequency=self.frequency(data.get("frequency", {})),
            **self.replenishment(data.get("replenishment", {})),
            stores=self.stores(data.get("store", [])),
            experiments=self.experiments(data.get("experiment", {})),
            recall=self.recall(data.get("recall", {})),
            win_back=self.win_back(data.get("win_back", {})),
        )

    def selector(self, value: Any, path: Path_, *, with_limit: bool) -> Selector:
        allowed = (
            ("category", "product", "attributes", "limit")
            if with_limit
            else (
                "category",
                "product",
                "attributes",
            )
        )
        t = self.table(value, path, allowed)
        if "category" not in t and "product" not in t:
            raise self.fail(path, "needs a `category` or a `product`")
        category = self.string(t["category"], (*path, "category")) if "category" in t else None
        product = self.string(t["product"], (*path, "product")) if "product" in t else None
        attrs = t.get("attributes", {})
        if not isinstance(attrs, dict):
            raise self.fail((*path, "attributes"), f"must be a table, got {_kind(attrs)}")
        for key, v in attrs.items():
            if not isinstance(v, (str, int, float, bool)):
                raise self.fail(
                    (*path, "attributes", key),
                    f"must be a string, number or boolean, got {_kind(v)}",
                )
        limit = self.integer(t.get("limit", 1), (*path, "limit"), low=1)
        return Selector(category, product, dict(attrs), limit)

    def complements(self, value: Any) -> tuple[ComplementRule, ...]:
        if not isinstance(value, list):
            raise self.fail(("complement",), "must be an array of tables ([[complement]])")
        out = []
        for n, raw in enumerate(value):
            path: Path_ = ("complement", n)
            t = self.table(raw, path, ("name", "when", "suggest"))
            if "when" not in t:
                raise self.fail(path, "missing `when`")
            if "suggest" not in t:
                raise self.fail(path, "missing `suggest`")
            name = self.string(t.get("name", f"complement #{n + 1}"), (*path, "name"))
            when = self.selector(t["when"], (*path, "when"), with_limit=False)
            suggest_raw = t["suggest"]
            if not isinstance(suggest_raw, list) or not suggest_raw:
                raise self.fail((*path, "suggest"), "must be a non-empty array of selectors")
            suggest = tuple(
                self.selector(s, (*path, "suggest", i), with_limit=True)
                for i, s in enumerate(suggest_raw)
            )
            out.append(ComplementRule(name, when, suggest))
        return tuple(out)

    def discount(self, value: Any) -> DiscountPolicy:
        p: Path_ = ("discount",)
        t = self.table(
            value,
            p,
            (
                "default_percent",
                "max_percent",
                "cooldown_days",
                "daily_budget_per_store",
                "expires_hours",
                "percent_by_category",
            ),
        )
        default = self.percent(t.get("default_percent", 10), (*p, "default_percent"))
        top = self.percent(t.get("max_percent", 30), (*p, "max_percent"))
        if default > top:
            raise self.fail(
                (*p, "default_percent"),
                f"must not exceed discount.max_percent ({_fmt(top)}), got {_fmt(default)}",
            )
        by_cat_raw = t.get("percent_by_category", {})
        if not isinstance(by_cat_raw, dict):
            raise self.fail(
                (*p, "percent_by_category"), f"must be a table, got {_kind(by_cat_raw)}"
            )
        by_cat = {
            str(cat): self.percent(v, (*p, "percent_by_category", cat))
            for cat, v in by_cat_raw.items()
        }
        return DiscountPolicy(
            default_percent=default,
            max_percent=top,
            cooldown_days=self.number(t.get("cooldown_days", 7), (*p, "cooldown_days")),
            daily_budget_per_store=self.integer(
                t.get("daily_budget_per_store", 50), (*p, "daily_budget_per_store")
            ),
            expires_hours=self.number(
                t.get("expires_hours", 48), (*p, "expires_hours"), low_open=True
            ),
            percent_by_category=by_cat,
        )

    def frequency(self, value: Any) -> FrequencyCap:
        p: Path_ = ("frequency",)
        t = self.table(value, p, ("max_per_day", "cooldown_hours", "strategy_cooldown_hours"))
        per = self.table(
            t.get("strategy_cooldown_hours", {}), (*p, "strategy_cooldown_hours"), STRATEGIES
        )
        return FrequencyCap(
            max_per_day=self.integer(t.get("max_per_day", 3), (*p, "max_per_day"), low=1),
            cooldown_hours=self.number(t.get("cooldown_hours", 24), (*p, "cooldown_hours")),
            strategy_cooldown_hours={
                s: self.number(v, (*p, "strategy_cooldown_hours", s)) for s, v in per.items()
            },
        )

    def replenishment(self, value: Any) -> dict[str, Any]:
        p: Path_ = ("replenishment",)
        t = self.table(value, p, ("default_days", "interval_days"))
        raw = t.get("interval_days", {})
        if not isinstance(raw, dict):
            raise self.fail((*p, "interval_days"), f"must be a table, got {_kind(raw)}")
        return {
            "replenishment_default_days": self.number(
                t.get("default_days", 0), (*p, "default_days")
            ),
            "replenishment_days": {
                str(c): self.number(v, (*p, "interval_days", c), low_open=True)
                for c, v in raw.items()
            },
        }

    def offer(self, value: Any, path: Path_) -> str:
        if value not in OFFERS:
            raise self.fail(
                path, f"must be one of {', '.join(map(repr, OFFERS))}, got {_show(value)}"
            )
        return str(value)

    def recall(self, value: Any) -> Recall:
        p: Path_ = ("recall",)
        t = self.table(value, p, ("visits", "offer"))
        visits = self.integer(t.get("visits", 3), (*p, "visits"))
        if visits == 1:
            raise self.fail((*p, "visits"), "must be 0 (off) or >= 2 (a return visit), got 1")
        return Recall(
            visits=visits, offer=self.offer(t.get("offer", OFFER_RECOMMENDATION), (*p, "offer"))
        )

    def win_back(self, value: Any) -> WinBack:
        p: Path_ = ("win_back",)
        t = self.table(value, p, ("after_days", "offer"))
        return WinBack(
            after_days=self.number(t.get("after_days", 90), (*p, "after_days")),
            offer=self.offer(t.get("offer", OFFER_RECOMMENDATION), (*p, "offer")),
        )

    def experiments(self, value: Any) -> dict[str, ExperimentConfig]:
        p: Path_ = ("experiment",)
        out: dict[str, ExperimentConfig] = {}
        for strategy, raw in self.table(value, p, STRATEGIES).items():
            t = self.table(raw, (*p, strategy), ("holdout", "variants", "bandit"))
            holdout = None
            if "holdout" in t:
                holdout = self.number(t["holdout"], (*p, strategy, "holdout"), high=0.99)
            variants = t.get("variants", ["treatment"])
            vp = (*p, strategy, "variants")
            if not isinstance(variants, list) or not variants:
                raise self.fail(vp, f"must be a non-empty array of names, got {_show(variants)}")
            names = tuple(self.string(v, (*vp, i)) for i, v in enumerate(variants))
            if len(set(names)) != len(names) or HOLDOUT in names:
                raise self.fail(vp, f"names must be unique and not {HOLDOUT!r}: {list(names)}")
            bandit = t.get("bandit", False)
            if not isinstance(bandit, bool):
                raise self.fail(
                    (*p, strategy, "bandit"), f"must be true or false, got {_show(bandit)}"
                )
            out[str(strategy)] = ExperimentConfig(holdout, names, bandit)
        return out

    def stores(self, value: Any) -> dict[str, Store]:
        if not isinstance(value, list):
            raise self.fail(("store",), "must be an array of tables ([[store]])")
        out: dict[str, Store] = {}
        for n, raw in enumerate(value):
            path: Path_ = ("store", n)
            t = self.table(raw, path, ("id", "name", "region", "address", "guide"))
            for key in ("id", "name", "address"):
                if key not in t:
                    raise self.fail(path, f"missing `{key}`")
            sid = self.string(t["id"], (*path, "id"))
            if sid in out:
                raise self.fail((*path, "id"), f"duplicate store id {sid!r}")
            guide = self.table(t.get("guide", {}), (*path, "guide"), ("name", "contact"))
            out[sid] = Store(
                id=sid,
                name=self.string(t["name"], (*path, "name")),
                address=self.string(t["address"], (*path, "address")),
                region=self.string(t["region"], (*path, "region")) if "region" in t else None,
                guide_name=self.string(guide["name"], (*path, "guide", "name"))
                if "name" in guide
                else None,
                guide_contact=self.string(guide["contact"], (*path, "guide", "contact"))
                if "contact" in guide
                else None,
            )
        return out


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) is not None
            out += ("." if out else "") + (part if bare else f'"{part}"')
    return out or "(top level)"


def _key_re(key: str) -> str:
    return r"[\"']?" + re.escape(key) + r"[\"']?"


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _kind(value)
    return (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
