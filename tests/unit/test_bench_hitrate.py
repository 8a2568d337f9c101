"""The hit-rate harness's record mapping and its BENCHMARKS.md section (kept by bench.report)."""

from __future__ import annotations

from pathlib import Path

from bench.hitrate import (
    BEGIN,
    END,
    basket_recommendations,
    recommendations_by_order,
)
from bench.report import kept_sections, update_kept_section
from recommend.evaluation import Basket


def decision(trigger: str, *products: str, delivered: bool = True, **over: str) -> dict:
    return {
        "type": "decision",
        "decision_type": "recommendation",
        "strategy": "complements_after_purchase",
        "trigger_id": trigger,
        "delivered": delivered,
        "product_ids": list(products),
        **over,
    }


def test_decisions_sent_or_held_out_map_to_orders_through_their_purchase_transition() -> None:
    records = [
        {"type": "journey_transition", "kind": "purchase", "id": "t1", "order_id": "o1"},
        {"type": "journey_transition", "kind": "stage", "id": "t2", "order_id": "o2"},
        {"type": "journey_transition", "kind": "purchase", "id": "t5", "order_id": "o5"},
        {"type": "recommendation", "trigger_id": "t5", "items": [{"product_id": "r"}]},
        decision("t1", "a", "b"),
        decision("t2", "b"),
        decision("t5", "h", delivered=False),  # held out: what would have been sent counts
        decision("t1", "z", strategy="downsell_after_browse"),
        decision("t5", "d", decision_type="discount_trigger"),
    ]
    by_order = recommendations_by_order(records)
    assert by_order == {"o1": ["a", "b"], "o5": ["h"]}
    baskets = [Basket("c", 0.0, ("o1", "o3"), ("x",)), Basket("c", 1.0, ("o4",), ("y",))]
    # the last order of a basket that got a recommendation; none for the second basket
    assert basket_recommendations(baskets, {**by_order, "o3": ["z"]}) == {0: ["z"]}
    assert basket_recommendations(baskets, by_order) == {0: ["a", "b"]}


def test_section_is_replaced_in_place_and_kept_by_the_report(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# benchmarks\n\nbody\n")
    update_kept_section(path, f"{BEGIN}\n## old\n{END}\n")
    update_kept_section(path, f"{BEGIN}\n## new\n{END}\n")
    assert path.read_text() == f"# benchmarks\n\nbody\n\n{BEGIN}\n## new\n{END}\n"
    assert kept_sections(path) == [f"{BEGIN}\n## new\n{END}"]
    assert kept_sections(tmp_path / "absent.md") == []
