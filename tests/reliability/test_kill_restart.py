"""Kills, rebalances and state loss under load: final state equals an independent reference.

A driver produces known events while a fault acts on two workers (`scenarios.SCENARIOS`). The
verifier recomputes every customer's whole state by applying the pure cores to the same events
in one process (no broker, no Faust: `reference.py`) and compares it with the latest changelog
value of each key; the ids on the abandonment and recommendation topics must be exactly the
reference sets, with duplicates only as repeated identical records. Figures go to
RELIABILITY.md. `make soak` runs the same scenarios many times (`soak.py`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.scenarios import (
    PARTITIONS,
    SCENARIOS,
    latest_changelog,
    run_scenario,
    suite_overrides,
    workload,
)
from tests.reliability.scenarios import write_report as write_scenario_report

pytestmark = [pytest.mark.broker, pytest.mark.reliability]
# imported from here by tests/integration/test_late_events.py and bench/reorder_cost.py
__all__ = ["latest_changelog", "workload"]
# the scenarios `make test` runs once (about a minute each on 2 cores); the control run and the
# kill during a restore (up to three restarts) run in `make soak` only (see soak.py)
IN_MAKE_TEST = ("Kill and restart", "Rebalance", "Local state loss", "Kill both workers")
SOAK_ONLY = [s for s in SCENARIOS if s not in IN_MAKE_TEST]


def scenario_params() -> list[Any]:
    """Every scenario; the soak-only ones are marked `soak` (skipped unless the soak runs)."""
    return [
        pytest.param(name, marks=[pytest.mark.soak] if name in SOAK_ONLY else [])
        for name in SCENARIOS
    ]


@pytest.mark.parametrize("scenario", scenario_params())
def test_state_and_outputs_match_reference(deployment: Any, tmp_path: Any, scenario: str) -> None:
    d = deployment(partitions=PARTITIONS, **suite_overrides(tmp_path))
    run = run_scenario(d, scenario)
    write_scenario_report(run)
    assert run.ok, "\n".join(run.failures())
