"""The README's "Send one event, read one decision" snippet, run as written against a worker.

The block fenced as ```python title=produce-and-read is extracted from README.md and run in a
subprocess, pointed at the fixture's broker and topic prefix through the environment variables
it reads (`KAFKA_BOOTSTRAP`, `JOURNEYSTREAM_TOPIC_PREFIX`). The worker holds the demo scenario's
catalog, as under `make demo`. The snippet prints a decision only once it has read it back from
`recommend.decisions`, so the test fails when its order is not processed.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce
from replay.scenario import generate
from tests.conftest import REPO

pytestmark = pytest.mark.broker

FENCE = re.compile(r"^```python title=produce-and-read\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def readme_snippet() -> str:
    blocks = FENCE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 1, "README.md needs exactly one ```python title=produce-and-read block"
    return str(blocks[0])


def test_readme_snippet_sends_an_order_and_reads_its_decision(deployment: Any) -> None:
    code = readme_snippet()
    d = deployment(partitions=2, experiment_holdout=0.0)  # every decision in the treatment arm
    d.start_worker()
    catalog = [e for e in generate(seed=7) if e["type"] == "catalog_item"]  # the demo's
    last = asyncio.run(produce(d.bootstrap, d.names, catalog))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": d.bootstrap,
        "JOURNEYSTREAM_TOPIC_PREFIX": d.settings.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=d.tmp,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # stage-1 formula: the rules file's newborn diapers and wipes, as the README shows
    assert done.stdout.splitlines() == [
        "complements_after_purchase treatment ['diapers-s', 'wipes-80']"
    ], done.stdout + done.stderr
