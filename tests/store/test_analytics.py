"""GET /analytics(.json) and `fasciculation-cds report`: the right numbers, behind the admin token."""
from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest

from service.analytics import _authorize
from service.cli import main
from tests.store.analytics_data import (DAY_THREE, EXPECTED, EXPECTED_SERIES, EXPECTED_TOTALS, KIND_PREFIX, Clock,
                                        post_known_mix)
from tests.store.support import ADMIN_TOKEN, ROOT, SERVICE_PATH, TEST_SECRET, app_for, fixture_request, store_settings


@pytest.fixture
def clock():
    return Clock(DAY_THREE)


@pytest.fixture
def open_client(tmp_path, clock):
    return app_for(store_settings(tmp_path), clock=clock).test_client()


def test_the_json_has_per_kind_counts_rates_reasons_and_a_daily_series(open_client, clock):
    post_known_mix(open_client, clock)
    report = open_client.get("/analytics.json?days=7").get_json()
    assert report["period"] == {"from": "2026-11-09", "to": "2026-11-15", "days": 7, "timezone": "UTC"}
    kinds = {kind["topic"]: kind for kind in report["kinds"]}
    assert set(kinds) == set(EXPECTED)
    for topic, (shown, accepted, overridden, reasons) in EXPECTED.items():
        kind = kinds[topic]
        assert (kind["shown"], kind["accepted"], kind["overridden"]) == (shown, accepted, overridden), topic
        assert kind["acceptanceRate"] == round(accepted / shown, 4)
        assert [(r["reason"], r["count"]) for r in kind["topOverrideReasons"]] == reasons
        assert [point["date"] for point in kind["series"]] == [f"2026-11-{day:02d}" for day in range(9, 16)]
        for point in kind["series"]:
            expected = EXPECTED_SERIES.get((topic, point["date"]), (0, 0, 0))
            if topic in ("abnormal-result", "cramp-management") and point["date"] == "2026-11-13":
                expected = (1, 0, int(topic == "cramp-management"))
            assert (point["shown"], point["accepted"], point["overridden"]) == expected, (topic, point)
    assert kinds["reassurance"]["display"] == "Reassurance"
    assert report["kinds"][0]["topic"] == "reassurance"  # most shown first
    totals = report["totals"]
    assert (totals["shown"], totals["accepted"], totals["overridden"]) == EXPECTED_TOTALS
    assert report["unknownCardFeedback"] == 1
    assert report["knowledgeVersions"]
    assert sum(point["shown"] for point in report["series"]) == EXPECTED_TOTALS[0]


def test_a_period_that_ends_before_the_cards_is_empty(open_client, clock):
    post_known_mix(open_client, clock)
    clock.now = datetime(2026, 11, 12, 23, 59, tzinfo=UTC)
    report = open_client.get("/analytics.json?days=1").get_json()
    assert report["kinds"] == [] and report["totals"]["shown"] == 0 and report["totals"]["acceptanceRate"] is None


@pytest.mark.parametrize("days", ["0", "366", "ten", "-1", "1.5"])
def test_a_bad_period_is_a_400(open_client, days):
    response = open_client.get(f"/analytics.json?days={days}")
    assert response.status_code == 400 and response.get_json()["resourceType"] == "OperationOutcome"


def test_the_page_draws_each_count_and_loads_nothing_from_anywhere(open_client, clock):
    post_known_mix(open_client, clock)
    response = open_client.get("/analytics?days=7")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-kind="([^"]+)">(.*?)</tr>', html, re.S))
    assert sorted(rows) == sorted(KIND_PREFIX + topic for topic in EXPECTED)  # one row per kind,
    assert list(rows)[:2] == [KIND_PREFIX + "reassurance", KIND_PREFIX + "workup-incomplete"]  # most shown first
    for topic, (shown, accepted, overridden, _) in EXPECTED.items():
        cells = dict(re.findall(r'<td class="num" data-series="(\w+)">([^<]*)</td>', rows[KIND_PREFIX + topic]))
        assert cells == {"shown": str(shown), "accepted": str(accepted), "overridden": str(overridden),
                         "acceptanceRate": f"{accepted / shown * 100:.1f}%",
                         "overrideRate": f"{overridden / shown * 100:.1f}%"}, (topic, cells)
        for series, count in (("accepted", accepted), ("overridden", overridden)):
            assert re.search(rf'class="mix-{series}"[^>]*data-series="{series}" data-count="{count}"',
                             rows[KIND_PREFIX + topic]), (topic, series)
        assert 'class="spark"' in rows[KIND_PREFIX + topic]
    assert html.count('class="chart series"') == 1  # one daily chart for all kinds, not one per kind
    assert re.search(r'<time id="generated" datetime="2026-11-15T09:00:00Z">2026-11-15 09:00:00 UTC</time>', html)
    assert '<div class="value">50.0%</div><div class="label">override rate</div>' in html  # 4 of 8
    assert "<script" not in html and "<link" not in html and " src=" not in html
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "Patient declines (2)" in html and "not relevant today" not in html


def test_the_page_escapes_what_it_shows(tmp_path):
    from hooks.declaration import CdsService, HookResult
    evil = "<script>alert(1)</script>"

    def handler(call):
        return HookResult(cards=[{"uuid": "a1b2c3d4-0000-4000-8000-000000000001", "summary": "x", "indicator": "info",
                                  "source": {"label": "x", "topic": {"system": "urn:x", "code": evil, "display": evil}}}])
    service = CdsService(id="evil", hook="patient-view", title="t", description="d", handler=handler)
    client = app_for(store_settings(tmp_path), services=[service]).test_client()
    client.post("/cds-services/evil", json=fixture_request())
    html = client.get("/analytics").get_data(as_text=True)
    assert evil not in html and "&lt;script&gt;" in html


# -- access ----------------------------------------------------------------------------------------

def test_development_without_a_token_is_open(open_client):
    assert open_client.get("/analytics").status_code == 200


@pytest.fixture
def guarded_client(tmp_path):
    return app_for(store_settings(tmp_path, admin_token=ADMIN_TOKEN)).test_client()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Token {ADMIN_TOKEN}", "Bearer ",
                                           "Basic " + base64.b64encode(b"admin:wrong").decode(), "Basic !!!"])
def test_a_configured_token_is_required(guarded_client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/analytics", "/analytics.json"):
        response = guarded_client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["resourceType"] == "OperationOutcome"
        assert "Basic" in response.headers["WWW-Authenticate"] and "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("authorization", [f"Bearer {ADMIN_TOKEN}", f"bearer  {ADMIN_TOKEN} ",
                                           "Basic " + base64.b64encode(f"safety:{ADMIN_TOKEN}".encode()).decode()])
def test_the_token_opens_the_pages_as_bearer_or_basic_password(guarded_client, authorization):
    for path in ("/analytics", "/analytics.json"):
        assert guarded_client.get(path, headers={"Authorization": authorization}).status_code == 200


def test_production_refuses_analytics_until_a_token_is_configured(tmp_path):
    production = {"mode": "production", "public_base_url": "https://cds.hospital.test", "patient_key_secret": TEST_SECRET,
                  "trusted_clients_file": str(ROOT / "deploy" / "trusted-clients" / "epic.example.yaml")}
    client = app_for(store_settings(tmp_path, **production)).test_client()
    response = client.get("/analytics.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 403 and "CDS_ADMIN_TOKEN" in response.get_json()["issue"][0]["diagnostics"]
    # Feedback stays behind the JWT guard like every /cds-services call.
    assert client.post("/cds-services/fasciculation-cramp-review/feedback", json={"feedback": []}).status_code == 401

    client = app_for(store_settings(tmp_path, admin_token=ADMIN_TOKEN, **production)).test_client()
    assert client.get("/analytics.json").status_code == 401
    assert client.get("/analytics.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


def test_the_admin_token_must_be_long():
    from service.config import ConfigError, Settings
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CDS_ADMIN_TOKEN": "short"})
    assert str(raised.value) == "CDS_ADMIN_TOKEN=<hidden>: must be at least 32 characters (e.g. `openssl rand -hex 32`)"


def test_the_authorization_check_compares_in_constant_time():
    import inspect
    assert "compare_digest" in inspect.getsource(_authorize)


# -- the terminal report -------------------------------------------------------------------------------

def test_report_prints_the_same_summary(tmp_path, monkeypatch, capsys):
    now = datetime.now(UTC)
    client = app_for(store_settings(tmp_path), clock=lambda: now).test_client()
    cards = client.post(SERVICE_PATH, json=fixture_request("06-thiazide-low-k")).get_json()["cards"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    client.post(SERVICE_PATH + "/feedback", json={"feedback": [
        {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp,
         "overrideReason": {"reason": {"system": "urn:x", "code": "c", "display": "Not now"}}},
        {"card": cards[1]["uuid"], "outcome": "accepted", "acceptedSuggestions": [], "outcomeTimestamp": stamp}]})
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CDS_PATIENT_KEY_SECRET", TEST_SECRET)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["report", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^all kinds\s+4\s+1\s+1\s+25\.0%\s+25\.0%$", out, re.M), out
    assert "overridden: Not now (1)" in out
    assert main(["report", "--json"]) == 0
    assert '"shown": 4' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["report", "--days", "400"])
    assert exited.value.code == 2


def test_feedback_accepting_a_suggestion_the_card_never_offered_is_counted_and_shown(open_client, clock):
    post_known_mix(open_client, clock)
    assert open_client.get("/analytics.json?days=7").get_json()["unknownSuggestionFeedback"] == 0
    card = open_client.post(SERVICE_PATH, json=fixture_request("04-no-labs")).get_json()["cards"][0]
    open_client.post(SERVICE_PATH + "/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": "not-one-of-its-suggestions"}],
         "outcomeTimestamp": "2026-11-15T09:10:00Z"}]})
    assert open_client.get("/analytics.json?days=7").get_json()["unknownSuggestionFeedback"] == 1
    html = open_client.get("/analytics?days=7").get_data(as_text=True)
    assert re.search(r'id="unknown-suggestions"><strong>1</strong> feedback\s+entry in this period accepted a '
                     r"suggestion the card never\s+offered", html), html
