"""A gracefully stopped worker leaves the consumer group, also from generation 0 (Tansu's first)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.broker


def group_lines(log: str) -> list[str]:
    """The worker log's group-membership lines, in order."""
    keep = ("Joined group", "Elected group leader", "LeaveGroup request")
    return [line for line in log.splitlines() if any(k in line for k in keep)]


def test_a_restarted_worker_does_not_wait_for_its_own_ghost(deployment: Any) -> None:
    d = deployment(partitions=2)
    first = d.start_worker(index=0)
    first.stop()
    first_log = first.log_path.read_text()
    before = group_lines(first_log)
    assert "generation 0" in before[0]  # Tansu numbers the first generation 0
    assert any("LeaveGroup request succeeded" in line for line in before)
    second = d.start_worker(index=0)  # a restart on the same state directory (and log file)
    after = group_lines(second.log_path.read_text()[len(first_log) :])
    # no member of the old generation is left: the restarted worker leads at its first join
    # (with the stopped member still in the group it joins, is not elected, and joins again
    # once that member's session has timed out)
    assert "Joined group" in after[0] and "Elected group leader" in after[1]
