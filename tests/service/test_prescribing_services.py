"""order-select and order-sign over HTTP (issue 17): discovery lists the three services, the requests the
public CDS Hooks Sandbox sends (signed as the sandbox signs) get the cards their fixtures expect, every bad
context is a 400 naming the field, feedback and the card log work, and analytics keeps services apart."""
from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

from cards.knowledge_base import load_knowledge
from fixtures import prescribing as rx
from hooks.registry import ALL_SERVICES
from service import create_app
from service.auth.jwks import JwksCache
from service.schemas import CardsResponseSchema
from tests.auth.support import (PATIENT_KEY_SECRET, PUBLIC_BASE, SANDBOX_ISSUER, SANDBOX_JKU, bearer, local_tls, mint,
                                new_key, write_clients)
from tests.cards.cardcheck import assert_cards
from tests.conftest import FIXTURE_AS_OF, make_settings
from tests.store.support import accepted, app_for, overridden, store_settings

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "deploy" / "trusted-clients"
SCENARIOS = [scenario["id"] for scenario in rx.SCENARIOS]
SELECT, SIGN = rx.SERVICE_IDS["order-select"], rx.SERVICE_IDS["order-sign"]


def load(kind: str, scenario: str) -> dict:
    return json.loads((ROOT / "fixtures" / kind / "prescribing" / f"{scenario}.json").read_text())


@pytest.fixture(scope="module")
def sandbox_key():
    return new_key("ES384", kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")  # our key under the sandbox's kid


def sandbox_app(tmp_path, key, locale: str):
    """Production, trusting the sandbox through its shipped profile (its public key swapped for ours)."""
    [entry] = yaml.safe_load((PROFILES / "cds-hooks-sandbox.yaml").read_text())["clients"]
    del entry["jwks_file"]
    entry["jwks"] = key.jwks
    settings = make_settings(mode="production", public_base_url=PUBLIC_BASE, patient_key_secret=PATIENT_KEY_SECRET,
                             trusted_clients_file=str(write_clients(tmp_path, entry)), jwks_ca_file=local_tls().ca_file,
                             insecure_allow_sandbox_in_production=True, locale=locale, data_dir=str(tmp_path))
    return create_app(settings, clock=lambda: FIXTURE_AS_OF)


def sandbox_token(key, path: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": SANDBOX_ISSUER, "aud": PUBLIC_BASE + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return bearer(mint(key, claims, header={"jku": SANDBOX_JKU}))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sandbox key is bundled: nothing may be fetched")
    monkeypatch.setattr(JwksCache, "_download", refuse)


@pytest.fixture
def dev_client(tmp_path):
    app = app_for(store_settings(tmp_path))
    return app.test_client()


def test_fixtures_are_generated_from_fixtures_prescribing():
    for path, text in rx.files().items():
        assert path.read_text(encoding="utf-8") == text, f"regenerate: .venv/bin/python -m fixtures.prescribing ({path})"
    assert sorted(p.stem for p in rx.REQUESTS.glob("*.json")) == sorted(SCENARIOS)


def test_discovery_lists_the_three_services_with_their_prefetch(dev_client):
    services = dev_client.get("/cds-services").get_json()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("fasciculation-cramp-review", "patient-view"), (SELECT, "order-select"), (SIGN, "order-sign")]
    review, select, sign = services
    assert select["prefetch"] == sign["prefetch"] == review["prefetch"]  # the same chart, read by the same engine
    assert {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"} <= set(select["prefetch"])
    pregnancy_status = "http://loinc.org|82810-3"
    assert pregnancy_status in select["prefetch"]["observations"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sandbox_request_gets_the_expected_cards(scenario, tmp_path, sandbox_key):
    expected = load("expected", scenario)
    app = sandbox_app(tmp_path, sandbox_key, expected["locale"])
    try:
        path = f"/cds-services/{expected['service']}"
        body = load("requests", scenario)
        response = app.test_client().post(path, json=body, headers=sandbox_token(sandbox_key, path))
        assert response.status_code == 200, response.get_data(as_text=True)
        answer = response.get_json()
        CardsResponseSchema().load(answer)
        assert_cards(answer["cards"])
        cards = answer["cards"]
        assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [
            (c["topic"], c["indicator"]) for c in expected["cards"]]
        for card, want in zip(cards, expected["cards"]):
            assert card["summary"] == want["summary"]
            text = card["summary"] + "\n" + card["detail"]
            for sentence in want.get("contains", ()):
                assert sentence in text, sentence
            for sentence in want.get("excludes", ()):
                assert sentence not in text + json.dumps(card.get("links", [])), sentence
            got = []
            for suggestion in card.get("suggestions", ()):
                [action] = suggestion["actions"]
                entry = {"label": suggestion["label"], "type": action["type"]}
                if action["type"] == "delete":
                    entry["resourceId"] = action["resourceId"]
                    assert action["resourceId"] in {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                                                    for e in body["context"]["draftOrders"]["entry"]}
                else:
                    coding = action["resource"]["code"]["coding"][0]
                    entry["code"] = f"{coding['system']}|{coding['code']}"
                got.append(entry)
            assert got == want.get("suggestions", [])
    finally:
        app.extensions["fasciculation_cds"].fhir_client.close()


# ---- bad contexts: 400, an OperationOutcome naming the field ---------------------------------------------
def _select_body() -> dict:
    return load("requests", "rx01-quinine-cramp-select")


def _mutated(change) -> dict:
    body = copy.deepcopy(_select_body())
    change(body["context"])
    return body


BAD_CONTEXTS = {
    "no draftOrders": (lambda c: c.pop("draftOrders"), "context.draftOrders"),
    "draftOrders not a Bundle": (lambda c: c.update(draftOrders={"resourceType": "MedicationRequest"}),
                                 "context.draftOrders"),
    "draftOrders a list": (lambda c: c.update(draftOrders=[]), "context.draftOrders"),
    "entry without resource": (lambda c: c["draftOrders"].update(entry=[{"fullUrl": "x"}]), "context.draftOrders.entry.0"),
    "bad draft id": (lambda c: c["draftOrders"]["entry"][0]["resource"].update(id="has space"),
                     "context.draftOrders.entry.0"),
    "no selections": (lambda c: c.pop("selections"), "context.selections"),
    "empty selections": (lambda c: c.update(selections=[]), "context.selections"),
    "selection not a draft": (lambda c: c.update(selections=["MedicationRequest/other"]), "context.selections.0"),
    "selection not a reference": (lambda c: c.update(selections=["request-123"]), "context.selections.0"),
    "bad userId": (lambda c: c.update(userId="dr-1"), "context.userId"),
    "no patientId": (lambda c: c.pop("patientId"), "context.patientId"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTEXTS))
def test_every_bad_order_select_context_is_a_400_naming_the_field(case, dev_client):
    change, field = BAD_CONTEXTS[case]
    response = dev_client.post(f"/cds-services/{SELECT}", json=_mutated(change))
    assert response.status_code == 400, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    named = [where for issue in outcome["issue"] for where in issue.get("expression", [])]
    assert field in named, outcome


def test_order_sign_needs_no_selections_and_refuses_a_patient_view_body(dev_client):
    body = load("requests", "rx04-cyclobenzaprine-back-pain-30-days")
    assert dev_client.post(f"/cds-services/{SIGN}", json=body).status_code == 200
    body["hook"] = "patient-view"
    refused = dev_client.post(f"/cds-services/{SIGN}", json=body)
    assert refused.status_code == 400 and "order-sign" in refused.get_data(as_text=True)
    no_drafts = copy.deepcopy(load("requests", "rx04-cyclobenzaprine-back-pain-30-days"))
    del no_drafts["context"]["draftOrders"]
    response = dev_client.post(f"/cds-services/{SIGN}", json=no_drafts)
    assert response.status_code == 400 and "context.draftOrders" in response.get_data(as_text=True)


def test_a_null_encounter_id_is_absent_and_unknown_context_fields_are_ignored(dev_client):
    body = _mutated(lambda c: c.update(encounterId=None, somethingNew={"x": 1}))
    response = dev_client.post(f"/cds-services/{SELECT}", json=body)
    assert response.status_code == 200 and len(response.get_json()["cards"]) == 1


# ---- the chart fetched when the sandbox sends no prefetch ---------------------------------------------------
@pytest.mark.integration
def test_fhir_fallback_fetches_the_prescribing_keys(clean_fhir_server, tmp_path):
    from tests.secrets import secret_token
    clean_fhir_server.load_bundle(json.loads((ROOT / "fixtures" / "patients" / "06-thiazide-low-k.json").read_text()))
    clean_fhir_server.clear_log()
    token = secret_token()
    body = load("requests", "rx01-quinine-cramp-select")
    body["prefetch"] = {}
    body["fhirServer"] = clean_fhir_server.auth_base(token)
    body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "fasciculation-cds"}
    app = create_app(make_settings(data_dir=str(tmp_path)), clock=lambda: FIXTURE_AS_OF)
    try:
        response = app.test_client().post(f"/cds-services/{SELECT}", json=body)
    finally:
        app.extensions["fasciculation_cds"].fhir_client.close()
    assert response.status_code == 200, response.get_data(as_text=True)
    [card] = response.get_json()["cards"]
    assert card["source"]["topic"]["code"] == "rx-quinine"
    assert "Muscle cramp (SNOMED CT 55300003)" in card["detail"]  # the cramp came from the FHIR server
    fetched = {entry["path"].split("/fhir/R4/")[1].split("?")[0].split("/")[0] for entry in clean_fhir_server.request_log()}
    assert {"Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement", "ServiceRequest"} <= fetched


def test_an_unrelated_prescription_answers_without_the_chart(dev_client):
    """No draft the rules look at: no card, even when the chart could not be obtained (nothing needed it)."""
    body = load("requests", "rx10-unrelated-medicine")
    body["prefetch"] = {}  # and no fhirServer token: nothing can be fetched
    body.pop("fhirServer")
    response = dev_client.post(f"/cds-services/{SIGN}", json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_a_relevant_draft_without_the_chart_answers_only_with_what_stands(dev_client):
    """The chart could not be obtained: a card that stands on the draft says what it could not see (200);
    with no card, "nothing applies" cannot be said, so the answer is 412."""
    body = load("requests", "rx07-gabapentin-after-normal-workup")  # reason on the draft: fasciculation
    body["prefetch"] = {}
    body.pop("fhirServer")
    response = dev_client.post(f"/cds-services/{SIGN}", json=body)
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    assert card["summary"] == ("Before gabapentin for twitching or cramp, rule out secondary causes: BMP, TSH, CK not "
                               "in the data that could be read.")
    assert "no result on file" not in card["detail"]
    body = load("requests", "rx09-albuterol-cramp-low-potassium")  # needs the chart's cramp or potassium
    body["prefetch"] = {}
    body.pop("fhirServer")
    assert dev_client.post(f"/cds-services/{SELECT}", json=body).status_code == 412


# ---- feedback, the card log and analytics ---------------------------------------------------------------
def test_feedback_and_analytics_keep_the_services_apart(tmp_path):
    settings = store_settings(tmp_path, admin_token="admin-" + uuid.uuid4().hex)
    client = app_for(settings).test_client()
    select = client.post(f"/cds-services/{SELECT}", json=load("requests", "rx01-quinine-cramp-select")).get_json()
    sign = client.post(f"/cds-services/{SIGN}", json=load("requests", "rx04-cyclobenzaprine-back-pain-30-days")).get_json()
    review = client.post("/cds-services/fasciculation-cramp-review",
                         json=json.loads((ROOT / "fixtures" / "requests" / "06-thiazide-low-k.json").read_text())).get_json()
    quinine = select["cards"][0]
    removal = quinine["suggestions"][0]["uuid"]
    ok = client.post(f"/cds-services/{SELECT}/feedback", json={"feedback": [accepted(quinine["uuid"], suggestions=(removal,))]})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    ok = client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [overridden(sign["cards"][0]["uuid"])]})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    # A card is feedback for the service that issued it only: sent to the other one, it is flagged as unknown.
    wrong = client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [overridden(quinine["uuid"])]})
    assert wrong.status_code == 200, wrong.get_data(as_text=True)
    import base64
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{settings.admin_token}".encode()).decode()}
    report = client.get("/analytics.json?days=7", headers=auth).get_json()
    kinds = {(kind["service"], kind["topic"]): kind for kind in report["kinds"]}
    quinine_kind = kinds[(SELECT, "rx-quinine")]
    assert (quinine_kind["shown"], quinine_kind["accepted"], quinine_kind["overridden"]) == (1, 1, 0)
    assert (kinds[(SIGN, "rx-cyclobenzaprine")]["shown"], kinds[(SIGN, "rx-cyclobenzaprine")]["overridden"]) == (1, 1)
    assert (SIGN, "rx-quinine") not in kinds and (SELECT, "rx-cyclobenzaprine") not in kinds
    review_topics = {card["source"]["topic"]["code"] for card in review["cards"]}
    assert {topic for service, topic in kinds if service == "fasciculation-cramp-review"} == review_topics
    assert kinds[(SELECT, "rx-quinine")]["display"] == "Quinine order"
    assert load_knowledge().version in json.dumps(report["knowledgeVersions"])
    assert report["unknownCardFeedback"] == 1


def test_declarations_are_the_only_thing_the_service_layer_needs():
    """Adding the prescribing hooks changed nothing in service/ but the generic context lookup: each
    declaration names its context schema."""
    from service.protocol import context_schema_of
    for service in ALL_SERVICES:
        assert context_schema_of(service).__class__ is service.context_schema


def test_every_prescribing_topic_is_expected_by_a_fixture_and_no_card_is_one_too():
    from cards.rules.prescribing import RX_TOPICS
    seen = {card["topic"] for scenario in SCENARIOS for card in load("expected", scenario)["cards"]}
    assert seen == set(RX_TOPICS)
    assert any(not load("expected", scenario)["cards"] for scenario in SCENARIOS)
