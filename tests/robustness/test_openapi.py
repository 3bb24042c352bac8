"""The OpenAPI document: served without authentication, in step with the routes and with docs/openapi.json,
a valid OpenAPI 3.1 document whose schemas the service's real answers satisfy."""
from __future__ import annotations

import json

import jsonschema
import pytest
from referencing import Registry, Resource

from hooks.registry import ALL_SERVICES
from service import create_app
from service.openapi import build_openapi, document_text
from tests.conftest import FIXTURE_AS_OF, make_settings
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests

COMMITTED = ROOT / "docs" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app():
    app = create_app(make_settings(), clock=lambda: FIXTURE_AS_OF)
    yield app
    app.extensions["fasciculation_cds"].fhir_client.close()


@pytest.fixture(scope="module")
def document(app):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def openapi_path(rule: str) -> str:
    return rule.replace("<", "{").replace(">", "}")


def test_every_route_is_documented_and_every_documented_operation_is_a_route(app, document):
    routes = {(openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" for method in rule.methods if method.lower() in METHODS}
    documented = {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}
    assert routes == documented


def test_the_committed_copy_is_the_generated_document(document):
    regenerate = "regenerate it: .venv/bin/fasciculation-cds openapi > docs/openapi.json"
    assert COMMITTED.read_text() == document_text(ALL_SERVICES), regenerate
    assert json.loads(COMMITTED.read_text()) == document


def test_it_is_served_without_authentication_in_production(tmp_path):
    from tests.auth.support import production_app, client_entry, new_key
    app = production_app(tmp_path, client_entry(new_key()))
    try:
        client = app.test_client()
        assert client.get("/cds-services").status_code == 401
        served = client.get("/openapi.json")
        assert served.status_code == 200
        assert served.get_json() == build_openapi(app.extensions["fasciculation_cds"].services.values())
    finally:
        app.extensions["fasciculation_cds"].fhir_client.close()


def test_every_operation_names_its_statuses_and_security(document):
    operations = {(path, method): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}
    service = operations[("/cds-services/{service_id}", "post")]
    assert set(service["responses"]) == {"200", "400", "401", "403", "404", "412", "413", "415", "503"}
    assert service["security"] == [{"cdsHooksJwt": []}]
    assert service["parameters"][0]["schema"]["enum"] == [s.id for s in ALL_SERVICES]
    assert set(operations[("/cds-services/{service_id}/feedback", "post")]["responses"]) == {
        "200", "400", "401", "404", "413", "415", "503"}
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert operations[(path, "get")]["security"] == []
    for status, response in service["responses"].items():
        if status != "200":
            assert "application/fhir+json" in response["content"]


def validator(document, name: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}))
    return jsonschema.Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry,
                                           format_checker=jsonschema.FormatChecker())


def test_every_schema_is_valid_json_schema(document):
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_fixtures_and_their_answers_fit_the_contract(app, document):
    requests, cards = validator(document, "PatientViewRequest"), validator(document, "CdsResponse")
    client = app.test_client()
    for name, request in fixture_requests():
        requests.validate(request)
        response = client.post(f"/cds-services/{REVIEW_SERVICE}", json=request)
        assert response.status_code == 200, name
        cards.validate(response.get_json())
    validator(document, "Discovery").validate(client.get("/cds-services").get_json())
    validator(document, "Readiness").validate(client.get("/readyz").get_json())
    validator(document, "AnalyticsReport").validate(client.get("/analytics.json").get_json())
    outcome = client.post(f"/cds-services/{REVIEW_SERVICE}", json={"hook": "patient-view"})
    assert outcome.status_code == 400
    validator(document, "OperationOutcome").validate(outcome.get_json())


def test_the_contract_says_what_the_code_checks(document):
    """The rules added in JSON Schema (service/openapi.py _refine) refuse what the service refuses."""
    request = validator(document, "PatientViewRequest")
    valid = dict(fixture_requests())["02-twitch-with-weakness"]
    request.validate(valid)
    for broken in ({**valid, "hook": "order-select"},
                   {**{k: v for k, v in valid.items() if k != "fhirServer"},
                    "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 1,
                                          "scope": "s", "subject": "x"}},  # without fhirServer
                   {**valid, "prefetch": {"patient": "Patient/1"}},
                   {**valid, "hookInstance": "a b"}):
        assert not request.is_valid(broken)
    item = validator(document, "FeedbackItem")
    accepted = {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-15T09:00:00Z"}
    assert not item.is_valid(accepted)
    assert item.is_valid({**accepted, "acceptedSuggestions": []})
    assert not item.is_valid({**accepted, "outcome": "overridden", "overrideReason": {}})
    assert not item.is_valid({**accepted, "acceptedSuggestions": [], "outcomeTimestamp": "2026-11-15T09:00:60Z"})
