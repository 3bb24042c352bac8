"""The prefetch fallback against a real FHIR server engine over real HTTP (nothing mocked)."""
import time

import pytest

from service import create_app
from tests.conftest import FIXTURE_AS_OF, PROBE_SERVICE, make_settings, patient_view_request
from tests.secrets import secret_token

pytestmark = pytest.mark.integration
URL = "/cds-services/probe"


def chart(patient_id="fb-1", observations=25):
    resources = [{"resourceType": "Patient", "id": patient_id, "gender": "female", "birthDate": "1970-01-01"}]
    resources += [{"resourceType": "Condition", "id": f"{patient_id}-c{i}", "subject": {"reference": f"Patient/{patient_id}"},
                   "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R25.3"}]}}
                  for i in range(2)]
    resources += [{"resourceType": "Observation", "id": f"{patient_id}-o{i}", "status": "final",
                   "subject": {"reference": f"Patient/{patient_id}"},
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                   "effectiveDateTime": f"2026-{1 + i % 10:02d}-{1 + i:02d}T08:00:00Z",
                   "valueQuantity": {"value": 4.0, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}
                  for i in range(observations)]
    return resources


@pytest.fixture
def loaded(clean_fhir_server):
    clean_fhir_server.load_resources(chart())
    clean_fhir_server.clear_log()
    return clean_fhir_server


def app_for(**settings):
    return create_app(make_settings(**settings), services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)


def call(app, server_base, token, prefetch=None, patient_id="fb-1"):
    body = patient_view_request(patient_id, prefetch=prefetch if prefetch is not None else {}, fhirServer=server_base)
    if token is not None:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "fasciculation-cds"}
    return app.test_client().post(URL, json=body)


def counts(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(pair.split("=") for pair in response.get_json()["cards"][0]["detail"].split(", "))


def fetched_types(server):
    return sorted(entry["path"].split("/fhir/R4/")[1].split("?")[0].split("/")[0] for entry in server.request_log())


def test_absent_keys_are_fetched_with_the_bearer_token(loaded):
    token = secret_token()
    response = call(app_for(), loaded.auth_base(token), token)
    assert counts(response) == {"conditions": "2", "observations": "25", "patient": "1"}
    log = loaded.request_log()
    assert {entry["authorization"] for entry in log} == {f"Bearer {token}"}
    assert fetched_types(loaded) == ["Condition", "Observation", "Observation", "Observation", "Patient"]


def test_null_keys_are_not_fetched(loaded):
    token = secret_token()
    response = call(app_for(), loaded.auth_base(token), token, prefetch={"observations": None, "conditions": None})
    assert counts(response) == {"conditions": "0", "observations": "0", "patient": "1"}
    assert fetched_types(loaded) == ["Patient"]


def test_operation_outcome_keys_are_refetched(loaded):
    token = secret_token()
    prefetch = {"patient": {"resourceType": "Patient", "id": "fb-1"}, "observations": None,
                "conditions": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}}
    assert counts(call(app_for(), loaded.auth_base(token), token, prefetch)) == {
        "conditions": "2", "observations": "0", "patient": "1"}
    assert fetched_types(loaded) == ["Condition"]


def test_pages_are_followed_up_to_the_page_cap(loaded):
    token = secret_token()
    capped = call(app_for(fhir_max_pages=2), loaded.auth_base(token), token,
                  prefetch={"patient": None, "conditions": None})
    assert counts(capped)["observations"] == "20"


def test_a_supplied_first_page_is_completed_from_its_next_link(loaded):
    import requests
    token = secret_token()
    base = loaded.auth_base(token)
    first_page = requests.get(f"{base}/Observation?patient=fb-1&_sort=-date&_count=10",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert len(first_page["entry"]) == 10
    loaded.clear_log()
    prefetch = {"patient": None, "conditions": None, "observations": first_page}
    assert counts(call(app_for(), base, token, prefetch))["observations"] == "25"
    assert len(loaded.request_log()) == 2


def test_without_a_token_only_allowlisted_open_servers_are_queried(loaded):
    assert call(app_for(), loaded.base_url, None).status_code == 412
    assert loaded.request_log() == []
    allowed = app_for(open_fhir_servers=(loaded.base_url,))
    assert counts(call(allowed, loaded.base_url, None))["observations"] == "25"
    assert all(entry["authorization"] in (None, "") for entry in loaded.request_log())


def assert_412(response, *keys):
    assert response.status_code == 412, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    named = {expression for issue in outcome["issue"] for expression in issue.get("expression", [])}
    assert {f"prefetch.{key}" for key in keys} <= named
    return " ".join(issue["diagnostics"] for issue in outcome["issue"])


def test_wrong_token_gives_401_upstream_and_412_here(loaded):
    token = secret_token()
    text = assert_412(call(app_for(), loaded.auth_base(secret_token()), token, {"patient": None, "conditions": None}),
                      "observations")
    assert "HTTP 401" in text


@pytest.mark.parametrize("fault,params,reason", [
    ("status", (500,), "HTTP 500"),
    ("status", (404,), "HTTP 404"),
    ("malformed", (), "malformed JSON"),
    ("html", (), "non-JSON"),
    ("loop", (), "loop"),
    ("reset", (), "could not reach"),
])
def test_fhir_faults_give_412_naming_the_key(loaded, fault, params, reason):
    token = secret_token()
    base = loaded.fault_base(fault, *params, token=token)
    text = assert_412(call(app_for(), base, token, {"patient": None, "conditions": None}), "observations")
    assert reason in text


def test_oversized_response_is_refused(loaded):
    token = secret_token()
    base = loaded.fault_base("huge", 3, token=token)
    text = assert_412(call(app_for(fhir_max_response_bytes=1024 * 1024), base, token,
                           {"patient": None, "conditions": None}), "observations")
    assert "larger than" in text


def test_redirect_to_another_origin_is_not_followed(loaded, fhir_server):
    token = secret_token()
    elsewhere = fhir_server.base_url.replace("127.0.0.1", "localhost")
    base = loaded.fault_base("redirect", elsewhere, token=token)
    text = assert_412(call(app_for(), base, token, {"patient": None, "conditions": None}), "observations")
    assert "another origin" in text


def test_deadline_exceeded_gives_412_before_the_slow_server_answers(loaded):
    token = secret_token()
    base = loaded.fault_base("delay", 5000, token=token)
    started = time.monotonic()
    text = assert_412(call(app_for(fhir_deadline_seconds=0.5), base, token), "patient", "conditions", "observations")
    # Functional, not a benchmark: the call must not wait for the 5 s server.
    assert time.monotonic() - started < 4.0
    assert "deadline" in text


def test_the_service_recovers_after_faults(loaded):
    token = secret_token()
    app = app_for(fhir_deadline_seconds=0.5)
    assert call(app, loaded.fault_base("delay", 3000, token=token), token).status_code == 412
    assert call(app, loaded.fault_base("status", 503, token=token), token).status_code == 412
    assert counts(call(app, loaded.auth_base(token), token))["observations"] == "25"
