"""Measuring helpers: consumer-group progress, child processes, memory, disk, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition

from harness.process import committed, wait_committed
from harness.worker import WorkerProcess
from streams.settings import Settings


class BenchError(RuntimeError):
    """A benchmark could not be measured."""


def total(targets: Mapping[TopicPartition, int]) -> int:
    """Messages up to the target offsets (target = last produced offset)."""
    return sum(off + 1 for off in targets.values())


async def progress(bootstrap: str, group: str, targets: Mapping[TopicPartition, int]) -> int:
    """Messages the group has committed on the target partitions."""
    done = await committed(bootstrap, group, targets)
    return sum(max(0, min(done.get(tp, -1), off + 1)) for tp, off in targets.items())


@dataclass
class GroupTiming:
    """Events processed between t0 and the commit of the last target offset."""

    events: int
    seconds: float
    method: str

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def _watch(alive: Callable[[], bool], what: str) -> None:
    while alive():
        await asyncio.sleep(0.5)
    raise BenchError(f"{what} exited before it committed every offset")


async def time_group(
    bootstrap: str,
    group: str,
    targets: Mapping[TopicPartition, int],
    *,
    alive: Callable[[], bool],
    timeout: float,
    what: str,
    t0: float | None = None,
) -> GroupTiming:
    """Time a consumer group from t0 (or its first commit) to its commit past every target.

    The events counted are those committed after t0's committed offsets, so both ends carry
    the same commit lag (up to one commit interval). Waits with `harness.process.wait_committed`.
    """
    deadline = time.monotonic() + timeout
    if t0 is None:
        base = 0
        while base == 0:
            if not alive():
                raise BenchError(f"{what} exited before its first commit")
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not commit within {timeout:.0f}s")
            await asyncio.sleep(0.1)
            base = await progress(bootstrap, group, targets)
        start, method = time.monotonic(), "first commit to last commit"
    else:
        base = await progress(bootstrap, group, targets)
        start, method = t0, "ready to last commit"
    waiter = asyncio.ensure_future(
        wait_committed(bootstrap, group, dict(targets), max(1.0, deadline - time.monotonic()))
    )
    watcher = asyncio.ensure_future(_watch(alive, what))
    try:
        done, _ = await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # raises the watcher's BenchError or wait_committed's TimeoutError
    finally:
        for task in (waiter, watcher):
            task.cancel()
    end = time.monotonic()
    return GroupTiming(total(targets) - base, end - start, method)


class ModuleProcess(WorkerProcess):
    """A WorkerProcess running another module (`python -m <module>`), e.g. the no-op app."""

    def __init__(
        self, module: str, settings: Settings, log_path: Path, extra_env: dict[str, str]
    ) -> None:
        super().__init__(settings, log_path, extra_env)
        self.module = module

    def start(self) -> ModuleProcess:
        """Start the module with the settings' JOURNEYSTREAM_* variables."""
        env = {**os.environ, **self.settings.to_env(), **self.extra_env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self


def pid_of(proc: WorkerProcess) -> int:
    """The process id of a started worker."""
    if proc._proc is None:
        raise BenchError("process not started")
    return proc._proc.pid


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_mb(path: Path) -> float:
    """Disk usage of a directory tree (allocated blocks, like `du`), in MiB."""
    used = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(root, name)).st_blocks * 512
    return used / (1024.0 * 1024.0)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One benchmark figure: a value per run, summarised by its median."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float | None:
        """Median over runs (None when never measured)."""
        return statistics.median(self.values) if self.values else None
