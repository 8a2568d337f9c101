"""Thompson sampling moves new customers to the variant that converts better; holdout fixed."""

from __future__ import annotations

import random

from recommend.bandit import thompson_arm
from recommend.experiments import HOLDOUT, arm_for

VARIANTS = ("plain", "with_guide")
TRUE_RATE = {"plain": 0.05, "with_guide": 0.15}


def simulate(bandit: bool, customers: int = 3000, seed: int = 11) -> list[str]:
    """Customers arrive one by one; each converts with its arm's true rate."""
    outcome = random.Random(seed)
    counts = {v: [0, 0] for v in VARIANTS}
    arms = []
    for i in range(customers):
        key = f"c:{i}"
        if bandit:
            view = {v: (c[0], c[1]) for v, c in counts.items()}
            arm = thompson_arm(key, "recall_returning", 0.1, VARIANTS, view)
        else:
            arm = arm_for(key, "recall_returning", 0.1, VARIANTS)
        arms.append(arm)
        if arm != HOLDOUT:
            counts[arm][0] += 1
            counts[arm][1] += outcome.random() < TRUE_RATE[arm]
    return arms


def share(arms: list[str], arm: str) -> float:
    return sum(a == arm for a in arms) / len(arms)


def test_the_bandit_sends_most_new_customers_to_the_better_variant() -> None:
    arms = simulate(bandit=True)
    late = arms[-1000:]
    treated = [a for a in late if a != HOLDOUT]
    assert share(treated, "with_guide") > 0.8
    # without the bandit the treated customers split evenly (hash), whatever converts
    even = [a for a in simulate(bandit=False)[-1000:] if a != HOLDOUT]
    assert 0.4 < share(even, "with_guide") < 0.6


def test_the_holdout_is_the_same_customers_with_or_without_the_bandit() -> None:
    with_bandit, without = simulate(bandit=True), simulate(bandit=False)
    assert [a == HOLDOUT for a in with_bandit] == [a == HOLDOUT for a in without]
    assert 0.08 < share(with_bandit, HOLDOUT) < 0.12


def test_the_same_counts_give_the_same_arm() -> None:
    counts = {"plain": (100, 5), "with_guide": (100, 15)}
    first = [thompson_arm(f"c:{i}", "s", 0.1, VARIANTS, counts) for i in range(200)]
    again = [thompson_arm(f"c:{i}", "s", 0.1, VARIANTS, counts) for i in range(200)]
    assert first == again
    # with no data both variants are drawn from the same flat prior: roughly even
    flat = [thompson_arm(f"c:{i}", "s", 0.0, VARIANTS, {}) for i in range(2000)]
    assert 0.45 < share(flat, "plain") < 0.55


def test_the_rules_switch_the_bandit_on_per_strategy_and_an_arm_is_kept() -> None:
    from recommend.experiments import arm_picker
    from recommend.rules import RulesError, parse_rules

    rules = parse_rules(
        '[experiment.recall_returning]\nvariants = ["plain", "with_guide"]\nbandit = true\n'
    )
    config = rules.experiments["recall_returning"]
    assert config.bandit is True and config.variants == VARIANTS
    assert (
        parse_rules('[experiment.win_back]\nvariants = ["a", "b"]\n').experiments["win_back"].bandit
        is False
    )
    try:
        parse_rules('[experiment.win_back]\nbandit = "yes"\n')
    except RulesError as exc:
        assert "bandit" in str(exc) and "true or false" in str(exc)
    else:
        raise AssertionError("a bandit that is not a boolean must be refused")
    strong = {"plain": (1000, 10), "with_guide": (1000, 300)}
    picked = [
        arm_picker(f"c:{i}", 0.1, rules.experiments, counts=lambda s: strong)("recall_returning")
        for i in range(200)
    ]
    assert share([a for a in picked if a != HOLDOUT], "with_guide") > 0.95
    # a customer who already has an arm keeps it, whatever the counts say now
    kept = arm_picker(
        "c:7",
        0.1,
        rules.experiments,
        trials={"recall_returning": ["plain", 1, 0, 0.0]},
        counts=lambda s: strong,
    )
    assert kept("recall_returning") == "plain"
