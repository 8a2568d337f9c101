"""Uplift versus holdout, checked against published and hand-computed figures."""

import math

import pytest

from recommend.uplift import ArmResult, experiment_report, uplift, wilson


def test_wilson_interval_matches_newcombe_1998_table() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I:
    # 81/263 -> 0.2553 to 0.3662 (Wilson score, no continuity correction)
    low, high = wilson(81, 263)
    assert round(low, 4) == 0.2553 and round(high, 4) == 0.3662
    # 0/10 -> 0 to 0.2775: defined at the boundary, where the Wald interval is [0, 0]
    low, high = wilson(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775


def test_uplift_matches_newcombe_1998_worked_example() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", example (a): 56/70 vs 48/80, difference 0.2000, method 10: 0.0524 to 0.3339
    result = uplift(ArmResult(70, 56), ArmResult(80, 48))
    assert result is not None
    assert result["absolute"] == pytest.approx(0.2, abs=1e-9)
    assert round(result["ci_low"], 4) == 0.0524 and round(result["ci_high"], 4) == 0.3339
    assert result["relative"] == pytest.approx(0.2 / 0.6, abs=1e-6)
    assert result["significant"] is True


def test_uplift_by_hand_for_a_small_experiment() -> None:
    # 3 conversions of 10 treated, 0 of 10 held out. By hand, z = 1.96:
    # Wilson(3, 10): centre (0.3 + 0.19208) / 1.38416 = 0.35557,
    #   spread 1.96 * sqrt(0.021 + 0.009604) / 1.38416 = 0.24773 -> [0.10779, 0.60322]
    # Wilson(0, 10): [0, 0.27753]
    # low  = 0.3 - sqrt((0.3 - 0.10779)^2 + (0.27753 - 0)^2) = 0.3 - 0.33759 = -0.03759
    # high = 0.3 + sqrt((0.60322 - 0.3)^2 + 0) = 0.60322
    result = uplift(ArmResult(10, 3), ArmResult(10, 0))
    assert result is not None
    assert result["ci_low"] == pytest.approx(-0.0376, abs=2e-4)
    assert result["ci_high"] == pytest.approx(0.6032, abs=2e-4)
    assert result["relative"] is None  # no holdout conversions: relative uplift undefined
    assert result["significant"] is False  # the interval includes 0


def test_no_uplift_without_decisions_in_both_arms() -> None:
    assert uplift(ArmResult(0, 0), ArmResult(10, 1)) is None
    assert uplift(ArmResult(10, 1), ArmResult(0, 0)) is None


def test_interval_narrows_with_more_data_and_contains_the_difference() -> None:
    small = uplift(ArmResult(100, 12), ArmResult(100, 8))
    large = uplift(ArmResult(10_000, 1_200), ArmResult(10_000, 800))
    assert small is not None and large is not None
    assert small["absolute"] == pytest.approx(large["absolute"])
    width = [r["ci_high"] - r["ci_low"] for r in (small, large)]
    assert width[1] < width[0] / 5  # about 1/sqrt(100) as wide
    for r in (small, large):
        assert r["ci_low"] < r["absolute"] < r["ci_high"]
    # the large sample's interval is close to the Wald interval
    se = math.sqrt(0.12 * 0.88 / 10_000 + 0.08 * 0.92 / 10_000)
    assert large["ci_low"] == pytest.approx(0.04 - 1.96 * se, abs=5e-4)


def test_experiment_report_groups_arms_per_strategy() -> None:
    decided = {("downsell", "treatment"): 90, ("downsell", "holdout"): 10, ("popular", "all"): 5}
    converted = {("downsell", "treatment"): 18, ("downsell", "holdout"): 1}
    revenue = {("downsell", "treatment"): 540.0}
    report = experiment_report(decided, converted, revenue)
    assert set(report) == {"downsell", "popular"}
    treated = report["downsell"]["treatment"]
    assert treated["conversion_rate"] == pytest.approx(0.2)
    assert treated["revenue"] == 540.0
    assert treated["uplift"]["absolute"] == pytest.approx(0.1)
    assert report["downsell"]["holdout"]["uplift"] is None
    assert report["popular"]["all"]["uplift"] is None  # no holdout for this strategy
