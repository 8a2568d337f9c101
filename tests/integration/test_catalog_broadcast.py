"""With two workers, every worker's catalog holds every product (broadcast catalog)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import _drain, produce, read_topics
from streams import topics
from tests.integration.test_goods_find_people import CATALOG, view

pytestmark = pytest.mark.broker
FATHERS = [f"father-{i}" for i in range(12)]


def test_every_worker_downsells_from_the_whole_catalog(deployment: Any) -> None:
    d = deployment(partitions=4, clock="event", experiment_holdout=0.0)
    d.start_worker(index=0)
    d.start_worker(index=1)
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    # customer keys spread over the 4 partitions, so both workers serve some of the fathers
    story = []
    for i, father in enumerate(FATHERS):
        day = f"2026-11-{3 + i % 5:02d}"
        story += [
            view(f"{father}-1", father, f"{day}T20:00:00+08:00", "stroller-aurora", 5200.0),
            view(f"{father}-2", father, f"{day}T20:05:00+08:00", "stroller-summit", 4300.0),
            view(f"{father}-3", father, f"{day}T20:10:00+08:00", "stroller-velvet", 3800.0),
        ]
    last = asyncio.run(produce(d.bootstrap, d.names, story, one_topic=True))
    asyncio.run(_drain(d.bootstrap, d.settings, d.names, last, 4, 90))
    records = asyncio.run(read_topics(d.bootstrap, [d.names(topics.GOODS_FIND_PEOPLE)]))
    downsell = {
        r["customer_key"]: r["items"][0]["product_id"]
        for r in records
        if r.get("strategy") == "downsell_after_browse"
    }
    # the mid-priced in-stock stroller for every father, whichever worker owns him
    assert downsell == {f"c:{f}": "stroller-breeze" for f in FATHERS}
