"""Every malformed call gets a 4xx with an OperationOutcome saying what is wrong."""
import pytest

from service import create_app
from tests.conftest import PROBE_SERVICE, make_settings, patient_view_request

URL = "/cds-services/probe"


def assert_outcome(response, status, *fragments, expression=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(issue["severity"] == "error" for issue in body["issue"])
    text = " ".join(issue["diagnostics"] for issue in body["issue"])
    for fragment in fragments:
        assert fragment in text
    if expression:
        assert any(expression in issue.get("expression", []) for issue in body["issue"])
    return body


def test_a_valid_call_is_answered_with_cards(probe_client):
    response = probe_client.post(URL, json=patient_view_request())
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["summary"] == "probe saw 1 resources"


def test_unknown_service_is_404(probe_client):
    assert_outcome(probe_client.post("/cds-services/nope", json=patient_view_request()), 404, "'nope'")


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"a": 1,}'])
def test_malformed_json_is_400(probe_client, body):
    response = probe_client.post(URL, data=body, content_type="application/json")
    assert_outcome(response, 400, "not valid JSON")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_400(probe_client, body):
    assert_outcome(probe_client.post(URL, data=body, content_type="application/json"), 400, "JSON object")


def test_deeply_nested_json_is_400_not_a_crash(probe_client):
    body = b'{"hook": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_outcome(probe_client.post(URL, data=body, content_type="application/json"), 400)


def test_wrong_content_type_is_415(probe_client):
    response = probe_client.post(URL, data="hook=patient-view", content_type="application/x-www-form-urlencoded")
    assert_outcome(response, 415, "application/json")


def test_fhir_json_content_type_is_accepted(probe_client):
    import json
    response = probe_client.post(URL, data=json.dumps(patient_view_request()), content_type="application/fhir+json")
    assert response.status_code == 200


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400(probe_client, field):
    body = patient_view_request()
    del body[field]
    assert_outcome(probe_client.post(URL, json=body), 400, field, expression=field)


@pytest.mark.parametrize("field", ["patientId", "userId"])
def test_missing_context_field_is_400(probe_client, field):
    body = patient_view_request()
    del body["context"][field]
    assert_outcome(probe_client.post(URL, json=body), 400, f"context.{field}", expression=f"context.{field}")


@pytest.mark.parametrize("user_id", ["dr-1", "Device/1", "Practitioner/", "Practitioner/a b", 42, "Practitioner/1/_history/2"])
def test_malformed_user_id_is_400(probe_client, user_id):
    body = patient_view_request()
    body["context"]["userId"] = user_id
    assert_outcome(probe_client.post(URL, json=body), 400, "context.userId")


@pytest.mark.parametrize("user_id", ["Practitioner/dr-1", "PractitionerRole/r.1", "Patient/p1", "RelatedPerson/rp1"])
def test_every_user_type_of_the_hook_is_accepted(probe_client, user_id):
    body = patient_view_request()
    body["context"]["userId"] = user_id
    assert probe_client.post(URL, json=body).status_code == 200


@pytest.mark.parametrize("patient_id", ["", "has space", "x" * 65, None, 7, "../Patient/1"])
def test_malformed_patient_id_is_400(probe_client, patient_id):
    body = patient_view_request()
    body["context"]["patientId"] = patient_id
    assert_outcome(probe_client.post(URL, json=body), 400, "context.patientId")


def test_hook_that_does_not_match_the_service_is_400(probe_client):
    body = patient_view_request(hook="order-sign")
    assert_outcome(probe_client.post(URL, json=body), 400, "'patient-view'", expression="hook")


def test_fhir_authorization_without_fhir_server_is_400(probe_client):
    body = patient_view_request(fhirAuthorization={
        "access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
        "scope": "user/Patient.read", "subject": "cds-service"})
    body_out = assert_outcome(probe_client.post(URL, json=body), 400, "fhirServer")
    assert "secret-token" not in str(body_out)


@pytest.mark.parametrize("change", [
    {"token_type": "MAC"}, {"expires_in": "300 s"}, {"expires_in": -1}, {"access_token": ""}, {"scope": None},
])
def test_malformed_fhir_authorization_is_400(probe_client, change):
    authorization = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                     "scope": "user/Patient.read", "subject": "cds-service", **change}
    body = patient_view_request(fhirServer="https://ehr.example.org/fhir", fhirAuthorization=authorization)
    response = probe_client.post(URL, json=body)
    assert_outcome(response, 400, "fhirAuthorization.")
    assert "secret-token" not in response.get_data(as_text=True)


@pytest.mark.parametrize("server", ["not a url", "ftp://ehr.example.org/fhir", 12])
def test_malformed_fhir_server_is_400(probe_client, server):
    assert_outcome(probe_client.post(URL, json=patient_view_request(fhirServer=server)), 400, "fhirServer")


@pytest.mark.parametrize("hook_instance", ["", "   ", 123, "x" * 129])
def test_malformed_hook_instance_is_400(probe_client, hook_instance):
    assert_outcome(probe_client.post(URL, json=patient_view_request(hookInstance=hook_instance)), 400, "hookInstance")


@pytest.mark.parametrize("field,value", [("context", []), ("prefetch", "x"), ("extension", [1])])
def test_wrongly_typed_objects_are_400(probe_client, field, value):
    assert_outcome(probe_client.post(URL, json=patient_view_request(**{field: value})), 400, field)


def test_unknown_fields_and_extensions_are_ignored(probe_client):
    body = patient_view_request(
        extension={"com.example.flag": True}, somethingNew={"x": 1}, fhirServer="https://ehr.example.org/fhir")
    body["context"]["encounterId"] = "enc-1"
    body["context"]["futureField"] = {"nested": [1]}
    assert probe_client.post(URL, json=body).status_code == 200


def test_several_problems_are_reported_together(probe_client):
    body = {"hook": "patient-view", "context": {"userId": "bad"}}
    outcome = assert_outcome(probe_client.post(URL, json=body), 400)
    assert len(outcome["issue"]) >= 2


def test_prefetch_value_that_is_not_a_resource_is_400(probe_client):
    body = patient_view_request()
    body["prefetch"]["conditions"] = ["not", "a", "bundle"]
    assert_outcome(probe_client.post(URL, json=body), 400, "prefetch.conditions", expression="prefetch.conditions")


def test_wrong_method_is_405_with_allow_header(probe_client):
    response = probe_client.get(URL)
    assert_outcome(response, 405)
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404_outcome(probe_client):
    assert_outcome(probe_client.get("/nothing-here"), 404)


def test_oversized_body_is_413():
    app = create_app(make_settings(max_body_bytes=2048), services=[PROBE_SERVICE])
    body = patient_view_request(extension={"com.example.pad": "x" * 4096})
    assert_outcome(app.test_client().post(URL, json=body), 413)


def test_a_bug_in_a_handler_is_a_500_outcome_without_internals(caplog):
    from hooks.declaration import CdsService

    def broken(call):
        raise RuntimeError("internal detail that must not leak")
    service = CdsService(id="broken", hook="patient-view", title="t", description="d", handler=broken)
    app = create_app(make_settings(), services=[service])
    response = app.test_client().post("/cds-services/broken", json=patient_view_request(prefetch={}))
    body = assert_outcome(response, 500)
    assert "internal detail" not in str(body)
