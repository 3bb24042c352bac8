"""Tests of the in-memory FHIR test server (tests/fhir_server) and its harness (tests/fhirserver.py).

All HTTP here is real, to a node process on 127.0.0.1 started once per session.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fhirserver import FhirServerError, FhirTestServer

pytestmark = pytest.mark.integration

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
FHIR_JSON = "application/fhir+json"

# LOINC codes cycled over the 25 observations: CK, creatinine, potassium, TSH, hemoglobin.
OBS_CODES = ["2157-6", "2160-0", "2823-3", "3016-3", "718-7"]
FIRST_DAY = date(2026, 1, 1)


def _obs(i: int, patient: str = "p1") -> dict:
    code = OBS_CODES[i % len(OBS_CODES)]
    return {
        "resourceType": "Observation",
        "id": f"{patient}-obs-{i:02d}",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        # distinct days, inserted out of order (i * 7 mod 25 is a permutation)
        "effectiveDateTime": f"{FIRST_DAY + timedelta(days=(i * 7) % 25)}T08:30:00Z",
        "valueQuantity": {"value": 100 + i, "unit": "U/L"},
    }


def fixture_bundle() -> dict:
    """collection Bundle: p1 with 2 Conditions, 25 Observations, meds, an active ServiceRequest; p2 as noise."""
    p1 = [
        {"resourceType": "Patient", "id": "p1", "name": [{"family": "Testperson", "given": ["Ada"]}]},
        {
            "resourceType": "Condition",
            "id": "p1-cond-1",
            "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": SNOMED, "code": "386033004", "display": "Fasciculation"}]},
        },
        {
            "resourceType": "Condition",
            "id": "p1-cond-2",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": SNOMED, "code": "55300003", "display": "Cramp"}]},
        },
        *[_obs(i) for i in range(25)],
        {
            "resourceType": "MedicationRequest",
            "id": "p1-medreq-1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "magnesium"},
        },
        {
            "resourceType": "MedicationStatement",
            "id": "p1-medstmt-1",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "salbutamol"},
        },
        {
            "resourceType": "ServiceRequest",
            "id": "p1-sr-1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": "EMG"},
        },
        {
            "resourceType": "ServiceRequest",
            "id": "p1-sr-2",
            "status": "completed",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": "nerve conduction"},
        },
    ]
    p2 = [
        {"resourceType": "Patient", "id": "p2"},
        *[_obs(i, "p2") for i in range(3)],
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in p1 + p2]}


@pytest.fixture()
def srv(clean_fhir_server: FhirTestServer) -> FhirTestServer:
    clean_fhir_server.load_bundle(fixture_bundle())
    clean_fhir_server.clear_log()
    return clean_fhir_server


def _get(url: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 10)
    return requests.get(url, **kw)


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


# ---------------------------------------------------------------------------
# FHIR behaviour
# ---------------------------------------------------------------------------


def test_read(srv: FhirTestServer) -> None:
    r = _get(f"{srv.base_url}/Patient/p1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    body = r.json()
    assert body["resourceType"] == "Patient" and body["id"] == "p1"
    assert body["name"][0]["family"] == "Testperson"

    missing = _get(f"{srv.base_url}/Patient/nope")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_search_by_patient_and_code_list(srv: FhirTestServer) -> None:
    wanted = OBS_CODES[:2]
    code_param = ",".join(f"{LOINC}|{c}" for c in wanted)
    expected = sorted(f"p1-obs-{i:02d}" for i in range(25) if OBS_CODES[i % 5] in wanted)
    assert len(expected) == 10

    for patient_param in ({"patient": "p1"}, {"patient": "Patient/p1"}, {"subject": "Patient/p1"}, {"subject": "p1"}):
        r = _get(f"{srv.base_url}/Observation", params={**patient_param, "code": code_param})
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        assert bundle["total"] == 10
        assert sorted(_ids(bundle)) == expected, patient_param

    # a code without system, and a system|code that does not exist
    r = _get(f"{srv.base_url}/Observation", params={"patient": "p1", "code": OBS_CODES[0]})
    assert r.json()["total"] == 5
    r = _get(f"{srv.base_url}/Observation", params={"patient": "p1", "code": f"{SNOMED}|{OBS_CODES[0]}"})
    assert r.json()["total"] == 0
    # p2 only sees its own
    assert _get(f"{srv.base_url}/Observation", params={"patient": "p2"}).json()["total"] == 3


def test_search_other_types_and_status(srv: FhirTestServer) -> None:
    def total(rtype: str, **params: str) -> int:
        r = _get(f"{srv.base_url}/{rtype}", params=params)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    assert total("Condition", patient="p1") == 2
    assert total("MedicationRequest", patient="p1", status="active") == 1
    assert total("MedicationStatement", subject="Patient/p1") == 1
    assert total("ServiceRequest", patient="p1") == 2
    assert total("ServiceRequest", patient="p1", status="active") == 1
    assert total("ServiceRequest", patient="p1", status="active,completed") == 2
    assert total("Condition", patient="p2") == 0


def test_sort_by_date_descending(srv: FhirTestServer) -> None:
    r = _get(f"{srv.base_url}/Observation", params={"patient": "p1", "_sort": "-date"})
    dates = [e["resource"]["effectiveDateTime"] for e in r.json()["entry"]]
    assert len(dates) == 25
    assert dates == sorted(dates, reverse=True)
    asc = _get(f"{srv.base_url}/Observation", params={"patient": "p1", "_sort": "date"}).json()
    assert [e["resource"]["effectiveDateTime"] for e in asc["entry"]] == sorted(dates)


def _walk_pages(first_url: str, **kw) -> list[dict]:
    pages = []
    url: str | None = first_url
    while url and len(pages) < 10:
        r = _get(url, **kw)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = next((ln["url"] for ln in r.json().get("link", []) if ln["relation"] == "next"), None)
    return pages


@pytest.mark.parametrize("prefix_kind", ["plain", "auth", "delay"])
def test_paging_count_10(srv: FhirTestServer, prefix_kind: str) -> None:
    headers = {}
    if prefix_kind == "plain":
        base = srv.base_url
    elif prefix_kind == "auth":
        base = srv.auth_base("s3cret")
        headers = {"Authorization": "Bearer s3cret"}
    else:
        base = srv.fault_base("delay", 1)
    pages = _walk_pages(f"{base}/Observation?patient=p1&_sort=-date&_count=10", headers=headers)
    assert [len(p.get("entry", [])) for p in pages] == [10, 10, 5]
    assert all(p["total"] == 25 for p in pages)
    for page in pages[:-1]:
        nxt = next(ln["url"] for ln in page["link"] if ln["relation"] == "next")
        assert nxt.startswith(base + "/Observation?"), nxt  # absolute, same prefix
        assert urlsplit(nxt).scheme == "http"
        assert parse_qs(urlsplit(nxt).query)["_count"] == ["10"]
    assert not any(ln["relation"] == "next" for ln in pages[-1]["link"])
    all_dates = [e["resource"]["effectiveDateTime"] for p in pages for e in p["entry"]]
    assert len(set(all_dates)) == 25 and all_dates == sorted(all_dates, reverse=True)
    # every page request went through the same prefix
    prefix_path = urlsplit(base).path
    log = [e for e in srv.request_log() if "/Observation" in e["path"]]
    assert len(log) == 3 and all(e["path"].startswith(prefix_path + "/Observation?") for e in log)


def test_post_search_form_encoded(srv: FhirTestServer) -> None:
    r = requests.post(
        f"{srv.base_url}/Observation/_search",
        data={"patient": "p1", "code": f"{LOINC}|{OBS_CODES[0]}", "_sort": "-date", "_count": "2"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    bundle = r.json()
    assert bundle["total"] == 5 and len(bundle["entry"]) == 2
    dates = [e["resource"]["effectiveDateTime"] for e in bundle["entry"]]
    assert dates == sorted(dates, reverse=True)
    nxt = next(ln["url"] for ln in bundle["link"] if ln["relation"] == "next")
    assert nxt.startswith(srv.base_url + "/Observation?")
    follow = _get(nxt).json()
    assert len(follow["entry"]) == 2 and set(_ids(follow)).isdisjoint(_ids(bundle))


def test_unknown_params_ignored_unsupported_rejected(srv: FhirTestServer) -> None:
    r = _get(f"{srv.base_url}/Observation", params={"patient": "p1", "bogus": "1"})
    assert r.status_code == 200 and r.json()["total"] == 25
    assert r.headers.get("X-Ignored-Search-Params") == "bogus"
    assert _get(f"{srv.base_url}/Observation", params={"_include": "Observation:patient"}).status_code == 400
    assert _get(f"{srv.base_url}/NotAType").status_code == 404


def test_transaction_keeps_ids_and_resolves_urn_references(clean_fhir_server: FhirTestServer) -> None:
    srv = clean_fhir_server
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c2a52-0000-4000-8000-000000000001",
                "request": {"method": "PUT", "url": "Patient/px"},
                "resource": {"resourceType": "Patient", "id": "px"},
            },
            {
                "request": {"method": "PUT", "url": "Observation/ox"},
                "resource": {
                    "resourceType": "Observation",
                    "id": "ox",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:6f1c2a52-0000-4000-8000-000000000001"},
                },
            },
        ],
    }
    result = srv.load_bundle(bundle)
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["200", "200"]
    assert _get(f"{srv.base_url}/Observation/ox").json()["subject"]["reference"] == "Patient/px"
    assert _get(f"{srv.base_url}/Observation", params={"patient": "px"}).json()["total"] == 1


def test_load_bundle_reports_failed_entries(clean_fhir_server: FhirTestServer) -> None:
    bad = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "PUT", "url": "Patient/a"}, "resource": {"resourceType": "Patient", "id": "b"}}],
    }
    with pytest.raises(FhirServerError, match="entry 0"):
        clean_fhir_server.load_bundle(bad)


def test_collection_conversion() -> None:
    tx = FhirTestServer.as_transaction(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {"resourceType": "Patient", "id": "a"}}, {"resource": {"resourceType": "Patient"}}],
        }
    )
    assert tx["type"] == "transaction"
    assert [e["request"] for e in tx["entry"]] == [
        {"method": "PUT", "url": "Patient/a"},
        {"method": "POST", "url": "Patient"},
    ]
    with pytest.raises(ValueError):
        FhirTestServer.as_transaction({"resourceType": "Bundle", "type": "document"})


# ---------------------------------------------------------------------------
# Auth prefix and request log
# ---------------------------------------------------------------------------


def test_auth_prefix(srv: FhirTestServer) -> None:
    url = f"{srv.auth_base('tok-123')}/Patient/p1"
    none = _get(url)
    assert none.status_code == 401
    assert none.json()["resourceType"] == "OperationOutcome"
    assert none.headers["Content-Type"].startswith(FHIR_JSON)
    assert "Bearer" in none.headers.get("WWW-Authenticate", "")
    assert _get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _get(url, headers={"Authorization": "Basic dG9rLTEyMw=="}).status_code == 401
    ok = _get(url, headers={"Authorization": "Bearer tok-123"})
    assert ok.status_code == 200 and ok.json()["id"] == "p1"
    # POST _search behind auth
    post = requests.post(
        f"{srv.auth_base('tok-123')}/Observation/_search",
        data={"patient": "p1"},
        headers={"Authorization": "Bearer tok-123"},
        timeout=10,
    )
    assert post.status_code == 200 and post.json()["total"] == 25


def test_request_log_records_authorization(srv: FhirTestServer) -> None:
    _get(f"{srv.base_url}/Patient/p1")
    _get(f"{srv.auth_base('abc')}/Observation?patient=p1&_count=1", headers={"Authorization": "Bearer abc"})
    log = srv.request_log()
    assert [(e["method"], e["path"], e["authorization"]) for e in log] == [
        ("GET", "/fhir/R4/Patient/p1", None),
        ("GET", "/auth/abc/fhir/R4/Observation?patient=p1&_count=1", "Bearer abc"),
    ]
    srv.clear_log()
    assert srv.request_log() == []


def test_reset_empties(srv: FhirTestServer) -> None:
    assert _get(f"{srv.base_url}/Patient/p1").status_code == 200
    srv.reset()
    assert _get(f"{srv.base_url}/Patient/p1").status_code == 404
    assert _get(f"{srv.base_url}/Observation").json()["total"] == 0
    assert [e["path"] for e in srv.request_log()] == ["/fhir/R4/Patient/p1", "/fhir/R4/Observation"]


# ---------------------------------------------------------------------------
# Fault prefixes
# ---------------------------------------------------------------------------


def test_fault_delay(srv: FhirTestServer) -> None:
    url = f"{srv.fault_base('delay', 300)}/Patient/p1"
    t0 = time.monotonic()
    r = _get(url)
    assert r.status_code == 200 and r.json()["id"] == "p1"
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(requests.Timeout):
        _get(url, timeout=0.1)


@pytest.mark.parametrize("code", [500, 401, 404, 503])
def test_fault_status(srv: FhirTestServer, code: int) -> None:
    r = _get(f"{srv.fault_base('status', code)}/Observation?patient=p1")
    assert r.status_code == code
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    assert r.json()["resourceType"] == "OperationOutcome"


def test_fault_malformed(srv: FhirTestServer) -> None:
    r = _get(f"{srv.fault_base('malformed')}/Observation?patient=p1")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(FHIR_JSON)
    with pytest.raises(ValueError):
        json.loads(r.text)


def test_fault_html(srv: FhirTestServer) -> None:
    r = _get(f"{srv.fault_base('html')}/Patient/p1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<html" in r.text.lower()


def test_fault_loop(srv: FhirTestServer) -> None:
    url = f"{srv.fault_base('loop')}/Observation?patient=p1&_count=5"
    seen = []
    for _ in range(4):
        bundle = _get(url).json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        url = next(ln["url"] for ln in bundle["link"] if ln["relation"] == "next")
        seen.append(url)
    assert len(set(seen)) == 1 and seen[0] == f"{srv.fault_base('loop')}/Observation?patient=p1&_count=5"


def test_fault_huge(srv: FhirTestServer) -> None:
    with _get(f"{srv.fault_base('huge', 3)}/Observation?patient=p1", stream=True) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(FHIR_JSON)
        assert "Content-Length" not in r.headers  # streamed in chunks
        chunks = list(r.iter_content(chunk_size=256 * 1024))
    body = b"".join(chunks)
    assert len(body) == 3 * 1024 * 1024
    assert body.startswith(b'{"resourceType":"Bundle"')
    assert json.loads(body)["entry"][0]["resource"]["id"] == "huge"  # valid JSON, just big

    # a client that stops reading early does not hurt the server
    with _get(f"{srv.fault_base('huge', 50)}/Observation", stream=True) as r:
        next(r.iter_content(chunk_size=1024))
    assert _get(f"{srv.base_url}/Patient/p1").status_code == 200


def test_fault_reset(srv: FhirTestServer) -> None:
    with pytest.raises(requests.ConnectionError):
        _get(f"{srv.fault_base('reset')}/Patient/p1")
    assert _get(f"{srv.base_url}/Patient/p1").status_code == 200


def test_fault_redirect(srv: FhirTestServer) -> None:
    off_host = "https://login.evil.example/fhir/R4"
    r = _get(f"{srv.fault_base('redirect', off_host)}/Observation?patient=p1", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == f"{off_host}/Observation?patient=p1"
    # a redirect back to this server is followable
    r = _get(f"{srv.fault_base('redirect', srv.base_url)}/Patient/p1")
    assert r.status_code == 200 and r.json()["id"] == "p1"
    assert r.history and r.history[0].status_code == 302


def test_auth_and_fault_stack(srv: FhirTestServer) -> None:
    base = srv.fault_base("status", 503, token="t")
    assert base.endswith("/auth/t/fault/status/503/fhir/R4")
    assert _get(f"{base}/Patient/p1").status_code == 401  # auth first
    assert _get(f"{base}/Patient/p1", headers={"Authorization": "Bearer t"}).status_code == 503


def test_fault_base_validation(fhir_server: FhirTestServer) -> None:
    with pytest.raises(ValueError):
        fhir_server.fault_base("nope")
    with pytest.raises(ValueError):
        fhir_server.fault_base("delay")
    assert _get(f"{fhir_server.root_url}/fault/nope/fhir/R4/Patient/p1").status_code == 404
    assert _get(f"{fhir_server.root_url}/somewhere/else").status_code == 404


# ---------------------------------------------------------------------------
# Harness lifecycle
# ---------------------------------------------------------------------------


def test_start_stop_leaves_no_process(fhir_server: FhirTestServer) -> None:
    other = FhirTestServer(default_count=2)
    other.start()
    try:
        pid = other.pid
        assert pid and other.is_running and other.port != fhir_server.port
        assert other.ready_info["ready"] is True and other.ready_info["port"] == other.port
        assert _get(f"{other.base_url}/metadata").json()["resourceType"] == "CapabilityStatement"
        # --default-count pages searches that do not ask for _count
        other.load_resources([{"resourceType": "Patient", "id": f"d{i}"} for i in range(5)])
        pages = _walk_pages(f"{other.base_url}/Patient")
        assert [len(p["entry"]) for p in pages] == [2, 2, 1]
        # a second server has its own repository
        assert _get(f"{fhir_server.base_url}/Patient/d0").status_code == 404
    finally:
        other.stop()
    assert not other.is_running
    other.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
