"""Regression tests for the bugs the robustness work found (docs/reliability.md lists them)."""
from __future__ import annotations

import pytest

from tests.conftest import patient_view_request

URL = "/cds-services/probe"
AUTHORIZATION = {"access_token": "not-used", "token_type": "Bearer", "scope": "user/*.read", "subject": "cds"}


@pytest.mark.parametrize("field,value", [
    ("hookInstance", "d0e5c8a2\n"),
    ("context.patientId", "p1\n"),
    ("context.userId", "Practitioner/dr-1\n"),
    ("context.encounterId", "e1\n"),
    ("hookInstance", "tab\there"),
    ("hookInstance", "\x1cseparator"),
])
def test_identifiers_with_a_final_newline_or_a_control_character_are_refused(probe_client, field, value):
    # Python's `$` matched before a final newline, so "p1\n" passed as a FHIR id.
    body = patient_view_request()
    target = body["context"] if field.startswith("context.") else body
    target[field.removeprefix("context.")] = value
    response = probe_client.post(URL, json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert field in response.get_json()["issue"][0]["expression"][0]


def test_feedback_card_ids_with_a_final_newline_are_refused(probe_client):
    item = {"card": "card-1\n", "outcome": "overridden", "outcomeTimestamp": "2026-11-15T09:00:00Z"}
    response = probe_client.post(URL + "/feedback", json={"feedback": [item]})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["feedback.0.card"]


@pytest.mark.parametrize("timestamp", ["2026-11-15T09:00:60Z", "٢٠٢٦-11-15T09:00:00Z", "2026-11-15T09:00:00Z\n"])
def test_feedback_timestamps_outside_the_documented_pattern_are_400(probe_client, timestamp):
    item = {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": timestamp}
    assert probe_client.post(URL + "/feedback", json={"feedback": [item]}).status_code == 400


@pytest.mark.parametrize("days", ["²", "١٢", "12x", "0", "366"])
def test_analytics_days_that_are_not_ascii_digits_in_range_are_400_not_500(probe_client, days):
    response = probe_client.get("/analytics.json", query_string={"days": days})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["issue"][0]["expression"] == ["days"]


@pytest.mark.parametrize("expires_in,status", [(300, 200), (300.0, 200), (0.0, 200), (300.5, 400), ("300", 200),
                                               ("300.0", 400), (True, 400), (-1, 400)])
def test_expires_in_is_a_json_integer(probe_client, expires_in, status):
    # JSON (and the contract's JSON Schema) make no difference between 300 and 300.0; an EHR that
    # sends 300.0 was refused with 400 (found by schemathesis: schema-valid request rejected).
    # The digits as a string are accepted too (issue 15, item 11: OAuth responses passed on as is).
    body = patient_view_request(fhirServer="https://ehr.example.org/fhir",
                                fhirAuthorization={**AUTHORIZATION, "expires_in": expires_in})
    response = probe_client.post(URL, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
