"""Shared fixtures: the embedded broker (session-scoped) and per-test workers with unique topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip the test with a clear message."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real-data sample {path} not found (expects ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Tansu broker on loopback for the whole test session; its log is kept on failure."""
    from harness.broker import EmbeddedBroker

    log_dir = tmp_path_factory.mktemp("broker")
    b = EmbeddedBroker(log_dir=log_dir).start()
    yield b
    b.stop()


class Deployment:
    """Unique topics, group and state for one test, and the workers running them."""

    def __init__(self, broker: Any, tmp: Path, partitions: int, **overrides: Any) -> None:
        from harness.broker import free_port
        from streams.settings import Settings
        from streams.topics import TopicNames

        run = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.settings = Settings.from_env(
            {},
            broker=broker.url,
            app_id=f"t-{run}",
            topic_prefix=f"t{run}.",
            partitions=partitions,
            data_dir=tmp / "state-0",
            web_port=free_port(),
            **overrides,
        )
        self.names = TopicNames(self.settings.topic_prefix)
        self.bootstrap = broker.bootstrap
        self.workers: list[Any] = []
        self._free_port = free_port

    def create_topics(self) -> None:
        """Create every topic of this deployment."""
        from harness.process import create_topics

        names = self.names.all()
        asyncio.run(create_topics(self.bootstrap, names, self.settings.partitions))

    def start_worker(self, index: int | None = None, **overrides: Any) -> Any:
        """Start a worker with its own web port and state directory; wait until ready."""
        from harness.worker import WorkerProcess
        from streams.settings import Settings

        i = len(self.workers) if index is None else index
        fields = {f: getattr(self.settings, f) for f in self.settings.__dataclass_fields__}
        fields.update(web_port=self._free_port(), data_dir=self.tmp / f"state-{i}", **overrides)
        worker = WorkerProcess(Settings(**fields), self.tmp / f"worker-{i}.log").start()
        self.workers.append(worker)
        worker.wait_ready(timeout=90)
        return worker

    def stop(self) -> None:
        """Stop every worker."""
        for w in self.workers:
            w.stop()


@pytest.fixture
def deployment(broker: Any, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Factory of per-test deployments; workers are stopped at the end."""
    made: list[Deployment] = []

    def make(partitions: int = 4, **overrides: Any) -> Deployment:
        d = Deployment(broker, tmp_path, partitions, **overrides)
        d.create_topics()
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
