"""The merchant rules file: the packaged default and clear validation errors."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from recommend.rules import (
    COMPLEMENTS,
    DAY,
    DOWNSELL,
    RulesError,
    Selector,
    load_rules,
    parse_rules,
)

DEFAULT_TEXT = resources.files("recommend").joinpath("rules.toml").read_text(encoding="utf-8")


def bad(old: str, new: str) -> str:
    assert old in DEFAULT_TEXT, old
    return DEFAULT_TEXT.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_default_rules_tell_the_story() -> None:
    rules = load_rules()
    assert rules.k == 5
    first = rules.complements[0]
    assert first.when == Selector(category="baby/formula", attributes={"stage": 1})
    assert [s.category for s in first.suggest] == ["baby/diapers", "baby/wipes"]
    assert dict(first.suggest[0].attributes) == {"size": "S"}
    assert rules.discount.default_percent == 10
    assert rules.discount.cooldown_days == 7
    assert rules.discount.percent_for("baby/strollers") == 5
    assert rules.discount.percent_for("baby/formula") == 10
    assert rules.frequency.max_per_day == 3
    assert rules.frequency.cooldown_s(COMPLEMENTS) == 0
    assert rules.frequency.cooldown_s(DOWNSELL) == 24 * 3600
    assert set(rules.stores) == {"baby-home-1", "baby-home-2"}
    store = rules.stores["baby-home-1"].to_record()
    assert store["guide"]["name"] == "Lin Mei"
    assert rules.replenish_interval_s("baby/formula") == 14 * DAY
    assert rules.replenish_interval_s("home/kitchen") is None


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[general]\nk = 2\n")
    rules = load_rules(path)
    assert rules.k == 2
    assert rules.complements == ()
    assert rules.discount.max_percent == 30  # defaults fill what the file leaves out


def test_percent_over_100_names_key_and_line() -> None:
    text = bad("max_percent = 30", "max_percent = 150")
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.toml")
    line = line_of(text, "max_percent = 150")
    assert str(err.value) == (
        f"rules.toml: line {line}: discount.max_percent: must be a number in (0, 100], got 150"
    )
    assert err.value.key == "discount.max_percent"
    assert err.value.line == line


def test_unknown_key_names_the_allowed_ones() -> None:
    text = bad("cooldown_days = 7", "cooldwn_days = 7")
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.toml")
    message = str(err.value)
    assert f"line {line_of(text, 'cooldwn_days')}: discount.cooldwn_days: unknown key" in message
    assert "cooldown_days" in message  # the allowed keys are listed


def test_unknown_top_level_section() -> None:
    with pytest.raises(RulesError, match=r"line 1: discounts: unknown key"):
        parse_rules("[discounts]\nmax_percent = 5\n", "r.toml")


def test_errors_inside_arrays_of_tables() -> None:
    text = bad('attributes = { size = "S" }', "attributes = { size = [1] }")
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.toml")
    assert "complement[0].suggest[0].attributes.size: must be a string, number or boolean" in str(
        err.value
    )
    text = bad('guide = { name = "Zhou Hao"', 'guide = { nam = "Zhou Hao"')
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.toml")
    assert f"line {line_of(text, 'nam = ')}: store[1].guide.nam: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "default_percent = 10",
            "default_percent = 40",
            "discount.default_percent: must not exceed",
        ),
        (
            "default_percent = 10",
            "default_percent = 0",
            "discount.default_percent: must be a number",
        ),
        ('"baby/strollers" = 5', '"baby/strollers" = 101', 'percent_by_category."baby/strollers"'),
        ("k = 5", 'k = "five"', "general.k: must be an integer >= 1, got 'five'"),
        ("max_per_day = 3", "max_per_day = 0", "frequency.max_per_day: must be an integer >= 1"),
        ("complements_after_purchase = 0", "complement_after = 0", "complement_after: unknown key"),
        ('id = "baby-home-2"', 'id = "baby-home-1"', "store[1].id: duplicate store id"),
        ("min_confidence = 0.1", "min_confidence = 2", "copurchase.min_confidence"),
        ('"baby/formula" = 14', '"baby/formula" = -1', 'interval_days."baby/formula"'),
    ],
)
def test_bad_values(old: str, new: str, expected: str) -> None:
    with pytest.raises(RulesError, match=None) as err:
        parse_rules(bad(old, new), "rules.toml")
    assert expected in str(err.value)


def test_selector_needs_category_or_product() -> None:
    text = "[[complement]]\nwhen = { attributes = { stage = 1 } }\nsuggest = [{ category = 'x' }]\n"
    with pytest.raises(RulesError, match=r"line 2: complement\[0\]\.when: needs a `category`"):
        parse_rules(text, "r.toml")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"r.toml: invalid TOML: .*line 1"):
        parse_rules("[general\n", "r.toml")
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.toml")


EXPERIMENT = """
[experiment.discount_after_abandonment]
holdout = 0.2
variants = ["treatment", "reminder_first"]
"""


def test_experiments_from_the_rules_file() -> None:
    rules = parse_rules(DEFAULT_TEXT + EXPERIMENT)
    config = rules.experiments["discount_after_abandonment"]
    assert config.holdout == 0.2
    assert config.variants == ("treatment", "reminder_first")
    assert load_rules().experiments == {}  # the packaged file only shows an example


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("holdout = 0.2", "holdout = 1.5", "holdout: must be a number in [0, 0.99], got 1.5"),
        ('variants = ["treatment", "reminder_first"]', "variants = []", "non-empty array"),
        ('"reminder_first"]', '"treatment"]', "names must be unique and not 'holdout'"),
        ('"reminder_first"]', '"holdout"]', "names must be unique and not 'holdout'"),
        ("[experiment.discount_after_abandonment]", "[experiment.discounts]", "unknown key"),
    ],
)
def test_bad_experiments_name_key_and_line(old: str, new: str, expected: str) -> None:
    text = DEFAULT_TEXT + EXPERIMENT.replace(old, new)
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.toml")
    assert expected in str(err.value)
    assert "experiment." in str(err.value) and "line " in str(err.value)
