"""Co-purchase counts: decay, thresholds, bounds (hand-computed numbers)."""

from __future__ import annotations

import pytest

from recommend.copurchase import DAY, CoPurchase, CoPurchaseConfig

T0 = 1_790_000_000.0


def test_decay_and_confidence_hand_computed() -> None:
    cp = CoPurchase(CoPurchaseConfig(half_life_days=30, min_support=0.0, min_confidence=0.0))
    cp.observe_order(["A", "B"], T0)
    cp.observe_order(["A", "C"], T0)
    cp.observe_order(["A", "B", "B"], T0 + 30 * DAY)  # duplicate B counts once
    t = T0 + 30 * DAY
    # A: 2 orders one half-life ago (worth 1.0) + 1 now = 2.0
    assert cp.weight("A", t) == pytest.approx(2.0)
    # (A, B): 0.5 + 1 = 1.5 -> confidence 0.75; (A, C): 0.5 -> 0.25
    assert cp.pair_weight("A", "B", t) == pytest.approx(1.5)
    assert cp.top("A", 5, t) == [("B", 0.75), ("C", 0.25)]
    # B: 0.5 + 1 = 1.5, (B, A) 1.5 -> confidence 1.0
    assert cp.top("B", 5, t) == [("A", 1.0)]
    # another half-life later everything halves: confidences unchanged, supports halve
    assert cp.pair_weight("A", "C", t + 30 * DAY) == pytest.approx(0.25)


def test_thresholds() -> None:
    cp = CoPurchase(CoPurchaseConfig(half_life_days=30, min_support=1.0, min_confidence=0.3))
    cp.observe_order(["A", "B"], T0)
    cp.observe_order(["A", "C"], T0)
    cp.observe_order(["A", "B"], T0 + 30 * DAY)
    t = T0 + 30 * DAY
    # C: support 0.5 < 1.0 -> dropped; B: support 1.5, confidence 0.75 -> kept
    assert cp.top("A", 5, t) == [("B", 0.75)]
    # 30 days later B's support is 0.75 < 1.0
    assert cp.top("A", 5, t + 30 * DAY) == []
    cp2 = CoPurchase(CoPurchaseConfig(min_support=0.0, min_confidence=0.3))
    for other in ("B", "B", "B", "C"):
        cp2.observe_order(["A", other], T0)
    # confidences at T0: B 3/4 = 0.75, C 1/4 = 0.25 < 0.3
    assert cp2.top("A", 5, T0) == [("B", 0.75)]


def test_out_of_order_orders_give_the_same_weights() -> None:
    a = CoPurchase()
    b = CoPurchase()
    a.observe_order(["X", "Y"], T0)
    a.observe_order(["X", "Y"], T0 + 10 * DAY)
    b.observe_order(["X", "Y"], T0 + 10 * DAY)
    b.observe_order(["X", "Y"], T0)
    t = T0 + 40 * DAY
    assert a.pair_weight("X", "Y", t) == pytest.approx(b.pair_weight("X", "Y", t))
    # 2^-(40/30) + 2^-(30/30)
    assert a.pair_weight("X", "Y", t) == pytest.approx(2 ** (-40 / 30) + 0.5)


def test_memory_is_bounded() -> None:
    cp = CoPurchase(CoPurchaseConfig(max_pairs_per_product=2, max_products=3, min_support=0))
    cp.observe_order(["A", "B"], T0)
    cp.observe_order(["A", "B"], T0)
    cp.observe_order(["A", "C"], T0)
    cp.observe_order(["A", "D"], T0 + DAY)  # A has 2 partners: the weakest (C) goes
    assert set(cp.pairs["A"]) == {"B", "D"}
    assert len(cp.items) == 3  # D evicted the least ordered product (C)
    assert "C" not in cp.items
    restored = CoPurchase.from_dict(cp.to_dict(), cp.config)
    assert restored.top("A", 5, T0 + DAY) == cp.top("A", 5, T0 + DAY)


def test_popular_ranks_by_decayed_weight() -> None:
    cp = CoPurchase()
    cp.observe_order(["A"], T0)
    cp.observe_order(["A"], T0)
    cp.observe_order(["B"], T0 + 10 * DAY)
    t = T0 + 30 * DAY
    # A: 2 x 0.5 = 1.0; B: 2^(-20/30) = 0.629961; Z never ordered
    assert cp.popular(["A", "B", "Z"], 5, t) == [("A", 1.0), ("B", 0.629961)]


def test_repeat_share_counts_repurchases_with_decay() -> None:
    cp = CoPurchase(config=CoPurchaseConfig(half_life_days=10))
    t0 = 1_700_000_000.0
    cp.observe_order(["a", "b"], t0)
    cp.observe_order(["a"], t0, repeats=["a", "zz"])  # zz is not in the order: ignored
    cp.observe_order(["a"], t0 + 10 * DAY, repeats=["a"])
    # at t0 + 10 days: orders of a = 2 x 0.5 + 1 = 2, repurchases = 0.5 + 1 = 1.5
    assert cp.repeat_share("a", t0 + 10 * DAY) == pytest.approx(0.75)
    assert cp.repeat_share("b", t0) == 0.0
    assert cp.repeat_share("zz", t0) == 0.0
    assert "zz" not in cp.repeats
    back = CoPurchase.from_dict(cp.to_dict(), cp.config)
    assert back.repeat_share("a", t0 + 10 * DAY) == pytest.approx(0.75)


def test_large_orders_count_every_product_but_pair_the_first_ones() -> None:
    cp = CoPurchase(config=CoPurchaseConfig(max_order_products=2))
    cp.observe_order(["a", "b", "c"], 0.0)
    assert cp.weight("c", 0.0) == pytest.approx(1.0)
    assert cp.pair_weight("a", "b", 0.0) == pytest.approx(1.0)
    assert cp.pair_weight("a", "c", 0.0) == 0.0
