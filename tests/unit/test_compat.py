"""streams.compat: the Faust version check and every private Faust name the project uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import compat


@pytest.mark.parametrize(
    ("owner", "name"),
    compat.PRIVATE_NAMES,
    ids=[f"{getattr(o, '__name__', o)}.{n}" for o, n in compat.PRIVATE_NAMES],
)
def test_each_private_name_still_exists(owner: object, name: str) -> None:
    assert hasattr(owner, name), f"{owner}.{name} is gone: re-check streams/compat.py"


def test_private_instance_names_exist_on_built_objects(tmp_path: Path) -> None:
    app = faust.App("compat-test", store="memory://", datadir=str(tmp_path))

    async def noop(*args: Any) -> None:
        return None

    consumer = compat.Consumer(
        app.transport, callback=noop, on_partitions_revoked=noop, on_partitions_assigned=noop
    )
    built = {
        "consumer": consumer,
        "consumer_thread": consumer._new_consumer_thread(),
        "stream": app.stream(app.channel()),
        "store": compat.FencedStore("rocksdb://", app, app.Table("t"), table_name="t"),
    }

    async def aiokafka_consumer() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer()  # needs a running loop; never started

    built["aiokafka_consumer"] = asyncio.run(aiokafka_consumer())
    assert set(built) == set(compat.PRIVATE_INSTANCE_NAMES)
    for kind, names in compat.PRIVATE_INSTANCE_NAMES.items():
        for name in names:
            assert hasattr(built[kind], name), f"{kind}.{name} is gone: re-check streams/compat.py"


def test_the_installed_faust_is_the_checked_one() -> None:
    compat.check_faust_version()  # raises if the pin in pyproject and the overrides diverge


def test_another_faust_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    with pytest.raises(compat.FaustVersionError, match=r"0\.15\.3"):
        compat.check_faust_version()


def test_a_kept_queue_is_not_emptied_when_the_flow_resumes() -> None:
    flow = FlowControlEvent(initially_suspended=False)
    kept = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    other = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    compat.keep_on_resume(flow, kept)
    for queue in (kept, other):
        queue.put_nowait("record fetched after the seek")
    flow.suspend()
    flow.resume()
    assert kept.qsize() == 1  # what Faust's resume would have dropped
    assert other.qsize() == 0  # Faust's own behaviour, unchanged for other queues
