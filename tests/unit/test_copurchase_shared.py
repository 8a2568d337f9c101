"""Co-purchase counts shared by workers: one `copurchase_order` record per placed order, counted
once per order key whichever worker reads it (recommend.copurchase, recommend.triggers)."""

from __future__ import annotations

import orjson
import pytest

from journey import customer as core
from recommend.copurchase import CoPurchase, CoPurchaseConfig, order_key, shared_order
from recommend.rules import load_rules
from recommend.triggers import Recommender, react
from schemas.contracts import validator_for
from schemas.records import Order
from tests.unit.scenario_catalog import order_lines, scenario_catalog

T0 = 1_793_610_000.0  # 2026-11-02T09:00:00Z


def placed(key: str, order_id: str, t: float, *pids: str) -> Order:
    lines = order_lines(*pids)
    return Order(
        event_id=f"{key}-{order_id}",
        occurred_at=t,
        customer_id=key[2:],
        action="placed",
        order_id=order_id,
        lines=lines,
        total=sum(line.unit_price for line in lines),
    )


def test_an_order_is_counted_once_by_its_key() -> None:
    cp = CoPurchase(CoPurchaseConfig(min_support=0.0, min_confidence=0.0))
    assert cp.observe_once("c:a|o-1", ["A", "B"], T0) is True
    assert cp.observe_once("c:a|o-1", ["A", "B"], T0) is False  # a copy
    assert cp.observe_once("c:b|o-1", ["A", "C"], T0) is True  # same order id, other customer
    assert cp.weight("A", T0) == pytest.approx(2.0)
    assert cp.pair_weight("A", "B", T0) == pytest.approx(1.0)


def test_the_oldest_order_keys_are_forgotten_past_the_bound() -> None:
    cp = CoPurchase(CoPurchaseConfig(max_seen_orders=2))
    for i in range(3):
        assert cp.observe_once(f"k{i}", ["A"], T0)
    assert list(cp.seen) == ["k1", "k2"]
    assert cp.observe_once("k2", ["A"], T0) is False
    assert cp.observe_once("k0", ["A"], T0) is True  # forgotten: counted again
    assert cp.weight("A", T0) == pytest.approx(4.0)


def test_a_placed_order_writes_its_record_and_every_reader_counts_it_once() -> None:
    rules = load_rules()
    here = Recommender(rules=rules, catalog=scenario_catalog(T0), holdout=0.0)
    there = Recommender(rules=rules, catalog=scenario_catalog(T0), holdout=0.0)
    key = "c:c-mother-1"
    state = None
    records = []
    for n, (t, pids) in enumerate(
        [(T0, ("formula-s1", "diapers-s")), (T0 + 86400, ("formula-s1", "wipes-80"))]
    ):
        event = placed(key, f"o-{n}", t, *pids)
        state, outputs = core.apply(state, event, t, key=key)
        out = react(state, outputs, here, t, key=key, event=event)
        records += [r for r in out if r["type"] == "copurchase_order"]
    assert [r["products"] for r in records] == [
        ["formula-s1", "diapers-s"],
        ["formula-s1", "wipes-80"],
    ]
    assert [r["repeats"] for r in records] == [[], ["formula-s1"]]  # bought the day before
    assert records[1]["occurred_at"] == "2026-11-03T09:00:00.000Z"
    assert records[1]["customer_key"] == key and records[1]["order_id"] == "o-1"
    for r in records:
        validator_for("copurchase_order", "1-0-0")(r)
    # the owning worker counted both at once; reading its own records back changes nothing
    before = here.copurchase.to_dict()
    for r in records:
        order = shared_order(orjson.loads(orjson.dumps(r)))
        assert order is not None
        assert not here.copurchase.observe_once(
            order.key, order.products, order.at, repeats=order.repeats
        )
    assert here.copurchase.to_dict() == before
    # another worker counts them from the records, twice delivered, to the same weights
    for r in records + records:
        order = shared_order(orjson.loads(orjson.dumps(r)))
        assert order is not None
        there.copurchase.observe_once(order.key, order.products, order.at, repeats=order.repeats)
    t = T0 + 2 * 86400
    for a, b in (("formula-s1", "diapers-s"), ("formula-s1", "wipes-80")):
        assert there.copurchase.pair_weight(a, b, t) == pytest.approx(
            here.copurchase.pair_weight(a, b, t)
        )
    assert there.copurchase.repeat_share("formula-s1", t) == pytest.approx(
        here.copurchase.repeat_share("formula-s1", t)
    )
    assert there.copurchase.repeat_share("formula-s1", t) > 0


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"type": "decision"},
        {"type": "copurchase_order", "customer_key": "c:a", "order_id": "o", "products": []},
        {
            "type": "copurchase_order",
            "customer_key": "c:a",
            "order_id": "o",
            "products": ["A"],
            "repeats": [],
            "occurred_at": "yesterday",
        },
        {
            "type": "copurchase_order",
            "customer_key": "c:a",
            "order_id": "o",
            "products": ["A"],
            "repeats": [],
            "occurred_at": "2026-11-03T09:00:00",  # no zone
        },
    ],
)
def test_what_is_not_a_copurchase_order_is_refused(record: dict) -> None:
    assert shared_order(record) is None


def test_the_key_is_customer_and_order() -> None:
    assert order_key("c:a", "o-1") == "c:a|o-1"
    good = {
        "type": "copurchase_order",
        "customer_key": "c:a",
        "order_id": "o-1",
        "products": ["A", "B"],
        "repeats": ["A"],
        "occurred_at": "2026-11-03T09:00:00.250Z",
    }
    order = shared_order(good)
    assert order is not None
    assert (order.key, order.products, order.repeats) == ("c:a|o-1", ("A", "B"), ("A",))
    assert order.at == pytest.approx(1_793_696_400.25)
