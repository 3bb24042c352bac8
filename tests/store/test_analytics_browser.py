"""The analytics page in a real headless Chromium: the charts render, with the right counts.

Debian's `chromium` and `chromium-driver` (installed by `scripts/install --test`), driven by
Selenium; nothing downloads a browser. The app runs under werkzeug's server on 127.0.0.1 with
the admin token required, the browser sends it, and a screenshot is left in the test's tmp dir.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from tests.store.analytics_data import (DAY_THREE, EXPECTED, EXPECTED_SERIES, EXPECTED_TOTALS, KIND_PREFIX, Clock,
                                        post_known_mix)
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


def test_the_charts_render_with_the_right_counts(tmp_path, browser):
    clock = Clock(DAY_THREE)
    app = app_for(store_settings(tmp_path / "data", admin_token=ADMIN_TOKEN), clock=clock)
    with served_in_thread(app) as base_url:
        session = requests.Session()
        post_known_mix(None, clock, post=lambda path, body: session.post(base_url + path, json=body, timeout=10))
        assert session.get(base_url + "/analytics").status_code == 401  # without the token

        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
        browser.get(base_url + "/analytics?days=7")
        assert browser.title.startswith("Card outcomes")
        screenshot = tmp_path / "analytics.png"
        assert browser.save_screenshot(str(screenshot))
        print(f"\nscreenshot: {screenshot}")

        page = browser.execute_script("""
            const box = el => { const r = el.getBoundingClientRect(); return {w: r.width, h: r.height}; };
            const bars = [...document.querySelectorAll('#outcomes-by-kind rect.bar')].map(el => ({
                kind: el.dataset.kind, series: el.dataset.series, count: +el.dataset.count, ...box(el)}));
            const labels = [...document.querySelectorAll('#outcomes-by-kind text.bar-value')].map(el => ({
                kind: el.dataset.kind, series: el.dataset.series, text: el.textContent, ...box(el)}));
            const points = [...document.querySelectorAll('svg.series circle.point')].map(el => ({
                chart: el.closest('svg').dataset.kind, series: el.dataset.series, date: el.dataset.date,
                count: +el.dataset.count, y: el.getBoundingClientRect().y, ...box(el)}));
            const lines = [...document.querySelectorAll('svg.series polyline')].map(el => box(el));
            const columns = [...document.querySelectorAll('svg.series rect.column')].map(el => ({
                chart: el.closest('svg').dataset.kind, date: el.dataset.date, count: +el.dataset.count, ...box(el)}));
            return {bars, labels, points, lines, columns,
                    resources: performance.getEntriesByType('resource').map(e => e.name),
                    totals: ['shown', 'accepted', 'overridden'].map(
                        s => document.querySelector('#total-' + s + ' .value').textContent.trim()),
                    unknown: document.querySelector('#unknown-feedback strong').textContent};
        """)

    # Bars: one per kind and series, drawn (non-zero size when the count is), with the count as label.
    bars = {(bar["kind"], bar["series"]): bar for bar in page["bars"]}
    labels = {(label["kind"], label["series"]): label for label in page["labels"]}
    assert len(bars) == 3 * len(EXPECTED)
    for topic, counts in EXPECTED.items():
        for series, count in zip(("shown", "accepted", "overridden"), counts[:3]):
            bar, label = bars[(KIND_PREFIX + topic, series)], labels[(KIND_PREFIX + topic, series)]
            assert bar["count"] == count and label["text"] == str(count), (topic, series)
            assert (bar["w"] > 1) == (count > 0) and bar["h"] > 5 and label["w"] > 0, (topic, series, bar)
    # Bar lengths are proportional to the counts.
    unit = bars[(KIND_PREFIX + "reassurance", "shown")]["w"] / 3
    for bar in page["bars"]:
        assert bar["w"] == pytest.approx(unit * bar["count"], abs=1.0), bar

    # Time series: every chart has its three lines; the markers carry the day's counts and sit higher
    # the larger the count.
    assert len(page["lines"]) == 2 * (len(EXPECTED) + 1) and all(line["w"] > 100 for line in page["lines"])
    points = {(p["chart"], p["series"], p["date"]): p for p in page["points"]}
    for (topic, day), counts in EXPECTED_SERIES.items():
        for series, count in zip(("shown", "accepted", "overridden"), counts):
            assert points[(KIND_PREFIX + topic, series, day)]["count"] == count
    total_shown = {p["date"]: p for p in page["points"] if p["chart"] == "all" and p["series"] == "shown"}
    assert total_shown["2026-11-13"]["count"] == 5 and total_shown["2026-11-15"]["count"] == 3
    assert total_shown["2026-11-13"]["y"] < total_shown["2026-11-15"]["y"] < total_shown["2026-11-14"]["y"]
    columns = {(c["chart"], c["date"]): c for c in page["columns"]}
    assert columns[("all", "2026-11-13")]["h"] == pytest.approx(columns[("all", "2026-11-15")]["h"] * 5 / 3, abs=1)
    assert columns[("all", "2026-11-14")]["h"] == 0

    assert page["totals"] == [str(n) for n in EXPECTED_TOTALS] and page["unknown"] == "1"
    assert page["resources"] == []  # nothing fetched: no CDN, no script, no font
    assert screenshot.stat().st_size > 20_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
