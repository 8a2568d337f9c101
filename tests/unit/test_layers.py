"""The package layers of docs/ARCHITECTURE.md, read from every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ("journey", "recommend", "replay", "schemas")
FRAMEWORK = ("faust", "mode", "aiokafka", "kafka", "rocksdict", "prometheus_client")


def imported(path: Path) -> set[str]:
    """Top-level names of every module a file imports (relative imports excluded)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    """Every Python file of a package."""
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, f"no modules under {package}/"
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_no_framework_nor_app(package: str) -> None:
    """journey, recommend, replay and schemas import no Faust, Kafka, RocksDB or app code."""
    forbidden = {*FRAMEWORK, "streams", "harness"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported(path) & forbidden)
        for path in modules(package)
        if imported(path) & forbidden
    }
    assert offenders == {}


def test_the_app_does_not_import_the_harness() -> None:
    """streams/ holds only the Faust app: nothing in it imports the operator harness."""
    offenders = [str(p.relative_to(ROOT)) for p in modules("streams") if "harness" in imported(p)]
    assert offenders == []


def test_the_harness_holds_the_command_line() -> None:
    """The console script and `python -m harness` lead to the harness's command line."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'journeystream = "harness.cli:main"' in pyproject
    assert "from harness.cli import main" in (ROOT / "harness" / "__main__.py").read_text()
