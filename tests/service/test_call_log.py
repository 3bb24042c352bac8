"""Exactly one log line per service call, answered or refused, refusals at authentication included
(issue 15, item 12): `event=service_call` with ids, status and the authentication outcome, never
patient data or a token.

At c2304de a call refused by the JWT guard (401, or 503 with the replay store down) had no
`service_call` line at all, and an accepted one had two lines (`auth_ok` and `service_call`): the
tests marked "attack" FAIL there.
"""
from __future__ import annotations

import json
import logging

import pytest

from hooks.declaration import CdsService
from service import create_app
from tests.auth.conftest import close_apps, es384  # noqa: F401 (fixtures)
from tests.auth.support import (OPEN_APPS, PATIENT_KEY_SECRET, PUBLIC_BASE, SERVICE_PATH, bearer, claims,
                                client_entry, mint, write_clients)
from tests.conftest import FIXTURE_AS_OF, PROBE_SERVICE, make_settings, patient_view_request
from tests.secrets import secret_token

PATIENT = "patient-7f3c"  # a patient id no log line may carry


def boom(call):
    raise RuntimeError("handler bug")


BROKEN = CdsService(id="broken", hook="patient-view", title="Broken", description="Raises.", handler=boom)


@pytest.fixture
def app(tmp_path, es384):
    clients = write_clients(tmp_path, client_entry(es384, fhir_servers=["https://fhir.hospital.test/R4"]))
    settings = make_settings(mode="production", public_base_url=PUBLIC_BASE, patient_key_secret=PATIENT_KEY_SECRET,
                             trusted_clients_file=str(clients), data_dir=str(tmp_path / "data"))
    application = create_app(settings, services=[PROBE_SERVICE, BROKEN], clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(application)
    return application


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) in ("service_call", "auth_ok", "auth_failed",
                                                                         "auth_unavailable", "auth_skipped_development")]


def test_attack_every_service_call_has_exactly_one_line_whatever_its_answer(app, es384, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    body = patient_view_request(PATIENT)

    def token(path: str = SERVICE_PATH) -> dict[str, str]:
        return bearer(mint(es384, claims(aud=PUBLIC_BASE + path)))

    replayed = token()
    with_fhir_token = patient_view_request(PATIENT, fhirServer="https://fhir.hospital.test/R4", prefetch={},
                                           fhirAuthorization={"access_token": secret_token(), "token_type": "Bearer",
                                                              "expires_in": 300, "scope": "user/*.read",
                                                              "subject": "cds"})
    calls = [
        ("no token", lambda: client.post(SERVICE_PATH, json=body), 401),
        ("forged token", lambda: client.post(SERVICE_PATH, json=body, headers=bearer(
            mint(es384, claims(aud="https://elsewhere.test/x")))), 401),
        ("answered", lambda: client.post(SERVICE_PATH, json=body, headers=replayed), 200),
        ("replayed", lambda: client.post(SERVICE_PATH, json=body, headers=replayed), 401),
        ("trailing slash", lambda: client.post(SERVICE_PATH + "/", json=body, headers=token()), 200),
        ("invalid body", lambda: client.post(SERVICE_PATH, json={"hook": "patient-view"}, headers=token()), 400),
        ("unregistered fhirServer", lambda: client.post(SERVICE_PATH, json={
            **body, "fhirServer": "https://fhir.other.test/R4"}, headers=token()), 403),
        ("unknown service", lambda: client.post("/cds-services/nope", json=body,
                                                headers=token("/cds-services/nope")), 404),
        ("not json", lambda: client.post(SERVICE_PATH, data="x", content_type="text/plain", headers=token()), 415),
        ("data unobtainable", lambda: client.post(SERVICE_PATH, json=with_fhir_token, headers=token()), 412),
        ("handler bug", lambda: client.post("/cds-services/broken", json=body,
                                            headers=token("/cds-services/broken")), 500),
    ]
    for name, send, status in calls:
        caplog.clear()
        assert send().status_code == status, name
        found = lines(caplog)
        assert [(line.event, line.status) for line in found] == [("service_call", status)], name
        line = found[0]
        assert line.duration_ms is not None and line.duration_ms >= 0, name
        if status == 401:
            assert line.auth == "refused" and line.auth_reason and line.levelno == logging.WARNING, name
            assert line.hookInstance == body["hookInstance"], name
        elif name != "invalid body":
            assert line.auth == "ok" and line.iss == "https://ehr.hospital.test" and line.jti, name
        for record in caplog.records:  # nothing about the patient or any token, in any record
            text = json.dumps({k: str(v) for k, v in record.__dict__.items()}) + record.getMessage()
            assert PATIENT not in text, (name, record.getMessage())
            assert replayed["Authorization"][7:] not in text
            assert with_fhir_token["fhirAuthorization"]["access_token"] not in text


def test_attack_a_call_refused_because_the_replay_store_is_down_has_its_line(tmp_path, es384, caplog):
    clients = write_clients(tmp_path, client_entry(es384))
    settings = make_settings(mode="production", public_base_url=PUBLIC_BASE, patient_key_secret=PATIENT_KEY_SECRET,
                             trusted_clients_file=str(clients), redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(app)
    caplog.set_level(logging.INFO)
    caplog.clear()
    body = patient_view_request(PATIENT)
    response = app.test_client().post(SERVICE_PATH, json=body, headers=bearer(mint(es384)))
    assert response.status_code == 503
    [line] = lines(caplog)
    assert (line.event, line.status, line.auth, line.service) == ("service_call", 503, "unavailable", "probe")
    assert line.levelno == logging.WARNING


def test_discovery_keeps_the_guards_line(app, es384, caplog):
    caplog.set_level(logging.INFO)
    caplog.clear()
    app.test_client().get("/cds-services")
    assert [(r.event, r.reason) for r in lines(caplog)] == [("auth_failed", "no Authorization header")]
