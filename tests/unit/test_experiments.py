"""Experiment arms (stable, balanced) and last-touch attribution at the window edges."""

from collections import Counter

from recommend.experiments import HOLDOUT, arm_for, assign_arms, attribute
from schemas.contracts import validator_for

DAY = 86400.0
T0 = 1_800_000_000.0


def test_arm_is_stable_and_depends_on_experiment() -> None:
    assert arm_for("c:42", "complements") == arm_for("c:42", "complements")
    arms = {arm_for(f"c:{i}", "a") == arm_for(f"c:{i}", "b") for i in range(200)}
    assert arms == {True, False}  # the experiment name re-shuffles customers


def test_arms_balanced_on_100k_ids() -> None:
    n = 100_000
    variants = ("treatment", "variant_b")
    counts = Counter(arm_for(f"c:{i}", "downsell", 0.10, variants) for i in range(n))
    expected = {HOLDOUT: 0.10 * n, "treatment": 0.45 * n, "variant_b": 0.45 * n}
    chi2 = sum((counts[a] - e) ** 2 / e for a, e in expected.items())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    assert set(counts) == set(expected)


def decision(rid: str, t: float, strategy: str = "complements") -> dict:
    from datetime import UTC, datetime

    return {
        "type": "recommendation",
        "id": rid,
        "strategy": strategy,
        "occurred_at": datetime.fromtimestamp(t, UTC).isoformat(),
    }


def holdout_and_treated_keys() -> tuple[str, str]:
    keys = [f"c:{i}" for i in range(100)]
    held = next(k for k in keys if arm_for(k, "complements", 0.5) == HOLDOUT)
    treated = next(k for k in keys if arm_for(k, "complements", 0.5) != HOLDOUT)
    return held, treated


def test_holdout_decisions_are_recorded_not_sent() -> None:
    held, treated = holdout_and_treated_keys()
    state: dict = {}
    record, signal = assign_arms(state, [decision("r1", T0)], customer_key=held, holdout=0.5)
    assert (record["type"], record["id"], record["arm"]) == ("decision", "r1", HOLDOUT)
    assert (record["delivered"], record["held_out_reason"]) == (False, "holdout")
    assert signal == {"type": "signal", "name": "suppressed_by_holdout", "strategy": "complements"}
    assert state["exposures"] == [[T0, "complements", HOLDOUT, "r1"]]
    state2: dict = {}
    audit, sent = assign_arms(state2, [decision("r2", T0)], customer_key=treated, holdout=0.5)
    assert sent["arm"] == "treatment" and sent["id"] == "r2"
    assert (audit["type"], audit["id"], audit["delivered"]) == ("decision", "r2", True)
    assert audit["held_out_reason"] is None


def test_an_arm_chosen_by_the_engine_is_kept() -> None:
    held, _ = holdout_and_treated_keys()
    chosen = {**decision("r3", T0), "arm": "treatment"}  # e.g. holdout 0 in the engine's call
    audit, sent = assign_arms({}, [chosen], customer_key=held, holdout=0.5)
    assert (audit["arm"], audit["delivered"], sent["arm"]) == ("treatment", True, "treatment")


def test_attribution_window_edges_last_touch_once() -> None:
    state: dict = {"exposures": [[T0, "complements", "treatment", "r1"]]}
    kw = {"customer_key": "c:1", "order_value": 10.0}
    assert attribute(state, order_id="o0", ordered_at=T0 - 1, **kw) is None  # before
    assert attribute(state, order_id="o1", ordered_at=T0 + 7 * DAY + 1, **kw) is None  # after
    record = attribute(state, order_id="o2", ordered_at=T0 + 7 * DAY, **kw)  # edge: inside
    assert record is not None and record["decision_id"] == "r1"
    assert record["seconds_to_convert"] == 7 * DAY
    validator_for("recommendation_converted")(record)
    assert attribute(state, order_id="o2", ordered_at=T0 + 7 * DAY, **kw) is None  # once
    state["exposures"].append([T0 + DAY, "downsell", "holdout", "r9"])
    last = attribute(state, order_id="o3", ordered_at=T0 + 2 * DAY, **kw)
    assert last is not None and (last["decision_id"], last["arm"]) == ("r9", "holdout")


def test_strategy_experiment_overrides_holdout_and_names_variants() -> None:
    from recommend.experiments import ExperimentConfig

    config = {"complements": ExperimentConfig(holdout=0.5, variants=("a", "b"))}
    arms: Counter[str] = Counter()
    for i in range(2000):
        out = assign_arms(
            {}, [decision(f"r{i}", T0)], customer_key=f"c:{i}", holdout=0.0, experiments=config
        )
        arms[out[0]["arm"]] += 1
    assert set(arms) == {HOLDOUT, "a", "b"}
    assert 900 < arms[HOLDOUT] < 1100  # the strategy's 50%, not the default 0%
    assert abs(arms["a"] - arms["b"]) < 150
    # another strategy keeps the default
    _, other = assign_arms(
        {},
        [decision("x", T0, strategy="downsell")],
        customer_key="c:1",
        holdout=0.0,
        experiments=config,
    )
    assert other["arm"] == "treatment"


def test_decision_example_matches_its_schema() -> None:
    import json
    from importlib import resources

    text = (resources.files("schemas") / "examples" / "decision.json").read_text()
    body = json.loads(text)
    assert validator_for("decision")(body) == body
    assert (body["delivered"], body["held_out_reason"]) == (False, "holdout")
