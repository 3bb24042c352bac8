"""Tolerance that costs nothing (issue 15, item 11): what real clients send that the letter of CDS Hooks
2.0 does not allow, but that means something unambiguous.

- `null` for optional request fields (Da Vinci CRD's reference requests send `"fhirAuthorization": null`
  and `"encounterId": null`);
- a UTF-8 byte-order mark before the JSON;
- `fhirAuthorization.expires_in` as a numeric string (as OAuth token responses are passed on);
- a trailing slash on the service URL, and the CDS Hooks Sandbox's doubled slash after a discovery
  URL registered with one, with the JWT `aud` spelt the same way;
- `fhirAuthorization.patient` (CDS Hooks 3.0).
"""
from __future__ import annotations

import codecs
import json

import pytest

from tests.auth.conftest import close_apps, es384, local_server  # noqa: F401 (fixtures)
from tests.auth.support import (DISCOVERY_PATH, PUBLIC_BASE, SERVICE_PATH, app_with, bearer, claims, client_entry,
                                fetching_request, mint, production_app)
from tests.conftest import patient_view_request
from tests.secrets import secret_token


def authorization(**changes) -> dict:
    return {"access_token": secret_token(), "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read",
            "subject": "cds", **changes}


@pytest.mark.parametrize("nulls", [
    {"fhirAuthorization": None},
    {"fhirAuthorization": None, "fhirServer": None},
    {"fhirServer": None},
    {"extension": None},
    {"context": {"userId": "Practitioner/dr-1", "patientId": "p1", "encounterId": None}},
])
def test_null_optional_fields_are_taken_as_absent(probe_client, nulls):
    response = probe_client.post(SERVICE_PATH, json=patient_view_request(**nulls))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_the_da_vinci_crd_shape_with_nulls_is_served(probe_client):
    body = patient_view_request(fhirAuthorization=None,
                                context={"userId": "Practitioner/dr-1", "patientId": "p1", "encounterId": None})
    assert probe_client.post(SERVICE_PATH, json=body).status_code == 200


def test_a_null_prefetch_means_none_was_sent(local_server):
    base = local_server.serve_empty_fhir()
    app = app_with()
    body = fetching_request(base)
    body["prefetch"] = None
    response = app.test_client().post(SERVICE_PATH, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(local_server.requests) == 3  # every key fetched


@pytest.mark.parametrize("field,value", [("hook", None), ("hookInstance", None), ("context", None)])
def test_required_fields_must_still_hold_a_value(probe_client, field, value):
    response = probe_client.post(SERVICE_PATH, json=patient_view_request(**{field: value}))
    assert response.status_code == 400
    assert any(field in issue["expression"] for issue in response.get_json()["issue"])


@pytest.mark.parametrize("context_field", ["userId", "patientId"])
def test_required_context_fields_must_still_hold_a_value(probe_client, context_field):
    context = {"userId": "Practitioner/dr-1", "patientId": "p1", context_field: None}
    response = probe_client.post(SERVICE_PATH, json=patient_view_request(context=context))
    assert response.status_code == 400


def test_a_null_token_for_a_server_still_needs_no_server_but_a_token_does(probe_client):
    with_token = patient_view_request(fhirServer=None, fhirAuthorization=authorization())
    assert probe_client.post(SERVICE_PATH, json=with_token).status_code == 400  # cds-r-1


@pytest.mark.parametrize("path", [SERVICE_PATH, SERVICE_PATH + "/feedback"])
def test_a_utf8_byte_order_mark_is_ignored(probe_client, path):
    body = patient_view_request() if path == SERVICE_PATH else {"feedback": [{
        "card": "9f2c6a8e-3f1b-4b53-9d55-0c1d7b0d2a11", "outcome": "overridden",
        "outcomeTimestamp": "2026-11-15T09:00:00Z"}]}
    data = codecs.BOM_UTF8 + json.dumps(body).encode()
    response = probe_client.post(path, data=data, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_bom_alone_or_in_the_middle_is_still_not_json(probe_client):
    assert probe_client.post(SERVICE_PATH, data=codecs.BOM_UTF8, content_type="application/json").status_code == 400
    data = b'{"hook": ' + codecs.BOM_UTF8 + b'"patient-view"}'
    assert probe_client.post(SERVICE_PATH, data=data, content_type="application/json").status_code == 400


def test_expires_in_as_a_numeric_string_is_used(local_server):
    base = local_server.serve_empty_fhir()
    body = fetching_request(base)
    body["fhirAuthorization"]["expires_in"] = "3600"
    response = app_with().test_client().post(SERVICE_PATH, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert {r.authorization for r in local_server.requests} == {"Bearer " + body["fhirAuthorization"]["access_token"]}


@pytest.mark.parametrize("value", ["300 s", "-5", "3.5", "", "1e3", True])
def test_expires_in_that_is_not_a_count_of_seconds_is_400(probe_client, value):
    body = patient_view_request(fhirServer="https://fhir.test/R4", fhirAuthorization=authorization(expires_in=value))
    response = probe_client.post(SERVICE_PATH, json=body)
    assert response.status_code == 400
    assert "fhirAuthorization.expires_in" in response.get_json()["issue"][0]["expression"]


@pytest.mark.parametrize("patient", ["p1", None])
def test_fhir_authorization_patient_from_cds_hooks_3_is_accepted(local_server, patient):
    base = local_server.serve_empty_fhir()
    body = fetching_request(base)
    body["fhirAuthorization"]["patient"] = patient
    response = app_with().test_client().post(SERVICE_PATH, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("path", [SERVICE_PATH + "/", "/cds-services//probe", "/cds-services//probe/"])
def test_a_trailing_or_doubled_slash_reaches_the_service(probe_client, path):
    response = probe_client.post(path, json=patient_view_request())
    assert response.status_code == 200, (path, response.status_code)


@pytest.mark.parametrize("path", [DISCOVERY_PATH + "/", DISCOVERY_PATH + "//"])
def test_discovery_with_a_trailing_slash(probe_client, path):
    assert probe_client.get(path).status_code == 200


@pytest.mark.parametrize("path", [SERVICE_PATH + "/", "/cds-services//probe"])
def test_in_production_the_aud_may_be_spelt_as_the_url_called_and_the_jti_is_spent_once(tmp_path, es384, path):
    """The sandbox signs the URL it calls. One call, one jti: no redirect that would replay the token."""
    app = production_app(tmp_path, client_entry(es384))
    client = app.test_client()
    token = mint(es384, claims(aud=PUBLIC_BASE + path))
    assert client.post(path, json=patient_view_request(), headers=bearer(token)).status_code == 200
    assert client.post(path, json=patient_view_request(), headers=bearer(token)).status_code == 401  # replay
    canonical = mint(es384, claims(aud=PUBLIC_BASE + SERVICE_PATH))
    assert client.post(path, json=patient_view_request(), headers=bearer(canonical)).status_code == 200


def test_a_slash_does_not_open_another_services_audience(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    token = mint(es384, claims(aud=PUBLIC_BASE + "/cds-services/other/"))
    assert app.test_client().post(SERVICE_PATH + "/", json=patient_view_request(), headers=bearer(token)).status_code == 401
