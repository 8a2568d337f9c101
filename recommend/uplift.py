"""Uplift of a strategy's arm over its holdout: conversion rates and a confidence interval.

Conversion rate = attributed orders / decisions (sent in a treatment arm, recorded but not sent
in the holdout). The uplift is the difference of the two rates; its interval is Newcombe's hybrid
score interval (method 10 of Newcombe 1998), built from each rate's Wilson score interval: it
stays inside [-1, 1] and behaves at 0 or 100% conversion, where the Wald interval collapses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recommend.experiments import HOLDOUT

Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class ArmResult:
    """What one arm of one strategy decided and converted."""

    decided: int
    converted: int
    revenue: float = 0.0

    @property
    def rate(self) -> float | None:
        """Conversions per decision (None before any decision)."""
        return min(1.0, self.converted / self.decided) if self.decided else None


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if trials <= 0:
        return 0.0, 1.0
    p = min(1.0, successes / trials)
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def uplift(treated: ArmResult, holdout: ArmResult, z: float = Z_95) -> dict[str, Any] | None:
    """Treatment rate minus holdout rate, with its Newcombe interval; None without data."""
    p1, p2 = treated.rate, holdout.rate
    if p1 is None or p2 is None:
        return None
    l1, u1 = wilson(treated.converted, treated.decided, z)
    l2, u2 = wilson(holdout.converted, holdout.decided, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return {
        "absolute": round(diff, 6),
        "ci_low": round(low, 6),
        "ci_high": round(high, 6),
        "relative": round(diff / p2, 6) if p2 else None,
        "significant": low > 0 or high < 0,
    }


def experiment_report(
    decided: Mapping[tuple[str, str], float],
    converted: Mapping[tuple[str, str], float],
    revenue: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, Any]:
    """Per strategy and arm: decided, converted, revenue, rate, and uplift versus holdout."""
    revenue = revenue or {}
    strategies: dict[str, dict[str, ArmResult]] = {}
    for strategy, arm in {*decided, *converted}:
        strategies.setdefault(strategy, {})[arm] = ArmResult(
            int(decided.get((strategy, arm), 0)),
            int(converted.get((strategy, arm), 0)),
            float(revenue.get((strategy, arm), 0.0)),
        )
    report: dict[str, Any] = {}
    for strategy, arms in sorted(strategies.items()):
        held = arms.get(HOLDOUT)
        report[strategy] = {
            arm: {
                "decided": result.decided,
                "converted": result.converted,
                "revenue": round(result.revenue, 2),
                "conversion_rate": None if result.rate is None else round(result.rate, 6),
                "uplift": None if arm == HOLDOUT or held is None else uplift(result, held),
            }
            for arm, result in sorted(arms.items())
        }
    return report
