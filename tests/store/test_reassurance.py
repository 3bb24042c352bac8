"""Repeated reassurance: an accepted reassurance card within the window turns the next one into a short reminder.

The seeds warn that repeated reassurance feeds health anxiety. The service hands the hook this
patient's card history; the hook decides; the cards say when reassurance was given.
"""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hooks.declaration import CardOutcome, HookCall
from hooks.fasciculation_review import reassurance_given_on
from tests.store.support import (FEEDBACK_PATH, SERVICE_PATH, accepted, app_for, fixture_request, overridden,
                                 store_settings, with_patient)

NOW = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
BENIGN = "01-benign-calf-twitch"


def reassurance_card(client, body=None) -> dict:
    cards = client.post(SERVICE_PATH, json=body or fixture_request(BENIGN)).get_json()["cards"]
    (card,) = [card for card in cards if card["source"]["topic"]["code"] == "reassurance"]
    return card


def is_short(card: dict) -> bool:
    return "was given on" in card["summary"]


@pytest.fixture
def client(tmp_path):
    return app_for(store_settings(tmp_path), clock=lambda: NOW).test_client()


def test_an_accepted_reassurance_makes_the_next_card_a_short_reminder_with_its_date(client):
    first = reassurance_card(client)
    assert not is_short(first)
    assert client.post(FEEDBACK_PATH, json={"feedback": [accepted(first["uuid"], "2026-11-10T16:20:00Z")]}).status_code == 200
    second = reassurance_card(client)
    assert is_short(second) and "2026-11-10" in second["summary"]
    assert len(second.get("detail", "")) < len(first.get("detail", ""))


@pytest.mark.parametrize("accepted_at,short", [
    ("2026-08-17T00:00:00Z", True),   # 90 days before: inside the default window
    ("2026-08-16T23:59:59Z", False),  # 91 days before: outside
    ("2026-11-15T08:59:00Z", True),   # today
])
def test_the_default_window_is_90_days(client, accepted_at, short):
    first = reassurance_card(client)
    client.post(FEEDBACK_PATH, json={"feedback": [accepted(first["uuid"], accepted_at)]})
    assert is_short(reassurance_card(client)) is short


def test_the_window_is_configurable(tmp_path):
    client = app_for(store_settings(tmp_path, reassurance_window_days=10), clock=lambda: NOW).test_client()
    first = reassurance_card(client)
    client.post(FEEDBACK_PATH, json={"feedback": [accepted(first["uuid"], "2026-11-01T09:00:00Z")]})
    assert not is_short(reassurance_card(client))
    client.post(FEEDBACK_PATH, json={"feedback": [accepted(first["uuid"], "2026-11-06T09:00:00Z")]})
    assert is_short(reassurance_card(client))


def test_an_overridden_reassurance_is_given_again_in_full(client):
    first = reassurance_card(client)
    client.post(FEEDBACK_PATH, json={"feedback": [overridden(first["uuid"], "2026-11-10T09:00:00Z")]})
    assert not is_short(reassurance_card(client))


def test_the_history_is_per_patient_and_per_fhir_server(client):
    first = reassurance_card(client)
    client.post(FEEDBACK_PATH, json={"feedback": [accepted(first["uuid"], "2026-11-10T09:00:00Z")]})
    assert is_short(reassurance_card(client))
    assert not is_short(reassurance_card(client, with_patient(fixture_request(BENIGN), "another-patient")))
    assert not is_short(reassurance_card(client, fixture_request(BENIGN, fhirServer="https://other-ehr.test/fhir")))


def test_feedback_for_an_unknown_card_never_shortens_anything(client):
    reassurance_card(client)
    client.post(FEEDBACK_PATH, json={"feedback": [accepted("00000000-0000-4000-8000-000000000000",
                                                           "2026-11-10T09:00:00Z")]})
    assert not is_short(reassurance_card(client))


# -- the hook's decision, without the service -----------------------------------------------------------

def call(*history: CardOutcome, window: int = 90) -> HookCall:
    return HookCall(hook_instance="h", context={"patientId": "p"}, data={}, now=NOW, locale="US",
                    card_history=history, reassurance_window_days=window)


def outcome(topic: str, result: str, day: str) -> CardOutcome:
    return CardOutcome(topic=topic, outcome=result, outcome_at=datetime.fromisoformat(day + "T12:00:00+00:00"))


def test_the_hook_takes_the_latest_accepted_reassurance_inside_the_window():
    assert reassurance_given_on(call()) is None
    assert reassurance_given_on(call(outcome("reassurance", "accepted", "2026-10-01"),
                                     outcome("reassurance", "accepted", "2026-11-02"),
                                     outcome("reassurance", "overridden", "2026-11-12"),
                                     outcome("cramp-management", "accepted", "2026-11-14"))) == date(2026, 11, 2)
    assert reassurance_given_on(call(outcome("reassurance", "accepted", "2026-11-20"))) is None  # in the future
    assert reassurance_given_on(call(outcome("reassurance", "accepted", "2026-11-02"), window=7)) is None


def test_existing_callers_need_no_history():
    bare = HookCall(hook_instance="h", context={}, data={}, now=NOW, locale="US")
    assert bare.card_history == () and bare.reassurance_window_days == 90
