"""/healthz, /readyz and /metrics, in process: what each answers and what each metric counts."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from service import create_app, metrics
from service.ops import add_readiness_check
from tests.auth.support import OPEN_APPS, SERVICE_PATH, bearer, claims, client_entry, mint, production_app
from tests.conftest import FIXTURE_AS_OF, PROBE_ID, PROBE_SERVICE, make_settings, patient_view_request
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests, metric
from tests.secrets import secret_token


def app_with(**settings):
    app = create_app(make_settings(**settings), clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(app)
    return app


def probe_app(**settings):
    app = create_app(make_settings(**settings), services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(app)
    return app


# -- health and readiness --------------------------------------------------------------------------

def test_healthz_answers_without_authentication_even_in_production(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert client.get("/cds-services").status_code == 401  # the API itself stays closed


def test_readyz_reports_every_check(tmp_path, es384):
    response = production_app(tmp_path, client_entry(es384)).test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    assert {"knowledge", "config", "database"} <= set(body["checks"])
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_checks_redis_when_configured(redis_url):
    response = app_with(redis_url=redis_url).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["redis"]["ok"] is True


def test_readyz_is_503_when_redis_is_unreachable_and_says_no_more_than_the_error_type():
    password = secret_token()
    app = app_with(redis_url=f"redis://:{password}@127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError", "ms": body["checks"]["redis"]["ms"]}
    assert body["checks"]["knowledge"]["ok"] and body["checks"]["config"]["ok"]
    assert password not in response.get_data(as_text=True) and "127.0.0.1" not in response.get_data(as_text=True)


def test_other_parts_add_their_own_readiness_checks():
    app = app_with()

    def database_down():
        raise OSError("connection to postgresql://user:pw@db refused")

    add_readiness_check(app, "database", database_down)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["error"] == "OSError"
    assert "pw@db" not in response.get_data(as_text=True)


# -- request metrics ---------------------------------------------------------------------------------

def test_requests_are_timed_and_counted_by_endpoint_service_and_status():
    client = app_with().test_client()
    before = {
        "discovery": metric("cds_requests_total", endpoint="discovery", service="", status="200"),
        "ok": metric("cds_requests_total", endpoint="service", service=REVIEW_SERVICE, status="200"),
        "bad": metric("cds_requests_total", endpoint="service", service=REVIEW_SERVICE, status="400"),
        "unknown": metric("cds_requests_total", endpoint="service", service="unknown", status="404"),
        "other": metric("cds_requests_total", endpoint="other", service="", status="404"),
        "timed": metric("cds_request_duration_seconds_count", endpoint="service", service=REVIEW_SERVICE),
    }
    name, request = fixture_requests()[0]
    assert client.get("/cds-services").status_code == 200
    assert client.post(f"/cds-services/{REVIEW_SERVICE}", json=request).status_code == 200, name
    assert client.post(f"/cds-services/{REVIEW_SERVICE}", json={"hook": "patient-view"}).status_code == 400
    # A made-up service id must not become a new label value.
    assert client.post(f"/cds-services/made-up-{uuid.uuid4()}", json=request).status_code == 404
    assert client.get("/no-such-path").status_code == 404
    assert metric("cds_requests_total", endpoint="discovery", service="", status="200") == before["discovery"] + 1
    assert metric("cds_requests_total", endpoint="service", service=REVIEW_SERVICE, status="200") == before["ok"] + 1
    assert metric("cds_requests_total", endpoint="service", service=REVIEW_SERVICE, status="400") == before["bad"] + 1
    assert metric("cds_requests_total", endpoint="service", service="unknown", status="404") == before["unknown"] + 1
    assert metric("cds_requests_total", endpoint="other", service="", status="404") == before["other"] + 1
    assert metric("cds_request_duration_seconds_count", endpoint="service", service=REVIEW_SERVICE) == before["timed"] + 2


def test_cards_are_counted_by_topic_and_indicator():
    request = dict(fixture_requests())["06-thiazide-low-k"]
    expected = {("workup-incomplete", "info"), ("abnormal-result", "warning"), ("medication-review", "info"),
                ("cramp-management", "info")}
    before = {key: metric("cds_cards_total", service=REVIEW_SERVICE, topic=key[0], indicator=key[1])
              for key in expected}
    assert app_with().test_client().post(f"/cds-services/{REVIEW_SERVICE}", json=request).status_code == 200
    for (topic, indicator), value in before.items():
        assert metric("cds_cards_total", service=REVIEW_SERVICE, topic=topic, indicator=indicator) == value + 1


def prefetch_counts(outcome):
    return {key: metric("cds_prefetch_keys_total", service=PROBE_ID, key=key, outcome=outcome)
            for key in ("patient", "conditions", "observations")}


def test_prefetch_keys_are_counted_supplied_null_and_fetched(local_server):
    base = local_server.serve_empty_fhir()
    before = {outcome: prefetch_counts(outcome) for outcome in ("supplied", "null", "fetched")}
    fhir_before = metric("cds_fhir_request_duration_seconds_count", status="200")
    body = patient_view_request(prefetch={"patient": {"resourceType": "Patient", "id": "p1"}, "conditions": None},
                                fhirServer=base, fhirAuthorization={"access_token": secret_token(),
                                                                    "token_type": "Bearer", "expires_in": 300,
                                                                    "scope": "user/*.read", "subject": "cds"})
    response = probe_app().test_client().post(SERVICE_PATH, json=body)
    assert response.status_code == 200, response.get_json()
    assert prefetch_counts("supplied")["patient"] == before["supplied"]["patient"] + 1
    assert prefetch_counts("null")["conditions"] == before["null"]["conditions"] + 1
    assert prefetch_counts("fetched")["observations"] == before["fetched"]["observations"] + 1
    assert metric("cds_fhir_request_duration_seconds_count", status="200") == fhir_before + 1


def test_a_failed_fetch_counts_the_key_the_fhir_status_and_the_412(local_server):
    local_server.serve_json("/fhir", {"resourceType": "OperationOutcome", "issue": []}, status=503)
    failed_before = prefetch_counts("failed")["observations"]
    errors_before = metric("cds_fhir_request_errors_total", status="503")
    status_before = metric("cds_fhir_request_duration_seconds_count", status="503")
    precondition_before = metric("cds_precondition_failed_total", service=PROBE_ID)
    body = patient_view_request(prefetch={"patient": None, "conditions": None}, fhirServer=local_server.root + "/fhir",
                                fhirAuthorization={"access_token": secret_token(), "token_type": "Bearer",
                                                   "expires_in": 300, "scope": "user/*.read", "subject": "cds"})
    assert probe_app().test_client().post(SERVICE_PATH, json=body).status_code == 412
    assert prefetch_counts("failed")["observations"] == failed_before + 1
    assert metric("cds_fhir_request_errors_total", status="503") == errors_before + 1
    assert metric("cds_fhir_request_duration_seconds_count", status="503") == status_before + 1
    assert metric("cds_precondition_failed_total", service=PROBE_ID) == precondition_before + 1


def test_an_unreachable_fhir_server_is_a_connection_error():
    import socket
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = metric("cds_fhir_request_errors_total", status="connection_error")
    body = patient_view_request(prefetch={"patient": None, "conditions": None}, fhirServer=f"http://127.0.0.1:{port}/fhir",
                                fhirAuthorization={"access_token": secret_token(), "token_type": "Bearer",
                                                   "expires_in": 300, "scope": "user/*.read", "subject": "cds"})
    assert probe_app().test_client().post(SERVICE_PATH, json=body).status_code == 412
    assert metric("cds_fhir_request_errors_total", status="connection_error") == before + 1


def test_a_refused_fhir_server_counts_the_keys_as_failed():
    before = prefetch_counts("failed")
    precondition_before = metric("cds_precondition_failed_total", service=PROBE_ID)
    body = patient_view_request(prefetch={}, fhirServer="https://not-allowed.example/fhir")
    assert probe_app().test_client().post(SERVICE_PATH, json=body).status_code == 412
    after = prefetch_counts("failed")
    assert all(after[key] == before[key] + 1 for key in after)
    assert metric("cds_precondition_failed_total", service=PROBE_ID) == precondition_before + 1


# -- authentication and feedback ------------------------------------------------------------------------

def test_auth_failures_are_counted_by_reason(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    client = app.test_client()
    reasons = ("missing_token", "audience", "replay", "signature")
    before = {reason: metric("cds_auth_failures_total", reason=reason) for reason in reasons}
    assert client.post(SERVICE_PATH, json=patient_view_request()).status_code == 401
    assert client.post(SERVICE_PATH, json=patient_view_request(),
                       headers=bearer(mint(es384, claims(aud="https://elsewhere.example/cds-services/probe")))
                       ).status_code == 401
    token = mint(es384)
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == 200
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == 401
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(forged)).status_code == 401
    for reason in reasons:
        assert metric("cds_auth_failures_total", reason=reason) == before[reason] + 1, reason


def auth_reasons_in_source() -> list[str]:
    """Every reason the auth layer can give, read from its source so new ones are caught."""
    text = "\n".join(path.read_text() for path in sorted((ROOT / "service" / "auth").glob("*.py")))
    quoted = r"""f?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    found = re.findall(r"(?:refuse|InvalidToken)\(\s*" + quoted, text)
    found += [literal for literal in re.findall(r"return " + quoted, text)  # algorithms.refusal / key_mismatch
              if re.match(r".(alg|key|curve)\b", literal)]
    # f-string fields as they are filled in at run time: {name} is a time claim, the rest anything.
    return sorted({re.sub(r"\{[^}]*\}", "x", literal[1:-1].replace("{name}", "exp")) for literal in found})


def test_every_auth_refusal_reason_has_a_bounded_metric_label():
    reasons = auth_reasons_in_source()
    assert len(reasons) > 20
    unlabelled = [reason for reason in reasons if metrics.auth_failure_label(reason) == "other"]
    assert not unlabelled, f"add these to metrics.AUTH_FAILURE_REASONS: {unlabelled}"


@pytest.mark.parametrize("reason,label", [
    ("no Authorization header", "missing_token"),
    ("jti was already used (replay)", "replay"),
    ("token has expired (exp)", "expired"),
    ("token is not valid yet (nbf)", "time_claims"),
    ("alg 'HS256' is symmetric (HMAC) and never accepted", "algorithm"),
    ("iss (with this tenant) is not a trusted client", "untrusted_issuer"),
    ("aud is not the URL that was called", "audience"),
    ("kid is not a key of this client", "key"),
    ("kid is missing or not a string", "malformed"),
    ("signature does not verify", "signature"),
    ("something new", "other"),
])
def test_auth_failure_labels(reason, label):
    assert metrics.auth_failure_label(reason) == label


def test_feedback_outcomes_are_bounded():
    before = {outcome: metric("cds_feedback_total", outcome=outcome) for outcome in ("accepted", "overridden", "other")}
    metrics.count_feedback("accepted")
    metrics.count_feedback("overridden")
    metrics.count_feedback(secret_token())
    for outcome, value in before.items():
        assert metric("cds_feedback_total", outcome=outcome) == value + 1


# -- the endpoint ---------------------------------------------------------------------------------------

def test_metrics_endpoint_serves_every_metric_in_prometheus_text_format():
    client = app_with().test_client()
    client.get("/cds-services")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    for name in ("cds_request_duration_seconds", "cds_requests_total", "cds_cards_total", "cds_prefetch_keys_total",
                 "cds_precondition_failed_total", "cds_fhir_request_duration_seconds", "cds_fhir_request_errors_total",
                 "cds_auth_failures_total", "cds_feedback_total"):
        assert f"# HELP {name.removesuffix('_total')}" in text or f"# HELP {name}" in text, name


def test_the_metrics_module_is_the_only_place_metrics_are_defined():
    definitions = re.compile(r"\b(Counter|Histogram|Gauge|Summary|Info|Enum)\(")
    for path in (ROOT / "service").rglob("*.py"):
        if path.name != "metrics.py":
            assert not definitions.search(path.read_text()), f"{path.relative_to(ROOT)} defines a metric"
    assert Path(metrics.__file__).name == "metrics.py"
