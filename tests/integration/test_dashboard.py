"""The customer-operations page through a real worker, in a real headless Chromium.

Test and learn: forty mothers buy stage-1 formula; the complements strategy decides a
recommendation for each. Those in the treatment arm come back and buy the suggested diapers,
those held out do not. The experiment view, /metrics and the page must all show the same uplift,
and the page must update live without a reload.

Over time: the demo's five days (`make demo`'s events, sent as it sends them) must give the
page's trend chart points for every day and its path split the orders of `/kpis`, summed here
from the API's JSON; the chart screenshots must have coloured pixels where the data is drawn;
the range picker narrows the days; the lookup box shows a known customer's profile.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.applied import wait_applied
from harness.demo import slices
from harness.process import produce
from recommend.experiments import HOLDOUT, arm_for
from replay.scenario import generate
from tests.integration.png_pixels import coloured, rgb_rows
from tests.integration.test_goods_find_people import CATALOG

pytestmark = pytest.mark.broker
TOKEN = "dash-token"
STRATEGY = "complements_after_purchase"
HOLDOUT_SHARE = 0.5
MOTHERS = [f"mom-{i}" for i in range(40)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DASHBOARD = Path(__file__).resolve().parents[2] / "streams" / "dashboard"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def order(eid: str, cust: str, at: str, pid: str, price: float) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": eid,
        "occurred_at": at,
        "customer_id": cust,
        "action": "placed",
        "order_id": f"o-{eid}",
        "lines": [{"product_id": pid, "quantity": 1, "unit_price": price}],
        "total": price,
    }


def get(url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus exposition, by name and exact labels."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if m and m.group(1) == name:
            got = ",".join(sorted(m.group(2).split(",")))
            if got == want:
                return float(m.group(3))
    raise AssertionError(f"no sample {name}{{{want}}}")


def test_converting_strategy_shows_uplift_on_api_metrics_and_page(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN, experiment_holdout=HOLDOUT_SHARE)
    worker = d.start_worker()
    last = asyncio.run(produce(d.bootstrap, d.names, CATALOG))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))

    arms = {m: arm_for(f"c:{m}", STRATEGY, HOLDOUT_SHARE) for m in MOTHERS}
    treated = [m for m in MOTHERS if arms[m] != HOLDOUT]
    held = [m for m in MOTHERS if arms[m] == HOLDOUT]
    assert len(treated) >= 10 and len(held) >= 10  # both arms populated by the hash
    events = [order(f"f-{m}", m, "2026-11-02T10:00:00+08:00", "formula-s1", 32.0) for m in MOTHERS]
    # treated mothers come back two days later for the suggested diapers; held-out ones do not
    events += [order(f"d-{m}", m, "2026-11-04T10:00:00+08:00", "diapers-s", 19.0) for m in treated]
    last = asyncio.run(produce(d.bootstrap, d.names, events, one_topic=True))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))

    # the API: every mother decided once, treated ones converted, none of the holdout
    status, body = get(worker.base_url + "/experiments")
    assert status == 200
    report = orjson.loads(body)["strategies"][STRATEGY]
    assert report["treatment"]["decided"] == len(treated)
    assert report["treatment"]["converted"] == len(treated)
    assert report["treatment"]["revenue"] == pytest.approx(19.0 * len(treated))
    assert report[HOLDOUT]["decided"] == len(held)
    assert report[HOLDOUT]["converted"] == 0
    uplift = report["treatment"]["uplift"]
    assert uplift["absolute"] == pytest.approx(1.0)  # 100% converted minus 0%
    assert 0.5 < uplift["ci_low"] < 1.0 and uplift["significant"] is True
    assert get(worker.base_url + "/experiments", None)[0] == 401

    # /metrics: the counts and the uplift gauge
    status, body = get(worker.base_url + "/metrics")
    text = body.decode()
    assert metric(text, "journeystream_conversions_total", strategy=STRATEGY, arm="treatment") == (
        len(treated)
    )
    decided_held = metric(
        text, "journeystream_recommendations_total", strategy=STRATEGY, arm=HOLDOUT
    )
    assert decided_held == len(held)
    gauge = "journeystream_conversion_uplift_ratio"
    estimate = metric(text, gauge, strategy=STRATEGY, arm="treatment", bound="estimate")
    assert estimate == pytest.approx(1.0)
    low = metric(text, gauge, strategy=STRATEGY, arm="treatment", bound="low")
    assert low == pytest.approx(uplift["ci_low"])

    # the page is static HTML served without the token; the views it polls need the header,
    # and a ?token= query parameter does not open them
    status, page_html = get(worker.base_url + "/dashboard", None)
    assert status == 200 and page_html.decode() == (DASHBOARD / "index.html").read_text()
    assert get(worker.base_url + f"/segments?token={TOKEN}", None)[0] == 401
    assert get(worker.base_url + f"/experiments?token={TOKEN}", None)[0] == 401
    render_and_compare(worker.base_url, d)


def produce_and_wait(d: Any, events: list[dict[str, Any]]) -> None:
    """Produce events and wait until the worker committed them."""
    last = asyncio.run(produce(d.bootstrap, d.names, events))
    asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 30))


def outside_playwright_loop(fn: Any, *args: Any) -> None:
    """Run `fn` in a thread of its own (Playwright's sync API owns this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()


def chromium() -> str:
    """Debian's chromium (playwright drives it; its own browser download is not used)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and not os.environ.get("CI"):  # CI has root: `make browser` installed it there
        pytest.skip(
            "chromium not found: install Debian's chromium package (`make browser`, as root) "
            "to run the dashboard test"
        )
    assert found, "Debian's chromium is needed (make test installs it: `make browser`)"
    return found


def render_and_compare(base_url: str, d: Any) -> None:
    """Open the page in headless Chromium; its numbers must equal the API's, and update live."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            sent: list[tuple[str, str | None]] = []  # (url, Authorization) of the page's requests
            page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
            # a token in the URL is ignored: the page asks for it
            page.goto(f"{base_url}/dashboard?token={TOKEN}&refresh=500")
            page.wait_for_selector("#login", state="visible")
            assert page.text_content("#refreshes") == "0"
            # a wrong token is refused and asked for again
            page.fill("#token", "not-the-token")
            page.click("#login button")
            page.wait_for_function(
                "document.getElementById('login-message').textContent.includes('refused')"
            )
            page.wait_for_selector("#login", state="visible")
            assert page.text_content("#refreshes") == "0"
            # the right one, entered once, opens the views; it is kept in memory only
            page.fill("#token", TOKEN)
            page.click("#login button")
            page.wait_for_function("Number(document.getElementById('refreshes').textContent) > 1")
            assert page.is_hidden("#login") and page.is_hidden("#error")
            stored = page.evaluate(
                "[document.cookie, localStorage.length, sessionStorage.length, location.hash]"
            )
            assert stored == ["", 0, 0, ""]
            polled = [
                (url, auth) for url, auth in sent if url.endswith(("/segments", "/experiments"))
            ]
            assert polled[-1][1] == f"Bearer {TOKEN}"
            assert not any("token" in url for url, _ in polled)

            report = orjson.loads(get(base_url + "/experiments")[1])["strategies"]
            for strategy, arms in report.items():
                for arm, r in arms.items():
                    cell = f"{strategy}-{arm}"
                    assert page.text_content(f"#decided-{cell}") == str(r["decided"])
                    assert page.text_content(f"#converted-{cell}") == str(r["converted"])
                    shown = page.text_content(f"#rate-{cell}") or ""
                    assert shown == f"{100 * r['conversion_rate']:.1f}%"
            uplift = report[STRATEGY]["treatment"]["uplift"]
            shown = page.text_content(f"#uplift-{STRATEGY}-treatment") or ""
            expected = (
                f"{100 * uplift['absolute']:.1f}% "
                f"({100 * uplift['ci_low']:.1f}% … {100 * uplift['ci_high']:.1f}%)"
            )
            assert shown == expected

            view = orjson.loads(get(base_url + "/segments")[1])
            for segment in ("new_visitor", "returning_visitor", "customer"):
                shown = page.text_content(f"#segment-{segment}")
                assert shown == str(view["segments"].get(segment, 0))
            for path, n in view["orders_by_path"].items():
                assert page.text_content(f"#path-{path}") == str(n)
            assert page.text_content("[data-kpi=customers]") == str(view["customers"])
            assert page.text_content("[data-kpi=orders]") == str(view["orders"])
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # live: a new visitor arrives; the open page shows it without a reload
            before = view["segments"].get("new_visitor", 0)
            visit = {
                "type": "page_view",
                "event_id": "live-1",
                "occurred_at": "2026-11-05T09:00:00+08:00",
                "customer_id": "walk-in",
                "product_id": "wipes-80",
                "category": "baby/wipes",
                "price": 6.5,
            }
            outside_playwright_loop(produce_and_wait, d, [visit])
            page.wait_for_function(
                f"document.getElementById('segment-new_visitor').textContent === '{before + 1}'",
                timeout=15_000,
            )
        finally:
            browser.close()


# --------------------------------------------------------------------------- over time

PATHS = ("touch→purchase", "touch→seed→purchase", "repurchase")
GROUPS = ("new_visitor", "returning_visitor", "customer", "lapsed")
NOVEMBER = ("2026-11-01", "2026-11-30")  # the demo scenario's days: 2026-11-02 to 2026-11-06


def play_demo(d: Any) -> None:
    """`make demo`'s events, sent as it sends them: in runs the worker cannot reorder, each once
    the previous one is applied (`harness.demo.slices`)."""
    width = min(d.settings.session_gap_s, d.settings.cart_abandon_delay_s)
    for part in slices(generate(seed=7), width, d.names):
        last = asyncio.run(produce(d.bootstrap, d.names, part))
        asyncio.run(wait_applied(d.bootstrap, d.settings.app_id, last, 60))


def kpi_days(base_url: str, start: str, end: str) -> list[dict[str, Any]]:
    status, body = get(f"{base_url}/kpis?period=day&from={start}&to={end}")
    assert status == 200
    days: list[dict[str, Any]] = orjson.loads(body)["day"]
    return days


def coloured_share(png: bytes, top_fraction: float = 1.0) -> float:
    """The share of coloured pixels in the top `top_fraction` of a screenshot."""
    rows = rgb_rows(png)
    kept = rows[: max(1, int(len(rows) * top_fraction))]
    return sum(coloured(px) for row in kept for px in row) / sum(len(row) for row in kept)


def test_demo_days_chart_path_split_range_and_lookup(deployment: Any) -> None:
    d = deployment(partitions=2, clock="event", api_token=TOKEN, commit_interval_s=0.05)
    worker = d.start_worker()
    play_demo(d)

    # what the page must show, from the API's JSON alone
    days = kpi_days(worker.base_url, *NOVEMBER)
    orders = {day["period"]: day["all"]["orders"] for day in days}
    visitors = {(g, day["period"]): day["groups"][g]["visitors"] for day in days for g in GROUPS}
    paths = {path: sum(day["orders_by_path"][path] for day in days) for path in PATHS}
    assert len(days) == 5 and sum(1 for n in orders.values() if n > 0) >= 3, orders
    assert all(n > 0 for n in paths.values()), paths
    later = [day["period"] for day in kpi_days(worker.base_url, "2026-11-04", NOVEMBER[1])]
    assert 0 < len(later) < len(days)
    status, body = get(worker.base_url + "/customers/c-mother-1")
    assert status == 200
    mother = orjson.loads(body)

    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{worker.base_url}/dashboard?refresh=1000")
            page.wait_for_selector("#login", state="visible")
            page.fill("#token", TOKEN)
            page.click("#login button")
            page.wait_for_function("Number(document.getElementById('refreshes').textContent) > 0")

            # the range: November, per day
            page.fill("#range-from", NOVEMBER[0])
            page.fill("#range-to", NOVEMBER[1])
            page.select_option("#range-period", "day")
            with page.expect_request(lambda r: "/kpis?" in r.url) as asked:
                page.click("#range button")
            assert asked.value.url.endswith(f"/kpis?period=day&from={NOVEMBER[0]}&to={NOVEMBER[1]}")
            page.wait_for_function(
                f"document.querySelectorAll('#trend-chart circle').length === {5 * len(days)}"
            )
            points = page.eval_on_selector_all(
                "#trend-chart circle",
                "els => els.map(e => [e.parentNode.dataset.series, e.dataset.period,"
                " Number(e.dataset.value), Number(e.getAttribute('cy'))])",
            )
            shown_orders = {period: v for s, period, v, _ in points if s == "orders"}
            assert shown_orders == orders
            assert {(s, period): v for s, period, v, _ in points if s != "orders"} == visitors
            # drawn to scale: a day with more orders sits higher (smaller y)
            heights = {period: cy for s, period, _, cy in points if s == "orders"}
            most, least = max(orders, key=orders.__getitem__), min(orders, key=orders.__getitem__)
            assert orders[most] > orders[least] and heights[most] < heights[least]

            bars = page.eval_on_selector_all(
                "#path-chart rect",
                "els => els.map(e => [e.dataset.key, Number(e.dataset.value),"
                " e.getBoundingClientRect().width])",
            )
            assert {key: v for key, v, _ in bars} == paths
            assert all(width > 1 for _, _, width in bars)
            shown_total = page.get_attribute("[data-range=orders]", "data-value")
            assert shown_total == str(sum(orders.values()))
            share = page.get_attribute("[data-range=repurchase_share]", "data-value")
            repurchase_share = paths["repurchase"] / sum(orders.values())
            assert float(share or "nan") == pytest.approx(repurchase_share, abs=1e-4)
            latest = days[-1]
            assert page.text_content("#latest-period") == latest["period"]
            for key, want in (
                ("recall-rate", latest["recall"]["rate"]),
                ("recall-conversion", latest["recall"]["conversion_rate"]),
                ("repurchase-rate", latest["repurchase_rate"]["rate"]),
                ("conversion-new_visitor", latest["groups"]["new_visitor"]["conversion_rate"]),
                ("conversion-lapsed", latest["groups"]["lapsed"]["conversion_rate"]),
            ):
                shown = page.get_attribute(f"[data-latest={key}]", "data-value")
                assert (None if shown == "" else float(shown or "nan")) == want, key

            # plain words: no broker terms outside the technical details
            words = page.evaluate(
                "(() => { const c = document.body.cloneNode(true);"
                " c.querySelectorAll('.technical, script').forEach((e) => e.remove());"
                " return c.textContent.toLowerCase(); })()"
            )
            assert not re.search(r"partition|offset|\blag\b|kafka|topic|consumer", words)

            # screenshots: the page, and each chart, coloured where its data is drawn
            page.screenshot(path=str(ARTIFACTS / "dashboard-demo.png"), full_page=True)
            trend = page.locator("#trend-chart svg").screenshot(
                path=str(ARTIFACTS / "dashboard-demo-trend.png")
            )
            # zero values would lie on the bottom axis: look above it only
            assert coloured_share(trend, top_fraction=0.8) > 0.005
            split = page.locator("#path-chart svg").screenshot(
                path=str(ARTIFACTS / "dashboard-demo-paths.png")
            )
            assert coloured_share(split) > 0.05

            # a narrower range: fewer days
            page.fill("#range-from", "2026-11-04")
            page.click("#range button")
            page.wait_for_function(
                "document.querySelectorAll('#trend-chart circle[data-period]').length"
                f" === {5 * len(later)}"
            )
            shown_days = page.eval_on_selector_all(
                "#trend-chart g[data-series=orders] circle", "els => els.map(e => e.dataset.period)"
            )
            assert shown_days == later

            # the lookup box: a known customer's profile and journey, and an unknown id
            page.fill("#lookup-id", "c-mother-1")
            page.click("#lookup button")
            page.wait_for_selector("#customer", state="visible")
            profile = mother["profile"]
            assert page.get_attribute("#customer-stage", "data-value") == profile["stage"]
            assert page.get_attribute("#customer-segment", "data-value") == profile["segment"]
            assert page.text_content("#customer-orders") == str(profile["orders"])
            assert page.text_content("#customer-sessions") == str(profile["sessions"])
            active = sorted(mother["journey"]["activity"], reverse=True)
            shown_days = page.eval_on_selector_all(
                "#customer-days tbody tr", "els => els.map(e => e.dataset.day)"
            )
            assert shown_days == active[:10] and shown_days
            products = page.text_content("#customer-products") or ""
            assert all(b["product_id"] in products for b in profile["recently_purchased"][-5:])
            # her decisions, newest first, as the API lists them (the complements of formula)
            decided = [d["id"] for d in mother["decisions"]][:8]
            assert decided and any(d["strategy"] == STRATEGY for d in mother["decisions"])
            shown = page.eval_on_selector_all(
                "#customer-recommendations li", "els => els.map(e => e.dataset.decision)"
            )
            assert shown == decided
            page.screenshot(path=str(ARTIFACTS / "dashboard-demo-lookup.png"), full_page=True)
            page.fill("#lookup-id", "nobody-at-all")
            page.click("#lookup button")
            page.wait_for_function(
                "document.getElementById('lookup-message').textContent.includes('nobody-at-all')"
            )
            assert page.is_hidden("#customer")
        finally:
            browser.close()
