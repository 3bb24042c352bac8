"""The analytics page in a real headless Chromium: the charts render, with the right counts.

Debian's `chromium` and `chromium-driver` (installed by `scripts/install --test`), driven by
Selenium; nothing downloads a browser. The app runs under werkzeug's server on 127.0.0.1 with
the admin token required, the browser sends it, and a screenshot of the whole page is left in the
test's tmp dir: the known mix of tests/store/analytics_data.py, and a busy month of 13 card kinds.
"""
from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.store.analytics_data import (DAY_THREE, EXPECTED, EXPECTED_TOTALS, KIND_PREFIX, Clock, post_known_mix,
                                        write_busy_month)
from tests.store.support import ADMIN_TOKEN, app_for, served_in_thread, store_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,2200", "--hide-scrollbars"]


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian chromium and chromium-driver are not installed (scripts/install --test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    # A given driver path means Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def read_page(browser) -> dict:
    return browser.execute_script("""
        const box = el => { const r = el.getBoundingClientRect(); return {w: r.width, h: r.height, y: r.y}; };
        const rows = [...document.querySelectorAll('#kinds-table tbody tr[data-kind]')].map(row => ({
            kind: row.dataset.kind,
            cells: Object.fromEntries([...row.querySelectorAll('td[data-series]')].map(
                td => [td.dataset.series, td.textContent.trim()])),
            mix: Object.fromEntries([...row.querySelectorAll('svg.mix rect[data-series]')].map(
                el => [el.dataset.series, {count: +el.dataset.count, ...box(el)}])),
            mixWidth: box(row.querySelector('svg.mix')).w,
            spark: box(row.querySelector('svg.spark')),
            sparkLines: row.querySelectorAll('svg.spark polyline, svg.spark polygon').length,
            reasons: row.querySelector('td.reasons').textContent.trim(), ...box(row)}));
        const points = [...document.querySelectorAll('svg.series circle.point')].map(el => ({
            chart: el.closest('svg').dataset.kind, series: el.dataset.series, date: el.dataset.date,
            count: +el.dataset.count, y: el.getBoundingClientRect().y, ...box(el)}));
        const columns = [...document.querySelectorAll('svg.series rect.column')].map(el => ({
            chart: el.closest('svg').dataset.kind, date: el.dataset.date, count: +el.dataset.count, ...box(el)}));
        const unknown = document.querySelector('#unknown-feedback strong');
        return {rows, points, columns, seriesCharts: document.querySelectorAll('svg.series').length,
                lines: [...document.querySelectorAll('svg.series polyline')].map(el => box(el)),
                resources: performance.getEntriesByType('resource').map(e => e.name),
                height: Math.ceil(document.body.getBoundingClientRect().bottom),
                overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                generated: document.querySelector('#generated').textContent,
                totals: ['shown', 'accepted', 'overridden', 'rate', 'override-rate'].map(
                    s => document.querySelector('#total-' + s + ' .value').textContent.trim()),
                unknown: unknown && unknown.textContent};
    """)


def open_page(browser, base_url: str, path: str, screenshot: Path) -> dict:
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
    browser.get(base_url + path)
    assert browser.title.startswith("Card outcomes")
    page = read_page(browser)
    browser.set_window_size(1200, page["height"] + 300)  # the whole page in the picture
    assert browser.save_screenshot(str(screenshot))
    print(f"\nscreenshot: {screenshot} ({page['height']} px tall)")
    assert screenshot.stat().st_size > 20_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page["resources"] == []  # nothing fetched: no CDN, no script, no font
    assert page["overflow"] <= 0, "the page is wider than the window"
    return page


def test_every_kind_shows_its_counts_rates_outcome_mix_and_sparkline(tmp_path, browser):
    clock = Clock(DAY_THREE)
    app = app_for(store_settings(tmp_path / "data", admin_token=ADMIN_TOKEN), clock=clock)
    with served_in_thread(app) as base_url:
        session = requests.Session()
        post_known_mix(None, clock, post=lambda path, body: session.post(base_url + path, json=body, timeout=10))
        assert session.get(base_url + "/analytics").status_code == 401  # without the token
        page = open_page(browser, base_url, "/analytics?days=7", tmp_path / "analytics.png")

    rows = {row["kind"]: row for row in page["rows"]}
    assert len(rows) == len(EXPECTED)
    for topic, (shown, accepted, overridden, reasons) in EXPECTED.items():
        row = rows[KIND_PREFIX + topic]
        assert row["cells"] == {"shown": str(shown), "accepted": str(accepted), "overridden": str(overridden),
                                "acceptanceRate": f"{accepted / shown * 100:.1f}%",
                                "overrideRate": f"{overridden / shown * 100:.1f}%"}, topic
        # The outcome bar: each share of the cards shown drawn in proportion, the rest left grey.
        for series, count in (("accepted", accepted), ("overridden", overridden)):
            assert row["mix"][series]["count"] == count
            assert row["mix"][series]["w"] == pytest.approx(row["mixWidth"] * count / shown, abs=0.6), (topic, series)
        assert row["spark"]["w"] > 100 and row["spark"]["h"] > 20 and row["sparkLines"] == 2
        assert row["reasons"] == ("; ".join(f"{r} ({n})" for r, n in reasons) or "none")

    # One daily chart for all kinds: markers carry the day's counts and sit higher the larger the count.
    assert page["seriesCharts"] == 1 and len(page["lines"]) == 2 and all(line["w"] > 100 for line in page["lines"])
    total_shown = {p["date"]: p for p in page["points"] if p["chart"] == "all" and p["series"] == "shown"}
    assert total_shown["2026-11-13"]["count"] == 5 and total_shown["2026-11-15"]["count"] == 3
    assert total_shown["2026-11-13"]["y"] < total_shown["2026-11-15"]["y"] < total_shown["2026-11-14"]["y"]
    columns = {c["date"]: c for c in page["columns"]}
    assert columns["2026-11-13"]["h"] == pytest.approx(columns["2026-11-15"]["h"] * 5 / 3, abs=1)
    assert columns["2026-11-14"]["h"] == 0

    assert page["totals"] == [*map(str, EXPECTED_TOTALS), "37.5%", "50.0%"] and page["unknown"] == "1"
    assert page["generated"] == "2026-11-15 09:00:00 UTC"  # no microseconds


def test_a_busy_month_of_13_card_kinds_fits_on_one_screen(tmp_path, browser):
    """What a safety lead opens: 30 days, 13 kinds, read in a minute without scrolling through charts."""
    today = datetime(2026, 12, 5, 9, 0, 12, 345678, tzinfo=UTC)
    app = app_for(store_settings(tmp_path / "data", admin_token=ADMIN_TOKEN), clock=lambda: today)
    totals = write_busy_month(app.extensions["fasciculation_cds_card_log"].store, today)
    with served_in_thread(app) as base_url:
        page = open_page(browser, base_url, "/analytics?days=30", tmp_path / "analytics-busy-month.png")
    assert [row["kind"].removeprefix(KIND_PREFIX) for row in page["rows"]] == sorted(
        totals, key=lambda topic: (-totals[topic][0], topic))
    for row in page["rows"]:
        shown, accepted, overridden = totals[row["kind"].removeprefix(KIND_PREFIX)]
        assert row["cells"]["overrideRate"] == f"{overridden / shown * 100:.1f}%"
        assert row["h"] < 60, f"a table row {row['h']:.0f} px tall"
    assert page["height"] < 1400, f"the page is {page['height']} px tall"
    assert page["generated"] == "2026-12-05 09:00:12 UTC"
