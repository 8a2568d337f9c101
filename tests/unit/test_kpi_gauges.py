"""The journeystream_kpi_* gauges: the current periods' operations view as samples, by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams import kpis, metrics
from streams.settings import Settings, SettingsError


def at(month: int, day: int, hour: int) -> float:
    """Epoch of 2026-<month>-<day> hour:00 UTC (2026-11-02 is a Monday)."""
    return datetime(2026, month, day, hour, tzinfo=UTC).timestamp()


def entry(visitor: str, returns: int = 0, orders: int = 0, revenue: float = 0.0) -> list[Any]:
    paths = [0, 0, 0]
    paths[{"new_visitor": 0, "returning_visitor": 1}.get(visitor, 2)] = orders
    return [visitor, returns, orders, revenue, *paths]


def stored() -> list[tuple[bytes, bytes]]:
    """Three customers' states as the table stores them (with a batch's outbox)."""
    states = {
        # a: new on Monday, back on Wednesday (returning) and buys for 30; its cart (Monday) was
        # recovered, its browse abandonment (Wednesday) not
        "c:a": (
            {
                "2026-11-02": entry("new_visitor"),
                "2026-11-04": entry("returning_visitor", 1, 1, 30),
            },
            [["a1", "cart", at(11, 2, 10), True], ["a2", "browse", at(11, 4, 11), False]],
        ),
        # b: bought on Friday of the week before; two more orders on Wednesday, a cart recovered
        "c:b": (
            {
                "2026-10-30": entry("new_visitor", 0, 1, 50),
                "2026-11-04": entry("customer", 0, 2, 80),
            },
            [["b1", "cart", at(11, 4, 9), True]],
        ),
        # c: anonymous, Tuesday only
        "a:c": ({"2026-11-03": entry("new_visitor")}, []),
    }
    return [
        (
            key.encode(),
            orjson.dumps(
                {
                    "journey": {"activity": days},
                    "abandonment": {"fired": fired},
                    "outbox": [],
                }
            ),
        )
        for key, (days, fired) in states.items()
    ]


GROUPS = ("new_visitor", "returning_visitor", "customer", "lapsed", "all")


def zero_day() -> dict[str, dict[tuple[str, ...], float]]:
    """Every sample of the `day` period at 0."""
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for name in ("visitors", "buyers", "orders", "revenue"):
        out[name] = {("day", g): 0 for g in GROUPS}
    for name in ("abandonments", "abandonments_recovered"):
        out[name] = {("day", g, k): 0 for g in GROUPS for k in ("cart", "browse")}
    out["orders_by_path"] = {
        ("day", p): 0 for p in ("touch→purchase", "touch→seed→purchase", "repurchase")
    }
    for name in (
        "identified_visitors",
        "never_purchased_return_visits",
        "recall_eligible",
        "recalled",
        "recalled_buyers",
        "repeat_buyers",
    ):
        out[name] = {("day",): 0}
    return out


def of(samples: dict[str, dict[tuple[str, ...], float]], period: str) -> dict[str, Any]:
    """One period's samples, only the ones that are not 0."""
    return {
        name: {labels: v for labels, v in values.items() if labels[0] == period and v}
        for name, values in samples.items()
    }


def test_the_current_day_as_samples() -> None:
    samples = kpis.gauge_samples(kpis.current(stored(), "UTC", at(11, 4, 12)))
    assert set(samples) == set(metrics.KPI_GAUGES)
    assert sum(len(v) for v in samples.values()) == 147  # 3 periods, every label combination
    # Wednesday: a (returning visitor) and b (customer) are the visitors
    assert of(samples, "day") == {
        "visitors": {("day", "returning_visitor"): 1, ("day", "customer"): 1, ("day", "all"): 2},
        "buyers": {("day", "returning_visitor"): 1, ("day", "customer"): 1, ("day", "all"): 2},
        "orders": {("day", "returning_visitor"): 1, ("day", "customer"): 2, ("day", "all"): 3},
        "revenue": {("day", "returning_visitor"): 30, ("day", "customer"): 80, ("day", "all"): 110},
        "orders_by_path": {("day", "touch→seed→purchase"): 1, ("day", "repurchase"): 2},
        "identified_visitors": {("day",): 2},
        "never_purchased_return_visits": {("day",): 1},
        # active before Wednesday without an order by then: a and c; a came back (and bought)
        "recall_eligible": {("day",): 2},
        "recalled": {("day",): 1},
        "recalled_buyers": {("day",): 1},
        "repeat_buyers": {("day",): 1},
        "abandonments": {
            ("day", "returning_visitor", "browse"): 1,
            ("day", "customer", "cart"): 1,
            ("day", "all", "browse"): 1,
            ("day", "all", "cart"): 1,
        },
        "abandonments_recovered": {("day", "customer", "cart"): 1, ("day", "all", "cart"): 1},
    }


def test_the_current_week_and_month() -> None:
    samples = kpis.gauge_samples(kpis.current(stored(), "UTC", at(11, 4, 12)))
    # the week of Monday 2 November: a and c are new visitors in it (their first activity in it)
    week = of(samples, "week")
    assert week["visitors"] == {
        ("week", "new_visitor"): 2,
        ("week", "customer"): 1,
        ("week", "all"): 3,
    }
    assert week["orders"] == {
        ("week", "new_visitor"): 1,
        ("week", "customer"): 2,
        ("week", "all"): 3,
    }
    assert week["abandonments"] == {
        ("week", "new_visitor", "cart"): 1,
        ("week", "new_visitor", "browse"): 1,
        ("week", "customer", "cart"): 1,
        ("week", "all", "cart"): 2,
        ("week", "all", "browse"): 1,
    }
    assert week["abandonments_recovered"] == {
        ("week", "new_visitor", "cart"): 1,
        ("week", "customer", "cart"): 1,
        ("week", "all", "cart"): 2,
    }
    assert week["recall_eligible"] == {}  # b bought the week before; a and c started in it
    assert week["repeat_buyers"] == {("week",): 1}
    month = of(samples, "month")
    assert {k: {lb[1:]: v for lb, v in s.items()} for k, s in month.items()} == {
        k: {lb[1:]: v for lb, v in s.items()} for k, s in week.items()
    }


def test_a_day_without_activity_is_all_zero() -> None:
    samples = kpis.gauge_samples(kpis.current(stored(), "UTC", at(11, 6, 12)))  # Friday
    assert {n: {lb: v for lb, v in s.items() if lb[0] == "day"} for n, s in samples.items()} == (
        zero_day()
    )
    assert samples["visitors"][("week", "all")] == 3  # the week goes on
    empty = kpis.gauge_samples(kpis.current([], "UTC", at(11, 6, 12)))
    assert all(v == 0 for values in empty.values() for v in values.values())


def test_the_store_time_zone_decides_the_current_day() -> None:
    # Wednesday 20:00 UTC is Thursday 04:00 in Shanghai: nothing recorded on that Thursday
    late = at(11, 4, 20)
    assert kpis.gauge_samples(kpis.current(stored(), "UTC", late))["visitors"][("day", "all")] == 2
    shanghai = kpis.gauge_samples(kpis.current(stored(), "Asia/Shanghai", late))
    assert shanghai["visitors"][("day", "all")] == 0


def test_every_gauge_has_its_period_label_first() -> None:
    samples = kpis.gauge_samples(kpis.current(stored(), "UTC", at(11, 4, 12)))
    for name, gauge in metrics.KPI_GAUGES.items():
        assert gauge._labelnames[0] == "period"
        assert {len(labels) for labels in samples[name]} == {len(gauge._labelnames)}
        gauge.labels(*next(iter(samples[name])))  # the label values fit the gauge


def test_the_interval_setting() -> None:
    assert Settings.from_env({}).kpi_gauges_interval_s == 60.0
    assert (
        Settings.from_env({"JOURNEYSTREAM_KPI_GAUGES_INTERVAL_S": "0"}).kpi_gauges_interval_s == 0
    )
    for bad, problem in (("0.5", "at least 1 second"), ("-1", "greater than or equal to 0")):
        with pytest.raises(SettingsError, match=problem):
            Settings.from_env({"JOURNEYSTREAM_KPI_GAUGES_INTERVAL_S": bad})


def test_the_gauges_are_the_running_views_current_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams import gauges
    from streams.running import Running

    rows = [*stored(), *((f"c:x{i}".encode(), v) for i, (_, v) in enumerate(stored()))]
    running = Running("UTC")
    running.build(0, rows[:3])
    running.build(1, rows[3:])
    found = running.current("2026-11-04")
    assert found == kpis.current(rows, "UTC", at(11, 4, 12))
    assert found["day"] is not None and found["day"]["all"]["visitors"] == 4  # a and b, twice
    monkeypatch.setattr(gauges, "running", running)
    monkeypatch.setattr(gauges, "processing_now", lambda: at(11, 4, 12))
    asyncio.run(gauges.refresh())
    assert metrics.labelled(metrics.KPI_GAUGES["visitors"], "day", "all")._value.get() == 4
    assert metrics.labelled(metrics.KPI_GAUGES["revenue"], "week", "all")._value.get() == 220
