"""`journeystream demo --no-wait` end to end: the summary tells what the scenario's inputs imply.

Every expectation is derived from `replay.scenario.generate(seed=7)` (the demo's input) and the
default settings, not copied from a demo run.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Any

import pytest

from replay.adapters import sort_key
from replay.scenario import generate
from streams.settings import Settings

pytestmark = pytest.mark.broker
Event = dict[str, Any]


def who(event: Event) -> str:
    return str(event.get("customer_id") or event.get("anonymous_id"))


def section(output: str, title: str) -> list[list[str]]:
    """The table rows under the heading starting with `title`, split into cells."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    assert set(lines[start + 1]) == {"-"}, f"no heading underline after {title!r}"
    rows: list[list[str]] = []
    for line in lines[start + 3 :]:  # heading, underline, column names
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, float]:
    """Run the demo once in-process (in a scratch directory: it wipes ./var/demo)."""
    from harness.demo import run_demo

    mp = pytest.MonkeyPatch()
    capture = _Capture()
    mp.chdir(tmp_path_factory.mktemp("demo"))
    mp.setattr("sys.stdout", capture)
    started = time.monotonic()
    try:
        code = run_demo(keep_running=False)
    finally:
        mp.undo()
    return code, capture.text(), time.monotonic() - started


class _Capture:
    """A stdout stand-in (module-scoped fixtures cannot use capsys)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


@pytest.fixture(scope="module")
def inputs() -> dict[str, list[Event]]:
    """The scenario's customer events by customer (customer id, else anonymous id)."""
    groups: dict[str, list[Event]] = defaultdict(list)
    for event in generate(seed=7):
        if event["type"] != "catalog_item":
            groups[who(event)].append(event)
    return groups


def test_demo_runs_and_is_quick(demo_output: tuple[int, str, float]) -> None:
    code, output, seconds = demo_output
    assert code == 0, output
    assert seconds < 60
    assert "/customers/c-father-1" in output and "/metrics" in output
    assert "Dead letters: none" in output


def test_browse_abandonment_of_premium_stroller_browser(
    demo_output: tuple[int, str, float], inputs: dict[str, list[Event]]
) -> None:
    catalog = {e["product_id"]: e for e in generate(seed=7) if e["type"] == "catalog_item"}
    minimum = Settings().browse_min_products
    # customers who only viewed products, at least `minimum` distinct ones of one category
    browsers = {}
    for customer, events in inputs.items():
        if any(e["type"] != "page_view" for e in events):
            continue
        by_category: dict[str, set[str]] = defaultdict(set)
        for e in events:
            by_category[e["category"]].add(e["product_id"])
        for category, products in by_category.items():
            if len(products) >= minimum:
                premium = sum(
                    1 for p in products if catalog[p]["attributes"].get("tier") == "premium"
                )
                browsers[customer] = (category, len(products), premium)
    assert browsers == {"c-father-1": ("baby/strollers", 3, 3)}  # the father, as scripted

    rows = section(demo_output[1], "Browse abandonments")
    found = {row[0]: (row[1], int(row[2]), int(row[3])) for row in rows}
    assert found == browsers


def test_mothers_order_is_reported(
    demo_output: tuple[int, str, float], inputs: dict[str, list[Event]]
) -> None:
    orders = [e for e in inputs["c-mother-1"] if e["type"] == "order"]
    assert len(orders) == 1
    order = orders[0]
    output = demo_output[1]
    paths = {row[0] for row in section(output, "Orders by purchase path")}
    summary = output[output.index("Orders by purchase path") :]  # not the story above it
    line = next(line for line in summary.splitlines() if order["order_id"] in line)
    assert "c-mother-1" in line
    assert f"{order['total']:,.2f}" in line
    # she viewed formula three times and added it (seeding signals) and bought in that same
    # first visit: a new visitor buying directly, by the merchant's definitions
    assert "touch→purchase" in line
    assert paths <= {"touch→purchase", "touch→seed→purchase", "repurchase"}


def test_abandoned_and_recovered_carts(
    demo_output: tuple[int, str, float], inputs: dict[str, list[Event]]
) -> None:
    delay = Settings().cart_abandon_delay_s
    abandoned, recovered, settled = set(), set(), set()
    for customer, events in inputs.items():
        carts = [sort_key(e) for e in events if e["type"] == "cart" and e["action"] == "add"]
        if not carts:
            continue
        last_cart = max(carts)
        later_orders = [
            sort_key(e) for e in events if e["type"] == "order" and sort_key(e) >= last_cart
        ]
        if not later_orders:
            abandoned.add(customer)
        elif min(later_orders) - last_cart > delay:
            abandoned.add(customer)
            recovered.add(customer)
        else:
            settled.add(customer)
    assert abandoned - recovered and recovered and "c-mother-1" in settled

    output = demo_output[1]
    carts = {row[0] for row in section(output, "Abandoned carts")}
    assert carts == abandoned  # and no cart ordered in time (the mother's) is reported
    back = {row[0]: row[1] for row in section(output, "Recoveries")}
    assert set(back) == recovered
    assert set(back.values()) == {"cart"}


def test_every_decision_is_shown_with_its_arm_and_the_father_gets_the_down_sell(
    demo_output: tuple[int, str, float],
) -> None:
    rows = section(demo_output[1], "Recommendation and discount decisions")
    by_strategy = {(row[0], row[1]): row for row in rows}
    father = by_strategy[("c-father-1", "downsell_after_browse")]
    arm, delivery, products = father[2], father[3], father[4]
    assert (arm, delivery) in {("holdout", "held out"), ("treatment", "sent")}
    # the mid-priced strollers in stock, whichever arm the hash put him in (scenario catalog)
    assert products.split(", ")[0] == "stroller-city"
    held = [row for row in rows if row[3] == "held out"]
    assert all(row[2] == "holdout" for row in held)
    assert all(row[3] == "sent" for row in rows if row[2] != "holdout")
