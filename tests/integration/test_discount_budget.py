"""The daily discount budget per store through the real broker: two workers, restarts, one cap.

Cap 5 a store per UTC day. Twelve customers of one store abandon a cart while two workers
run: their decisions race to the store-day's owner, which grants 5. Both workers are then
replaced by two fresh ones (new state directories: the budget comes back from the changelog)
and six more customers of that store, and three of another, abandon carts the same day: the
first store grants none, the second its own three. Counted on the output topics.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.applied import changelog_name, wait_applied
from harness.changelog import latest_changelog
from harness.process import _drain, produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker

CAP = 5
PARTITIONS = 4
DAY = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
STORE, OTHER = "baby-home-1", "baby-home-2"
CATALOG = [
    {
        "type": "catalog_item",
        "event_id": "cat-formula",
        "occurred_at": "2026-11-02T07:00:00Z",
        "product_id": "formula-s1",
        "title": "Formula stage 1",
        "category_path": ["baby", "formula"],
        "price": 32.0,
        "stock": 500,
        "attributes": {"stage": 1},
    }
]


def rules_with_cap(path: Path, cap: int) -> Path:
    """The packaged rules file with the daily discount budget per store set to `cap`."""
    text = resources.files("recommend").joinpath("rules.toml").read_text(encoding="utf-8")
    line = "daily_budget_per_store = 50 "
    assert line in text
    path.write_text(text.replace(line, f"daily_budget_per_store = {cap} "))
    return path


def carts(prefix: str, n: int, store: str, hour: int) -> list[dict[str, Any]]:
    """One cart add per customer, a second apart, in `store` at `hour` UTC on the day."""
    return [
        {
            "type": "cart",
            "event_id": f"{prefix}-{i}",
            "occurred_at": datetime.fromtimestamp(DAY + hour * 3600 + i, UTC).isoformat(),
            "customer_id": f"{prefix}-{i}",
            "store_id": store,
            "action": "add",
            "product_id": "formula-s1",
            "quantity": 1,
            "price": 32.0,
            "category": "baby/formula",
        }
        for i in range(n)
    ]


def run_phase(d: Any, events: list[dict[str, Any]]) -> None:
    """Produce the events, wait until applied, fire every deadline and wait for the second hop."""
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(_drain(d.bootstrap, d.settings, d.names, last, PARTITIONS, 120))


def outcome(d: Any) -> tuple[dict[str, int], dict[str, int], list[dict[str, Any]]]:
    """Discount triggers per store, denied decisions per store, and the triggers."""
    names = [d.names(topics.DISCOUNT_TRIGGERS), d.names(topics.DECISIONS)]
    records = asyncio.run(read_topics(d.bootstrap, names))
    store_of = {f"c:{e['customer_id']}": e["store_id"] for e in EVENTS}
    sent: dict[str, int] = {}
    denied: dict[str, int] = {}
    triggers = [r for r in records if r["type"] == "discount_trigger"]
    for r in triggers:
        sent[store_of[r["customer_key"]]] = sent.get(store_of[r["customer_key"]], 0) + 1
    for r in records:
        if r["type"] == "decision" and r["held_out_reason"] == "discount_budget":
            assert r["delivered"] is False and r["decision_type"] == "discount_trigger"
            denied[store_of[r["customer_key"]]] = denied.get(store_of[r["customer_key"]], 0) + 1
    return sent, denied, triggers


FIRST = carts("early", 12, STORE, 8)
LATER = carts("late", 6, STORE, 14) + carts("other", 3, OTHER, 14)
EVENTS = FIRST + LATER


def test_two_racing_workers_never_exceed_the_store_budget_and_a_restart_keeps_it(
    deployment: Any, tmp_path: Path
) -> None:
    rules = rules_with_cap(tmp_path / "rules.toml", CAP)
    d = deployment(
        partitions=PARTITIONS, clock="event", experiment_holdout=0.0, rules_file=str(rules)
    )
    d.start_worker()
    d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))

    run_phase(d, FIRST)
    sent, denied, triggers = outcome(d)
    assert sent == {STORE: CAP}
    assert denied == {STORE: 12 - CAP}
    assert len({t["id"] for t in triggers}) == CAP  # each granted once

    for w in d.workers:  # both gone; the new ones restore everything from the changelog
        w.stop()
    d.workers.clear()
    d.start_worker(index=2)
    d.start_worker(index=3)

    run_phase(d, LATER)
    sent, denied, triggers = outcome(d)
    assert sent == {STORE: CAP, OTHER: 3}  # the spent budget survived; the other store's own
    assert denied == {STORE: 12 - CAP + 6}
    assert len({t["id"] for t in triggers}) == CAP + 3
    # the budget rows are not customers for the readers of the changelog (process --kpis,
    # journeystream audience): every customer who carted, and nothing else
    states = asyncio.run(
        latest_changelog(d.bootstrap, changelog_name(d.settings.app_id), PARTITIONS)
    )
    assert sorted(states) == sorted(f"c:{e['customer_id']}" for e in EVENTS)


def test_process_sends_as_many_discounts_with_one_worker_as_with_two(
    broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`journeystream process` --workers 1 and 2 on the same carts: one store, one budget."""
    from harness.process_run import process_file

    monkeypatch.setenv("JOURNEYSTREAM_RULES_FILE", str(rules_with_cap(tmp_path / "r.toml", 3)))
    monkeypatch.setenv("JOURNEYSTREAM_EXPERIMENT_HOLDOUT", "0")
    data = tmp_path / "carts.jsonl"
    data.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [*CATALOG, *FIRST]))
    counts = {}
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}.jsonl"
        process_file(
            data,
            fmt="jsonl",
            output=out,
            workers=workers,
            bootstrap=broker.bootstrap,
            progress=False,
            timeout=240,
        )
        records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        denied = [r for r in records if r.get("held_out_reason") == "discount_budget"]
        counts[workers] = (Counter(r["type"] for r in records)["discount_trigger"], len(denied))
    assert counts == {1: (3, 12 - 3), 2: (3, 12 - 3)}
