"""Golden tests: every fixture scenario gives exactly its expected cards (full card text: test_cards_golden.py).

Each scenario runs twice through the real service: once with the EHR's full prefetch, and
once with no prefetch at all, so the service fetches everything from a real FHIR server
loaded with all the fixture patients (the fallback path).
"""
from __future__ import annotations

import copy
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from fixtures import golden
from service import create_app
from service.schemas import CardSchema
from tests.cards.test_scenarios import assert_card_texts, suggestion_code
from tests.conftest import make_settings
from tests.secrets import secret_token

FIXTURES = Path(__file__).parents[1] / "fixtures"
SCENARIOS = sorted(path.stem for path in (FIXTURES / "expected").glob("*.json"))
SERVICE_URL = "/cds-services/fasciculation-cramp-review"
GOLDEN_RUNS = {run.name: run for run in golden.plan()}
CARD_SCHEMA = CardSchema()


def load(kind: str, scenario: str) -> dict:
    return json.loads((FIXTURES / kind / f"{scenario}.json").read_text())


def app_for(expected: dict, **settings):
    as_of = datetime.fromisoformat(expected["asOf"].replace("Z", "+00:00"))
    return create_app(make_settings(locale=expected.get("locale", "US"), **settings), clock=lambda: as_of)


def suggestion_codes(card: dict) -> set[str]:
    return {suggestion_code(action["resource"]["code"])
            for suggestion in card.get("suggestions", []) for action in suggestion.get("actions", [])}


def summarise(cards: list[tuple[str, str, set[str]]]) -> dict[str, dict]:
    """Per topic: the indicators and suggestion codes of its cards (robust to one card vs several)."""
    by_topic: dict[str, dict] = defaultdict(lambda: {"indicators": set(), "suggestions": set()})
    for topic_code, indicator, codes in cards:
        topic = by_topic[topic_code]
        topic["indicators"].add(indicator)
        topic["suggestions"] |= codes
    return dict(by_topic)


def summarise_response(cards: list[dict]) -> dict[str, dict]:
    return summarise([(card["source"]["topic"]["code"], card["indicator"], suggestion_codes(card))
                      for card in cards])


def summarise_expected(cards: list[dict]) -> dict[str, dict]:
    return summarise([(card["topic"], card["indicator"], set(card.get("suggestions", []))) for card in cards])


def assert_matches_expected(response, expected: dict) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    for card in cards:
        errors = CARD_SCHEMA.validate(card)
        assert not errors, f"{expected['scenario']}: card fails the CDS Hooks card schema: {errors}"
    assert len({card["uuid"] for card in cards}) == len(cards)
    actual = summarise_response(cards)
    wanted = summarise_expected(expected["cards"])
    assert sorted(actual) == sorted(wanted), f"{expected['scenario']}: topics differ ({expected['rationale']})"
    for topic, facts in wanted.items():
        assert actual[topic] == facts, f"{expected['scenario']}: {topic} differs"
    assert_card_texts(cards, expected)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_with_full_prefetch(scenario):
    expected = load("expected", scenario)
    response = app_for(expected).test_client().post(SERVICE_URL, json=load("requests", scenario))
    assert_matches_expected(response, expected)


@pytest.fixture(scope="module")
def fhir_with_every_patient(fhir_server):
    fhir_server.reset()
    for scenario in SCENARIOS:
        fhir_server.load_bundle(load("patients", scenario))
    return fhir_server


@pytest.mark.integration
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_fetched_from_the_fhir_server(scenario, fhir_with_every_patient):
    expected = load("expected", scenario)
    request = copy.deepcopy(load("requests", scenario))
    del request["prefetch"]
    token = secret_token()
    request["fhirServer"] = fhir_with_every_patient.auth_base(token)
    request["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                    "scope": "user/*.read", "subject": "fasciculation-cds"}
    response = app_for(expected, fhir_deadline_seconds=10.0).test_client().post(SERVICE_URL, json=request)
    assert_matches_expected(response, expected)
    # Fetched or prefetched, the clinician reads the same words: the full text equals the reviewed golden.
    cards = [golden.without_volatile(card) for card in response.get_json()["cards"]]
    message = golden.mismatch(GOLDEN_RUNS[scenario], cards)
    if message:
        pytest.fail(message, pytrace=False)


def test_there_are_at_least_twenty_scenarios():
    assert len(SCENARIOS) >= 20
