"""Every fixture through the service, every way it can be called; no PHI and no token in any log line.

The fixtures' synthetic patients run through the app in development and in production mode,
with full prefetch and with their data fetched from the real FHIR test server (bearer token),
through feedback (with a clinician's comment naming the patient) and through the refusals
(400, 401, 412). Everything logged is captured twice, as each record's attributes and as the
process's stderr, and searched for every patient name, identifier, birth date and id in the
fixtures and for every token and secret the test handed over.
"""
from __future__ import annotations

import copy
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime

import pytest
from pythonjsonlogger.json import JsonFormatter

from service import create_app
from tests.auth.support import OPEN_APPS, PUBLIC_BASE, bearer, claims, client_entry, mint, write_clients
from tests.conftest import FIXTURE_AS_OF, make_settings
from tests.logcapture import CaptureEverything, capturing_all_logs
from tests.ops.support import REVIEW_SERVICE, fixture_bundles, fixture_requests, leaks
from tests.secrets import secret_token

SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
FEEDBACK_PATH = SERVICE_PATH + "/feedback"


@pytest.fixture
def captured():
    with capturing_all_logs() as handler:
        yield handler


@pytest.fixture
def loaded_fhir_server(clean_fhir_server):
    for bundle in fixture_bundles():
        clean_fhir_server.load_bundle(bundle)
    return clean_fhir_server


def app(tmp_path, **settings):
    values = {"data_dir": str(tmp_path), "patient_key_secret": secrets.token_hex(32)}
    values.update(settings)
    application = create_app(make_settings(**values), clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(application)
    return application, values["patient_key_secret"]


def fhir_authorization(token: str) -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read",
            "subject": "cds-service"}


def service_call_lines(handler: CaptureEverything) -> list[logging.LogRecord]:
    return [record for record in handler.records if getattr(record, "event", None) == "service_call"]


def feedback_for(cards: list[dict], patient_words: list[str]) -> dict:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    items = []
    for index, card in enumerate(cards):
        if index % 2:
            items.append({"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": now,
                          "acceptedSuggestions": [{"id": s["uuid"]} for s in card.get("suggestions", [])[:1]]})
        else:  # a clinician's free text may name the patient: it must never reach a log
            items.append({"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now,
                          "overrideReason": {"userComment": f"Discussed with {' '.join(patient_words)} today"}})
    return {"feedback": items}


def patient_words(request: dict) -> list[str]:
    patient = request["prefetch"]["patient"]
    return [*patient["name"][0].get("given", []), patient["name"][0]["family"], patient["birthDate"]]


def test_no_log_line_carries_phi_or_a_token(tmp_path, captured, capfd, loaded_fhir_server, es384):
    issued: list[str] = []
    fixtures = fixture_requests()
    assert len(fixtures) >= 46

    # 1. development mode: full prefetch with a FHIR token, then everything fetched with the token.
    dev, dev_secret = app(tmp_path / "dev")
    client = dev.test_client()
    issued.append(dev_secret)
    answered = 0
    for name, request in fixtures:
        token = secret_token()
        issued.append(token)
        body = {**request, "fhirAuthorization": fhir_authorization(token)}
        response = client.post(SERVICE_PATH, json=body)
        assert response.status_code == 200, (name, response.get_json())
        cards = response.get_json()["cards"]
        if cards:
            assert client.post(FEEDBACK_PATH, json=feedback_for(cards, patient_words(request))).status_code == 200
        fetched = {**copy.deepcopy(request), "prefetch": {}, "fhirServer": loaded_fhir_server.auth_base(token),
                   "fhirAuthorization": fhir_authorization(token), "hookInstance": str(uuid.uuid4())}
        response = client.post(SERVICE_PATH, json=fetched)
        assert response.status_code == 200, (name, response.get_json())
        answered += 2
        # Refusals carry the same data: a malformed prefetch key (400) and an unreachable server (412).
        broken = {**copy.deepcopy(request), "hookInstance": str(uuid.uuid4())}
        broken["prefetch"]["conditions"] = "not a resource"
        assert client.post(SERVICE_PATH, json=broken).status_code == 400
        unreachable = {**fetched, "fhirServer": loaded_fhir_server.auth_base(secret_token()),
                       "hookInstance": str(uuid.uuid4())}
        assert client.post(SERVICE_PATH, json=unreachable).status_code == 412
    assert len(service_call_lines(captured)) == 4 * len(fixtures)

    # 2. production mode: each call signed with a JWT, some keys fetched from the registered server.
    clients_file = write_clients(tmp_path, client_entry(es384, fhir_servers=[
        {"url": loaded_fhir_server.base_url, "private_network": True}]))
    production, production_secret = app(tmp_path / "production", mode="production", public_base_url=PUBLIC_BASE,
                                        trusted_clients_file=str(clients_file))
    client = production.test_client()
    issued.append(production_secret)
    for name, request in fixtures:
        token = secret_token()
        body = copy.deepcopy(request)
        for key in ("observations", "medicationRequests", "serviceRequests"):
            del body["prefetch"][key]
        body["fhirServer"] = loaded_fhir_server.base_url
        body["fhirAuthorization"] = fhir_authorization(token)
        jwt = mint(es384, claims(aud=PUBLIC_BASE + SERVICE_PATH))
        issued.extend((token, jwt))
        response = client.post(SERVICE_PATH, json=body, headers=bearer(jwt))
        assert response.status_code == 200, (name, response.get_json())
        answered += 1
        cards = response.get_json()["cards"]
        if cards:
            feedback_jwt = mint(es384, claims(aud=PUBLIC_BASE + FEEDBACK_PATH))
            issued.append(feedback_jwt)
            assert client.post(FEEDBACK_PATH, json=feedback_for(cards, patient_words(request)),
                               headers=bearer(feedback_jwt)).status_code == 200
        assert client.post(SERVICE_PATH, json=body, headers=bearer(jwt)).status_code == 401  # replayed
        forged = mint(es384, claims(aud=PUBLIC_BASE + SERVICE_PATH))[:-8] + "AAAAAAAA"
        issued.append(forged)
        assert client.post(SERVICE_PATH, json=body, headers=bearer(forged)).status_code == 401
    # 4 per fixture in development, 3 here: answered, replayed and forged (refusals at authentication
    # have their line too).
    assert len(service_call_lines(captured)) == 7 * len(fixtures)

    # The scan: every captured record and everything written to stdout / stderr.
    out, err = capfd.readouterr()
    text = "\n".join(captured.lines) + "\n" + out + "\n" + err
    assert answered == 3 * len(fixtures)
    found = leaks(text, secrets=issued)
    assert not found, f"{len(found)} patient data item(s) or secret(s) appeared in the logs: {found[:10]}"


def test_one_line_per_service_call_with_the_fields_operations_need(tmp_path, captured):
    application, _ = app(tmp_path)
    client = application.test_client()
    name, request = fixture_requests()[0]
    assert client.post(SERVICE_PATH, json=request).status_code == 200
    no_data = {**request, "prefetch": {}, "fhirServer": "https://not-allowed.example/fhir",
               "hookInstance": str(uuid.uuid4())}
    assert client.post(SERVICE_PATH, json=no_data).status_code == 412
    assert client.post(SERVICE_PATH, json={"hook": "patient-view"}).status_code == 400
    lines = service_call_lines(captured)
    assert [line.status for line in lines] == [200, 412, 400]
    answered, failed, invalid = lines
    assert answered.hookInstance == request["hookInstance"] and answered.service == REVIEW_SERVICE
    assert answered.card_topics and answered.prefetch == {key: "supplied" for key in request["prefetch"]}
    assert answered.card_rules  # the rule ids behind the cards: in the log, never on a card (issue 13 item 11)
    assert answered.duration_ms > 0
    # The 412 names every required key; serviceRequests is optional (hooks/fasciculation_review.py).
    required = sorted(key for key in request["prefetch"] if key != "serviceRequests")
    assert failed.hookInstance == no_data["hookInstance"] and failed.prefetch_failed == required
    assert failed.levelno == logging.WARNING
    assert invalid.hookInstance is None and invalid.service == REVIEW_SERVICE
    # Each line is one JSON object as the service writes it.
    formatted = JsonFormatter("%(message)s").format(answered)
    assert json.loads(formatted)["event"] == "service_call"


def test_the_scan_finds_each_kind_of_patient_data():
    """The scan itself: a log line naming a fixture patient in any of these ways is caught."""
    request = dict(fixture_requests())["01-benign-calf-twitch"]
    patient = request["prefetch"]["patient"]
    token = secret_token()
    for leaked in (patient["name"][0]["given"][0], patient["name"][0]["family"], patient["birthDate"],
                   patient["identifier"][0]["value"], patient["id"], token):
        line = json.dumps({"level": "INFO", "message": "service call", "detail": f"for {leaked}."})
        assert leaks(line, secrets=[token]) == [leaked]
    assert leaks(json.dumps({"message": "Alexander, Alexis and Fixture-S01x are other names"})) == []
