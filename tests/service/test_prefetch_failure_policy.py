"""Issue 12: what the service does with prefetch data it could not obtain, through the real service.

Each test pins a defect of the code at c2304de: a first page read as the whole chart, a page cap
that only logged, one unsupported medication search blocking every card (412), a failed key hiding a
red flag (412 and nothing), another patient's resources, a 412 naming one key of several.
"""
from __future__ import annotations

import copy
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from service import create_app
from tests.cards.cardcheck import assert_cards
from tests.conftest import make_settings
from tests.secrets import secret_token

FIXTURES = Path(__file__).parents[2] / "fixtures"
URL = "/cds-services/fasciculation-cramp-review"
AS_OF = datetime.fromisoformat("2026-11-15T09:00:00+00:00")
NOT_SUPPORTED = {"resourceType": "OperationOutcome",
                 "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "Unknown resource type"}]}


def request(scenario: str = "01-benign-calf-twitch") -> dict:
    return json.loads((FIXTURES / "requests" / f"{scenario}.json").read_text())


def post(body: dict, **settings):
    app = create_app(make_settings(**settings), clock=lambda: AS_OF)
    return app.test_client().post(URL, json=body)


def cards_of(response) -> dict[str, dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    assert_cards(cards)
    return {card["source"]["topic"]["code"]: card for card in cards}


def expressions(response) -> list[list[str]]:
    assert response.status_code == 412, response.get_data(as_text=True)
    return [issue["expression"] for issue in response.get_json()["issue"]]


def test_the_benign_fixture_is_reassured_when_everything_is_there():
    assert list(cards_of(post(request()))) == ["reassurance"]


def with_next_link(body: dict, key: str) -> dict:
    body["prefetch"][key]["link"] = [{"relation": "next", "url": f"{body['fhirServer']}/Condition?page=2"}]
    return body


def test_a_first_page_with_a_next_link_and_no_token_is_incomplete_and_never_reassures():
    """Pinned: page 1 was read as the whole chart (a weakness Condition on page 2 ended in reassurance)."""
    cards = cards_of(post(with_next_link(request(), "conditions")))
    assert "reassurance" not in cards
    gap = cards["data-gap"]
    assert gap["summary"].startswith("Part of this patient's record could not be obtained")
    assert "Problem list (conditions): only partly obtained (the EHR sent only the first page, and the service " \
           "may not query the FHIR server for the rest)" in gap["detail"]


def test_the_page_cap_makes_the_key_incomplete_not_just_a_log_line():
    body = with_next_link(request(), "conditions")
    token = secret_token()
    body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "fasciculation-cds"}
    cards = cards_of(post(body, fhir_max_pages=1))  # page 1 was supplied: the cap is reached before fetching
    assert "reassurance" not in cards
    assert "Problem list (conditions): only partly obtained (the service stopped at its page cap (1 pages); " \
           "the rest was not read)" in cards["data-gap"]["detail"]


def test_medication_statement_not_supported_with_medication_requests_obtained_is_complete(caplog):
    """Pinned: Oracle Health's R4 API has no MedicationStatement; that one search made every call 412."""
    body = request()
    body["prefetch"]["medicationStatements"] = copy.deepcopy(NOT_SUPPORTED)
    with caplog.at_level(logging.INFO, logger="service.prefetch"):
        assert list(cards_of(post(body))) == ["reassurance"]
    unsupported = [r for r in caplog.records if getattr(r, "event", "") == "prefetch_key_unsupported"]
    assert [(r.levelno, r.prefetch_key, r.covered_by) for r in unsupported] == [
        (logging.INFO, "medicationStatements", "medicationRequests")]


def test_both_medication_searches_unsupported_is_a_412_naming_both():
    body = request()
    body["prefetch"]["medicationStatements"] = copy.deepcopy(NOT_SUPPORTED)
    body["prefetch"]["medicationRequests"] = copy.deepcopy(NOT_SUPPORTED)
    assert expressions(post(body)) == [["prefetch.medicationRequests", "prefetch.medicationStatements"]]


def test_a_failed_key_with_a_red_flag_visible_answers_the_cards_and_names_what_is_missing():
    """Pinned: the observations key failing made the call 412, the weakness red flag with it."""
    body = request("02-twitch-with-weakness")
    del body["prefetch"]["observations"]
    cards = cards_of(post(body))
    assert list(cards) == ["neurology-referral", "data-gap", "workup-incomplete"]
    assert "Muscle weakness is recorded" in cards["neurology-referral"]["detail"]
    assert "Laboratory results: could not be obtained (it was not prefetched and the service may not query " \
           "the FHIR server" in cards["data-gap"]["detail"]
    assert "TSH: no result in the data that could be obtained and read" in cards["workup-incomplete"]["detail"]
    assert "no usable result on file" not in cards["workup-incomplete"]["detail"]


def test_without_a_red_flag_a_failed_required_key_is_412():
    body = request()
    del body["prefetch"]["observations"]
    assert expressions(post(body)) == [["prefetch.observations"]]


def test_a_412_names_every_key_that_failed_in_a_stable_order():
    """Pinned: the 412 stopped at the first failure and named only that key."""
    body = request()
    for key in ("patient", "observations", "findings"):
        del body["prefetch"][key]
    body["prefetch"]["medicationStatements"] = copy.deepcopy(NOT_SUPPORTED)
    body["prefetch"]["medicationRequests"] = copy.deepcopy(NOT_SUPPORTED)
    response = post(body)
    assert expressions(response) == [
        ["prefetch.findings", "prefetch.observations", "prefetch.patient"],
        ["prefetch.medicationRequests", "prefetch.medicationStatements"]]
    assert "Could not obtain prefetch data for findings, observations, patient: it was not prefetched" in \
        response.get_json()["issue"][0]["diagnostics"]


def test_an_optional_key_that_failed_is_named_but_never_412():
    body = request()
    del body["prefetch"]["serviceRequests"]
    cards = cards_of(post(body))
    assert list(cards) == ["data-gap", "reassurance"]  # reassurance does not depend on the orders
    assert cards["data-gap"]["summary"] == ("Orders already on the chart could not be checked: a test suggested "
                                            "here may already have been ordered.")
    assert "Orders already placed: could not be obtained" in cards["data-gap"]["detail"]


def _about(resource: dict, patient_id: str) -> dict:
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    return resource


def test_another_patients_resources_are_never_used_and_are_logged_with_counts(caplog):
    body = request()
    weakness = _about({"resourceType": "Condition", "id": "other-weak", "code": {"coding": [
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M62.81"}]}}, "someone-else")
    body["prefetch"]["conditions"]["entry"].append({"resource": weakness})
    with caplog.at_level(logging.WARNING, logger="service.prefetch"):
        assert list(cards_of(post(body))) == ["reassurance"]
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "other_patient_resources"]
    assert record.dropped_by_key == {"conditions": 1} and record.emptied_keys == []


def test_a_key_left_empty_by_another_patients_resources_is_not_an_empty_chart():
    body = request()
    for entry in body["prefetch"]["conditions"]["entry"]:
        _about(entry["resource"], "someone-else")
    response = post(body)
    assert expressions(response) == [["prefetch.conditions"]]
    assert "every resource it held was about another patient" in response.get_json()["issue"][0]["diagnostics"]


def test_a_patient_resource_of_another_patient_is_not_this_patient():
    body = request()
    body["prefetch"]["patient"]["id"] = "someone-else"
    assert expressions(post(body)) == [["prefetch.patient"]]


# ---- the FHIR server, for real -------------------------------------------------------------------------
def _authorised(body: dict, base: str, token: str) -> dict:
    body["fhirServer"] = base
    body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "fasciculation-cds"}
    return body


@pytest.mark.integration
@pytest.mark.parametrize("status", [404, 400])
def test_medication_statement_answered_404_or_400_by_the_server_is_covered(clean_fhir_server, status):
    token = secret_token()
    body = _authorised(request(), clean_fhir_server.fault_base("status", status, token=token), token)
    del body["prefetch"]["medicationStatements"]
    assert list(cards_of(post(body))) == ["reassurance"]
    [logged] = clean_fhir_server.request_log()
    assert "/MedicationStatement?" in logged["path"]


HCTZ = {"resourceType": "Medication", "id": "rw-med-hctz",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "310798"}]}}


def _order_by_reference(body: dict) -> dict:
    order = {"resourceType": "MedicationRequest", "id": "rw-mr-1", "status": "active", "intent": "order",
             "subject": {"reference": f"Patient/{body['context']['patientId']}"}, "authoredOn": "2026-06-01",
             "medicationReference": {"reference": "Medication/rw-med-hctz"}}
    body["prefetch"]["medicationRequests"] = {"resourceType": "Bundle", "type": "searchset",
                                              "entry": [{"resource": order, "search": {"mode": "match"}}]}
    return body


@pytest.mark.integration
def test_a_medication_reference_is_fetched_from_the_fhir_server(clean_fhir_server):
    """Pinned: a Medication that was neither contained nor included was never resolved."""
    clean_fhir_server.load_resources([HCTZ])
    clean_fhir_server.clear_log()
    token = secret_token()
    body = _authorised(_order_by_reference(request()), clean_fhir_server.auth_base(token), token)
    cards = cards_of(post(body))
    assert "hydrochlorothiazide" in cards["medication-review"]["summary"]
    assert [entry["path"].split("/fhir/R4/")[1] for entry in clean_fhir_server.request_log()] == [
        "Medication/rw-med-hctz"]


@pytest.mark.integration
def test_a_medication_reference_the_server_does_not_have_is_shown_as_unreadable(clean_fhir_server):
    token = secret_token()
    body = _authorised(_order_by_reference(request()), clean_fhir_server.auth_base(token), token)
    cards = cards_of(post(body))
    assert "reassurance" not in cards
    assert "MedicationRequest of 2026-06-01 could not be read: the medicine it refers to (Medication/rw-med-hctz) " \
           "could not be found" in cards["data-gap"]["detail"]


def test_a_medication_reference_without_fhir_access_is_shown_as_unreadable():
    cards = cards_of(post(_order_by_reference(request())))
    assert "reassurance" not in cards and "Medication/rw-med-hctz" in cards["data-gap"]["detail"]


def test_an_included_medication_needs_no_fetch():
    body = _order_by_reference(request())
    body["prefetch"]["medicationRequests"]["entry"].append({"resource": copy.deepcopy(HCTZ),
                                                            "search": {"mode": "include"}})
    assert "medication-review" in cards_of(post(body))
