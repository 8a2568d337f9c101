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


def test_recommendations_map_to_orders_through_their_purchase_transition() -> None:
    records = [
        {"type": "journey_transition", "kind": "purchase", "id": "t1", "order_id": "o1"},
        {"type": "journey_transition", "kind": "stage", "id": "t2", "order_id": "o2"},
        {"type": "recommendation", "trigger_id": "t1", "items": [{"product_id": "a"}]},
        {"type": "recommendation", "trigger_id": "t2", "items": [{"product_id": "b"}]},
    ]
    by_order = recommendations_by_order(records)
    assert by_order == {"o1": ["a"]}
    baskets = [Basket("c", 0.0, ("o1", "o3"), ("x",)), Basket("c", 1.0, ("o4",), ("y",))]
    # the last order of a basket that got a recommendation; none for the second basket
    assert basket_recommendations(baskets, {**by_order, "o3": ["z"]}) == {0: ["z"]}
    assert basket_recommendations(baskets, by_order) == {0: ["a"]}


def test_section_is_replaced_in_place_and_kept_by_the_report(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# benchmarks\n\nbody\n")
    update_kept_section(path, f"{BEGIN}\n## old\n{END}\n")
    update_kept_section(path, f"{BEGIN}\n## new\n{END}\n")
    assert path.read_text() == f"# benchmarks\n\nbody\n\n{BEGIN}\n## new\n{END}\n"
    assert kept_sections(path) == [f"{BEGIN}\n## new\n{END}"]
    assert kept_sections(tmp_path / "absent.md") == []
