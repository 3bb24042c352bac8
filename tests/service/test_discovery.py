from hooks.declaration import CdsService, HookResult
from service import create_app
from tests.conftest import PROBE_SERVICE, make_settings


def test_discovery_lists_each_declared_service_exactly(probe_client):
    response = probe_client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"services": [{
        "hook": "patient-view",
        "title": "Probe",
        "description": "Echoes the gathered data.",
        "id": "probe",
        "prefetch": PROBE_SERVICE.prefetch,
    }]}


def test_optional_discovery_fields_are_omitted_not_empty():
    bare = CdsService(id="bare", hook="patient-view", title="Bare", description="d",
                      handler=lambda call: HookResult(cards=[]))
    app = create_app(make_settings(), services=[bare])
    entry = app.test_client().get("/cds-services").get_json()["services"][0]
    assert set(entry) == {"hook", "title", "description", "id"}


def test_no_services_gives_an_empty_list():
    app = create_app(make_settings(), services=[])
    assert app.test_client().get("/cds-services").get_json() == {"services": []}


def test_discovery_and_calls_answer_cors_preflight(probe_client):
    for path in ("/cds-services", "/cds-services/probe"):
        response = probe_client.options(path, headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        })
        assert response.status_code == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed


def test_cors_header_on_actual_responses_including_errors(probe_client):
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    assert probe_client.get("/cds-services", headers=origin).headers["Access-Control-Allow-Origin"] == "*"
    error = probe_client.post("/cds-services/nope", json={}, headers=origin)
    assert error.status_code == 404
    assert error.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origins_can_be_restricted():
    app = create_app(make_settings(cors_origins=("https://ehr.example.org",)), services=[PROBE_SERVICE])
    client = app.test_client()
    allowed = client.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    refused = client.get("/cds-services", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_service_declaration_refuses_tokens_outside_cds_hooks_2():
    import pytest
    with pytest.raises(ValueError, match="not a CDS Hooks 2.0 token"):
        CdsService(id="x", hook="patient-view", title="t", description="d",
                   handler=lambda call: HookResult(cards=[]),
                   prefetch={"meds": "MedicationRequest?patient={{context.patient.id}}"})
    with pytest.raises(ValueError, match="URL-safe"):
        CdsService(id="has space", hook="patient-view", title="t", description="d",
                   handler=lambda call: HookResult(cards=[]))
