"""RELIABILITY.md, written by the reliability suite: one section per test, replaced on each run."""

from __future__ import annotations

import os
import re
from pathlib import Path

NO_REPORT_ENV = "JOURNEYSTREAM_REPORT"
REPORT = Path(__file__).resolve().parents[2] / "RELIABILITY.md"
HEADER = (
    "# Reliability\n\n"
    "Produced by `tests/reliability/` (run by `make test`); each test rewrites its section.\n"
)


def write_section(title: str, body: str) -> None:
    """Replace (or add) the section `## title` of RELIABILITY.md (not with JOURNEYSTREAM_REPORT=0,
    which `soak.py --no-report` sets)."""
    if os.environ.get(NO_REPORT_ENV) == "0":
        return
    text = REPORT.read_text() if REPORT.exists() else HEADER
    if not text.startswith("# Reliability"):
        text = HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _: section + "\n", text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section)
    )
    REPORT.write_text(text.rstrip() + "\n")
