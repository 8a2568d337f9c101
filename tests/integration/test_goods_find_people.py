"""Goods find people through the real broker: the formula and the three-strollers stories."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.applied import wait_applied
from harness.process import produce, read_topics
from streams import topics

pytestmark = pytest.mark.broker


def item(pid: str, path: tuple[str, ...], price: float, stock: int, **attrs: Any) -> dict:
    return {
        "type": "catalog_item",
        "event_id": f"cat-{pid}",
        "occurred_at": "2026-11-02T08:00:00+08:00",
        "product_id": pid,
        "title": pid,
        "category_path": list(path),
        "price": price,
        "stock": stock,
        "attributes": attrs,
    }


CATALOG = [
    item("formula-s1", ("baby", "formula"), 32.0, 50, stage=1),
    item("formula-s2", ("baby", "formula"), 34.0, 50, stage=2),
    item("diapers-s", ("baby", "diapers"), 19.0, 80, size="S"),
    item("diapers-m", ("baby", "diapers"), 19.0, 80, size="M"),
    item("wipes-80", ("baby", "wipes"), 6.5, 900),
    item("stroller-aurora", ("baby", "strollers"), 5200.0, 5),
    item("stroller-summit", ("baby", "strollers"), 4300.0, 5),
    item("stroller-velvet", ("baby", "strollers"), 3800.0, 5),
    item("stroller-city", ("baby", "strollers"), 1590.0, 0),  # mid-priced, out of stock
    item("stroller-breeze", ("baby", "strollers"), 1290.0, 7),  # mid-priced, in stock
    item("stroller-pocket", ("baby", "strollers"), 399.0, 20),
]


def view(eid: str, cust: str, at: str, pid: str, price: float) -> dict:
    return {
        "type": "page_view",
        "event_id": eid,
        "occurred_at": at,
        "customer_id": cust,
        "session_id": f"s-{cust}",
        "product_id": pid,
        "category": "baby/strollers",
        "price": price,
    }


def test_formula_brings_diapers_and_wipes_and_strollers_bring_the_mid_priced_one(
    deployment: Any,
) -> None:
    d = deployment(partitions=2, clock="event", experiment_holdout=0.0)
    d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    story = [
        {
            "type": "order",
            "event_id": "m1",
            "occurred_at": "2026-11-02T10:24:00+08:00",
            "customer_id": "mother",
            "store_id": "baby-home-1",
            "action": "placed",
            "order_id": "om1",
            "lines": [
                {
                    "product_id": "formula-s1",
                    "quantity": 2,
                    "unit_price": 32.0,
                    "category": "baby/formula",
                }
            ],
            "total": 64.0,
        },
        view("f1", "father", "2026-11-03T20:00:00+08:00", "stroller-aurora", 5200.0),
        view("f2", "father", "2026-11-03T20:05:00+08:00", "stroller-summit", 4300.0),
        view("f3", "father", "2026-11-03T20:10:00+08:00", "stroller-velvet", 3800.0),
        {  # the mother comes back two days later for the suggested diapers: a conversion
            "type": "order",
            "event_id": "m2",
            "occurred_at": "2026-11-04T09:00:00+08:00",
            "customer_id": "mother",
            "action": "placed",
            "order_id": "om2",
            "lines": [{"product_id": "diapers-s", "quantity": 1, "unit_price": 19.0}],
            "total": 19.0,
        },
    ]
    last = asyncio.run(produce(d.bootstrap, d.names, story, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))
    # the father's session ends 30 min after his last view: advance event time past it
    from harness.process import _drain

    asyncio.run(_drain(d.bootstrap, d.settings, d.names, last, 2, 60))
    records = asyncio.run(
        read_topics(
            d.bootstrap, [d.names(topics.GOODS_FIND_PEOPLE), d.names(topics.DISCOUNT_TRIGGERS)]
        )
    )
    mother = [r for r in records if r["customer_key"] == "c:mother"]
    complements = [
        r
        for r in mother
        if r["type"] == "recommendation" and r["strategy"] == "complements_after_purchase"
    ]
    assert len(complements) == 1
    assert {i["product_id"] for i in complements[0]["items"]} == {"diapers-s", "wipes-80"}
    assert complements[0]["store"]["id"] == "baby-home-1"  # nearest store and guide attached
    assert complements[0]["store"]["guide"]["name"]

    father = [r for r in records if r["customer_key"] == "c:father"]
    downsell = [r for r in father if r["strategy"] == "downsell_after_browse"]
    assert len(downsell) == 1
    assert downsell[0]["items"][0]["product_id"] == "stroller-breeze"  # the mid-priced in stock
    assert "stroller-city" not in {i["product_id"] for i in downsell[0]["items"]}  # out of stock
    discounts = [r for r in father if r["type"] == "discount_trigger"]
    assert len(discounts) == 1
    assert discounts[0]["product_id"] in {"stroller-aurora", "stroller-summit", "stroller-velvet"}
    assert 0 < discounts[0]["percent"] <= 30

    [converted] = [r for r in records if r["type"] == "recommendation_converted"]
    assert (converted["order_id"], converted["decision_id"]) == ("om2", complements[0]["id"])
    assert converted["arm"] == "treatment" and converted["order_value"] == 19.0
    assert converted["seconds_to_convert"] == (2 * 86400 - 84 * 60)  # 10:24 -> 09:00 two days on
