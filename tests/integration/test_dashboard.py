"""Test and learn through a real worker: a converting strategy beats its holdout.

Forty mothers buy stage-1 formula; the complements strategy decides a recommendation for each.
Those in the treatment arm come back and buy the suggested diapers, those held out do not. The
experiment view, /metrics and the customer-operations page (in a real headless Chromium) must
all show the same uplift, and the page must update live without a reload.
"""

from __future__ import annotations

import asyncio
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
from harness.process import produce
from recommend.experiments import HOLDOUT, arm_for
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


def render_and_compare(base_url: str, d: Any) -> None:
    """Open the page in headless Chromium; its numbers must equal the API's, and update live."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (make test installs it: `make browser`)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
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
