"""Hit rate @k and its baselines on tiny hand-made order sequences (expected values by hand)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from recommend import evaluation as ev

DAY = 86400.0


def order(
    order_id: str, customer: str | None, day: float, *products: str, action: str = "placed"
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "type": "order",
        "action": action,
        "order_id": order_id,
        "t": day * DAY,
        "lines": [{"product_id": p, "quantity": 1, "unit_price": 1.0} for p in products],
    }
    if customer is not None:
        o["customer_id"] = customer
    return o


def baskets(*orders: dict[str, Any]) -> list[ev.Basket]:
    def time_of(o: Mapping[str, Any]) -> float:
        return float(o["t"])

    return ev.baskets_from_orders(orders, time_of=time_of)


def test_baskets_merge_same_time_drop_cancellations_fees_and_empty() -> None:
    got = baskets(
        order("1", "A", 1, "x", "POST"),
        order("2", "A", 1, "y", "x"),  # same customer, same time: one basket
        order("C3", "A", 2, "x", action="cancelled"),
        order("4", "A", 3, "POST", "M"),  # only fees: nothing left
        order("5", None, 2, "z"),  # guest: its own basket
        order("6", "B", 0.5, "w"),
    )
    assert [(b.customer_id, b.order_ids, b.products) for b in got] == [
        ("B", ("6",), ("w",)),
        ("A", ("1", "2"), ("x", "y")),
        (None, ("5",), ("z",)),
    ]


def test_score_counts_missing_recommendation_as_uncovered() -> None:
    seq = baskets(
        order("1", "A", 1, "a"),
        order("2", "B", 2, "b"),
        order("3", "A", 3, "c", "d"),
        order("4", "B", 4, "e"),
        order("5", "A", 5, "f"),  # last of A: not evaluated
    )
    # indexes: 0 A@1, 1 B@2, 2 A@3, 3 B@4, 4 A@5 -> eligible 0, 1, 2
    result = ev.score(seq, {0: ["x", "d"], 2: ["y"]})
    assert (result.eligible, result.covered, result.hits) == (3, 2, 1)
    assert result.hit_rate == pytest.approx(0.5)
    assert result.hit_rate_all == pytest.approx(1 / 3)
    assert result.coverage == pytest.approx(2 / 3)


def test_score_only_looks_at_the_first_k_items() -> None:
    seq = baskets(order("1", "A", 1, "a"), order("2", "A", 2, "f"))
    assert ev.score(seq, {0: ["b", "c", "d", "e", "g", "f"]}, k=5).hits == 0
    assert ev.score(seq, {0: ["b", "c", "d", "e", "f"]}, k=5).hits == 1


def test_own_history_by_frequency() -> None:
    seq = baskets(
        order("1", "A", 1, "x", "y"),
        order("2", "B", 1, "x"),
        order("3", "A", 2, "z"),
        order("4", "B", 2, "w"),
        order("5", "A", 3, "x"),
    )
    # A@1 recommends {x, y}, next {z}: miss. B@1 {x}, next {w}: miss.
    # A@2 recommends {x, y, z}, next {x}: hit. -> 1 hit out of 3
    result = ev.run(seq, ev.OwnHistory())
    assert (result.eligible, result.covered, result.hits) == (3, 3, 1)


def test_own_history_frequency_beats_recency_at_k1() -> None:
    seq = baskets(
        order("1", "A", 1, "x"),
        order("2", "A", 2, "x"),
        order("3", "A", 3, "y"),
        order("4", "A", 4, "x"),
    )
    # at A@3 (k=1): frequency says x (2 baskets) -> next {x} hit; recency says y -> miss.
    # A@1: x -> next {x} hit for both. A@2: x (freq 2 / most recent) -> next {y}: miss.
    assert ev.run(seq, ev.OwnHistory(), k=1).hits == 2
    assert ev.run(seq, ev.OwnHistory(by="recency"), k=1).hits == 1


def test_global_popularity_excludes_just_bought_when_asked() -> None:
    seq = baskets(
        order("1", None, 1, "p", "q"),
        order("2", None, 2, "p"),
        order("3", "A", 3, "p"),
        order("4", "A", 4, "q"),
    )
    # after A@3 counts are p=3, q=1: with p excluded the top-1 is q (hit), else p (miss)
    assert ev.run(seq, ev.GlobalPopularity(), k=1).hits == 1
    assert ev.run(seq, ev.GlobalPopularity(exclude_just_bought=False), k=1).hits == 0


def test_copurchase_counts_pairs_of_earlier_baskets() -> None:
    seq = baskets(
        order("1", None, 1, "a", "b"),
        order("2", None, 2, "a", "b"),
        order("3", None, 3, "a", "c"),
        order("4", "A", 4, "a", "n"),  # n is new: its pair with a is this basket's own
        order("5", "A", 5, "c"),
    )
    # scores after A@4: b=2, c=1 (n and a excluded) -> top-1 b misses {c}, top-2 hits
    assert ev.run(seq, ev.CoPurchaseCounts(), k=1).hits == 0
    assert ev.run(seq, ev.CoPurchaseCounts(), k=2).hits == 1


def test_copurchase_without_partners_is_uncovered() -> None:
    seq = baskets(order("1", "A", 1, "a"), order("2", "A", 2, "a"))
    result = ev.run(seq, ev.CoPurchaseCounts())
    assert (result.eligible, result.covered, result.hits) == (1, 0, 0)
