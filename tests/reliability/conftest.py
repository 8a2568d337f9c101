"""The `soak` marker: scenarios that run in `make soak` only (soak.py sets JOURNEYSTREAM_SOAK=1)."""

from __future__ import annotations

import os

import pytest

SOAK_ENV = "JOURNEYSTREAM_SOAK"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: runs in `make soak` only (too slow for make test)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SOAK_ENV) == "1":
        return
    skip = pytest.mark.skip(reason="soak only: run by `make soak` (tests/reliability/soak.py)")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)
