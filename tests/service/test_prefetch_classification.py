"""Prefetch keys classified per CDS Hooks 2.0, without any FHIR server involved."""
import pytest

from hooks.declaration import render_template
from service.prefetch import fhir_access
from service.ssrf import LOOPBACK_ALLOWED, PRIVATE_ALLOWED
from tests.conftest import make_settings, patient_view_request

URL = "/cds-services/probe"


def detail(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"][0]["detail"]


def test_supplied_resource_and_bundle_entries_reach_the_handler(probe_client):
    body = patient_view_request()
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Condition", "id": "c1"}, "search": {"mode": "match"}},
        {"resource": {"resourceType": "Condition", "id": "c2"}},
        {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
        {"fullUrl": "no resource here"},
        "not even an object",
    ]}
    assert detail(probe_client.post(URL, json=body)) == "conditions=2, observations=0, patient=1"


def test_null_means_no_data_and_is_not_refetched(probe_client):
    body = patient_view_request(prefetch={"patient": None, "conditions": None, "observations": None})
    assert detail(probe_client.post(URL, json=body)) == "conditions=0, observations=0, patient=0"


def test_keys_the_service_did_not_ask_for_are_ignored(probe_client):
    body = patient_view_request()
    body["prefetch"]["somebodyElses"] = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "X"}}]}
    assert detail(probe_client.post(URL, json=body)) == "conditions=0, observations=0, patient=1"


def test_absent_key_without_fhir_server_is_412_naming_the_key(probe_client):
    body = patient_view_request()
    del body["prefetch"]["observations"]
    response = probe_client.post(URL, json=body)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "processing"
    assert "observations" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["expression"] == ["prefetch.observations"]


def test_operation_outcome_value_is_refetched_so_without_access_it_is_412(probe_client):
    body = patient_view_request()
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": []}
    response = probe_client.post(URL, json=body)
    assert response.status_code == 412
    assert "conditions" in response.get_json()["issue"][0]["diagnostics"]


def test_no_prefetch_at_all_and_no_server_names_every_key(probe_client):
    response = probe_client.post(URL, json=patient_view_request(prefetch={}))
    assert response.status_code == 412
    assert response.get_json()["issue"][0]["expression"] == [
        "prefetch.conditions", "prefetch.observations", "prefetch.patient"]


def test_fhir_server_without_token_is_not_queried_unless_allowlisted(probe_client):
    body = patient_view_request(fhirServer="https://ehr.example.org/fhir", prefetch={})
    assert probe_client.post(URL, json=body).status_code == 412


@pytest.mark.parametrize("request_fields,open_servers,expected", [
    ({}, (), None),
    ({"fhirServer": "https://ehr.example.org/fhir"}, (), None),
    ({"fhirServer": "https://open.example.org/fhir/"}, ("https://open.example.org/fhir",),
     ("https://open.example.org/fhir/", None)),
    ({"fhirServer": "https://ehr.example.org/fhir", "fhirAuthorization": {"access_token": "t"}}, (),
     ("https://ehr.example.org/fhir", "t")),
])
def test_fhir_access_rules(request_fields, open_servers, expected):
    access = fhir_access(request_fields, make_settings(open_fhir_servers=open_servers))
    assert (access and (access.base_url, access.bearer_token)) == expected


def test_access_token_never_appears_in_repr():
    access = fhir_access({"fhirServer": "https://e.org", "fhirAuthorization": {"access_token": "s3cr3t"}},
                         make_settings())
    assert "s3cr3t" not in repr(access)


@pytest.mark.parametrize("template,expected", [
    ("Patient/{{context.patientId}}", "Patient/p1"),
    ("Condition?patient={{ context.patientId }}&_count=5", "Condition?patient=p1&_count=5"),
    ("Practitioner/{{userPractitionerId}}", "Practitioner/dr-1"),
    ("PractitionerRole/{{userPractitionerRoleId}}", None),
    ("Encounter/{{context.encounterId}}", None),
])
def test_templates_render_from_context(template, expected):
    assert render_template(template, {"patientId": "p1", "userId": "Practitioner/dr-1"}) == expected


# Written for a mutant that survived (docs/mutation.md): the policy of each kind of unsigned call.
@pytest.mark.parametrize("request_fields, open_servers, policy", [
    # An allowlisted open server (CDS_OPEN_FHIR_SERVERS) may be on a private network: that is why it is listed.
    ({"fhirServer": "http://10.0.0.5/fhir"}, ("http://10.0.0.5/fhir",), PRIVATE_ALLOWED),
    # Any other unsigned call with a token reaches public servers and this machine only.
    ({"fhirServer": "http://127.0.0.1:8080/fhir", "fhirAuthorization": {"access_token": "t"}}, (), LOOPBACK_ALLOWED),
])
def test_unsigned_calls_get_the_address_policy_of_their_kind(request_fields, open_servers, policy):
    """prefetch._unsigned_call_access: the policy is given, not left to FhirAccess's PUBLIC_ONLY default."""
    access = fhir_access(request_fields, make_settings(open_fhir_servers=open_servers))
    assert access is not None and access.address_policy == policy
