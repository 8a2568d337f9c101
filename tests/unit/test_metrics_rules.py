"""The alert rules through promtool: `check rules` and the rule unit tests of docker/prometheus."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "docker" / "prometheus"
RULES = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
TESTS = yaml.safe_load((PROMETHEUS / "tests" / "alerts_test.yml").read_text())["tests"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in docker/prometheus, or skip when it is not installed."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip(
            "promtool not found: install Debian's prometheus package (`make promtool`, as root) "
            "to check and unit-test docker/prometheus/alerts.yml"
        )
    return subprocess.run(
        [exe, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in done.stdout


def test_every_alert_has_for_severity_and_annotations() -> None:
    for rule in RULES:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in TESTS for case in test.get("alert_rule_test", [])]
    for name in (rule["alert"] for rule in RULES):
        expectations = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == name]
        assert True in expectations, f"{name}: no series that fires it"
        assert False in expectations, f"{name}: no series that must not fire it"


def test_alert_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", "tests/alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
