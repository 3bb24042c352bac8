"""POST /cds-services/{id}/feedback: CDS Hooks 2.0 feedback, validated, stored exactly once."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from service.store.models import CardFeedback
from tests.store.support import FEEDBACK_PATH, SERVICE_PATH, accepted, fixture_request, overridden

NOW = "2026-11-15T09:05:31Z"


def issue_cards(client, name: str = "06-thiazide-low-k") -> list[dict]:
    response = client.post(SERVICE_PATH, json=fixture_request(name))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def stored_feedback(app) -> list[CardFeedback]:
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.connect() as connection:
        return list(connection.execute(select(CardFeedback).order_by(CardFeedback.id)).all())


def assert_outcome(response, status: int, *fragments: str) -> list[dict]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = " | ".join(issue["diagnostics"] for issue in body["issue"])
    for fragment in fragments:
        assert fragment in diagnostics, diagnostics
    return body["issue"]


# -- accepted ----------------------------------------------------------------------------------------

def test_feedback_on_issued_cards_is_stored_and_answered_with_an_empty_object(app, client):
    cards = issue_cards(client)
    with_suggestion = next(card for card in cards if card.get("suggestions"))
    plain = next(card for card in cards if not card.get("suggestions"))
    body = {"feedback": [
        accepted(with_suggestion["uuid"], NOW, suggestions=(with_suggestion["suggestions"][0]["uuid"],)),
        overridden(plain["uuid"], NOW, comment="Discussed at the last visit"),
    ]}
    response = client.post(FEEDBACK_PATH, json=body)
    assert response.status_code == 200 and response.get_json() == {}
    rows = sorted(stored_feedback(app), key=lambda row: row.outcome)
    assert [(row.card_uuid, row.outcome, row.card_known) for row in rows] == [
        (with_suggestion["uuid"], "accepted", True), (plain["uuid"], "overridden", True)]
    assert rows[0].accepted_suggestions == [with_suggestion["suggestions"][0]["uuid"]]
    assert rows[0].override_reason_code is None
    assert (rows[1].override_reason_system, rows[1].override_reason_code, rows[1].override_reason_display,
            rows[1].override_comment) == ("urn:test:override", "already-addressed", "Already addressed",
                                          "Discussed at the last visit")
    assert rows[1].outcome_at.isoformat() == "2026-11-15T09:05:31+00:00"


def test_the_same_card_outcome_and_timestamp_is_stored_once(app, client):
    card = issue_cards(client)[0]
    item = overridden(card["uuid"], NOW)
    same_instant_other_spelling = overridden(card["uuid"], "2026-11-15T10:05:31+01:00")
    for body in ({"feedback": [item]}, {"feedback": [item, item]}, {"feedback": [same_instant_other_spelling]}):
        assert client.post(FEEDBACK_PATH, json=body).status_code == 200
    assert len(stored_feedback(app)) == 1
    # A later report of the same card is a new fact, and so is the other outcome.
    client.post(FEEDBACK_PATH, json={"feedback": [overridden(card["uuid"], "2026-11-15T09:06:00Z"),
                                                  accepted(card["uuid"], NOW)]})
    assert len(stored_feedback(app)) == 3


def test_feedback_for_a_card_never_issued_is_stored_and_flagged(app, client):
    response = client.post(FEEDBACK_PATH, json={"feedback": [accepted("4c1e0d1f-0000-4000-8000-000000000000", NOW)]})
    assert response.status_code == 200
    (row,) = stored_feedback(app)
    assert row.card_known is False


def test_a_card_of_another_service_counts_as_unknown_here(tmp_path):
    from tests.conftest import PROBE_SERVICE
    from tests.store.support import app_for, store_settings
    from hooks.registry import ALL_SERVICES
    app = app_for(store_settings(tmp_path), services=[*ALL_SERVICES, PROBE_SERVICE])
    client = app.test_client()
    probe_card = client.post("/cds-services/probe", json=fixture_request()).get_json()["cards"][0]
    client.post(FEEDBACK_PATH, json={"feedback": [accepted(probe_card["uuid"], NOW)]})
    assert [row.card_known for row in stored_feedback(app)] == [False]


def test_an_accepted_card_without_suggestions_sends_an_empty_list(app, client):
    card = issue_cards(client, "01-benign-calf-twitch")[0]
    assert client.post(FEEDBACK_PATH, json={"feedback": [accepted(card["uuid"], NOW)]}).status_code == 200


def test_only_what_the_outcome_means_is_kept(app, client):
    card = issue_cards(client)[0]
    item = {**accepted(card["uuid"], NOW), "overrideReason": {"userComment": "ignored on an acceptance"},
            "extension": {"com.example.x": 1}, "unknownField": True}
    assert client.post(FEEDBACK_PATH, json={"feedback": [item]}).status_code == 200
    (row,) = stored_feedback(app)
    assert row.override_comment is None and row.accepted_suggestions == []


def test_fractional_seconds_and_lower_case_separators_are_rfc3339(app, client):
    card = issue_cards(client)[0]
    for stamp in ("2026-11-15t09:05:31.123456789z", "2026-11-15T09:05:31.5-05:00"):
        assert client.post(FEEDBACK_PATH, json={"feedback": [overridden(card["uuid"], stamp)]}).status_code == 200
    assert sorted(row.outcome_at.isoformat() for row in stored_feedback(app)) == [
        "2026-11-15T09:05:31.123456+00:00", "2026-11-15T14:05:31.500000+00:00"]


# -- refused -----------------------------------------------------------------------------------------

def test_unknown_service_is_404(client):
    response = client.post("/cds-services/no-such-service/feedback", json={"feedback": [accepted("x", NOW)]})
    assert_outcome(response, 404, "no-such-service")


GOOD = {"card": "6b3bb7f4-4b5e-4a8e-9f65-4f3c2e0c9a11", "outcome": "overridden", "outcomeTimestamp": NOW}

BAD_BODIES = {
    "no feedback key": ({}, "feedback: Missing data"),
    "feedback not a list": ({"feedback": {"card": "x"}}, "feedback: Not a valid list"),
    "empty feedback array": ({"feedback": []}, "between 1 and 500"),
    "feedback null": ({"feedback": None}, "feedback: Field may not be null"),
    "entry not an object": ({"feedback": ["x"]}, "feedback.0"),
    "missing card": ({"feedback": [{k: v for k, v in GOOD.items() if k != "card"}]}, "feedback.0.card: Missing"),
    "missing outcome": ({"feedback": [{k: v for k, v in GOOD.items() if k != "outcome"}]},
                        "feedback.0.outcome: Missing"),
    "missing timestamp": ({"feedback": [{k: v for k, v in GOOD.items() if k != "outcomeTimestamp"}]},
                          "feedback.0.outcomeTimestamp: Missing"),
    "outcome not in the enum": ({"feedback": [{**GOOD, "outcome": "dismissed"}]},
                                "feedback.0.outcome: Must be one of: accepted, overridden"),
    "accepted without acceptedSuggestions": ({"feedback": [{**GOOD, "outcome": "accepted"}]},
                                             "feedback.0.acceptedSuggestions: required when outcome is accepted"),
    "acceptedSuggestions without id": ({"feedback": [{**GOOD, "outcome": "accepted", "acceptedSuggestions": [{}]}]},
                                       "feedback.0.acceptedSuggestions.0.id: Missing"),
    "acceptedSuggestions not a list": ({"feedback": [{**GOOD, "outcome": "accepted", "acceptedSuggestions": "abc"}]},
                                       "feedback.0.acceptedSuggestions: Not a valid list"),
    "overrideReason without reason and userComment": ({"feedback": [{**GOOD, "overrideReason": {}}]},
                                                      "needs a reason, a userComment or both"),
    "overrideReason reason without code": (
        {"feedback": [{**GOOD, "overrideReason": {"reason": {"system": "urn:x"}}}]},
        "feedback.0.overrideReason.reason.code: Missing"),
    "overrideReason not an object": ({"feedback": [{**GOOD, "overrideReason": "no"}]},
                                     "feedback.0.overrideReason"),
    "userComment not a string": ({"feedback": [{**GOOD, "overrideReason": {"userComment": 7}}]},
                                 "feedback.0.overrideReason.userComment: Not a valid string"),
    "timestamp without zone": ({"feedback": [{**GOOD, "outcomeTimestamp": "2026-11-15T09:05:31"}]},
                               "feedback.0.outcomeTimestamp: must be an RFC 3339 date-time"),
    "timestamp a date only": ({"feedback": [{**GOOD, "outcomeTimestamp": "2026-11-15"}]}, "RFC 3339"),
    "timestamp with a space": ({"feedback": [{**GOOD, "outcomeTimestamp": "2026-11-15 09:05:31Z"}]}, "RFC 3339"),
    "timestamp out of range": ({"feedback": [{**GOOD, "outcomeTimestamp": "2026-13-45T25:61:61Z"}]}, "RFC 3339"),
    "timestamp a number": ({"feedback": [{**GOOD, "outcomeTimestamp": 1763197531}]}, "RFC 3339"),
    "card a number": ({"feedback": [{**GOOD, "card": 42}]}, "feedback.0.card: Not a valid string"),
    "card blank": ({"feedback": [{**GOOD, "card": " "}]}, "feedback.0.card: must be the card's uuid"),
    "card too long": ({"feedback": [{**GOOD, "card": "x" * 129}]}, "feedback.0.card"),
    "outcome a list": ({"feedback": [{**GOOD, "outcome": ["accepted"]}]}, "feedback.0.outcome: Not a valid string"),
    "too many entries": ({"feedback": [GOOD] * 501}, "between 1 and 500"),
}


@pytest.mark.parametrize("body,fragment", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_every_bad_body_is_a_400_operation_outcome_and_stores_nothing(app, client, body, fragment):
    response = client.post(FEEDBACK_PATH, json=body)
    assert_outcome(response, 400, fragment)
    assert stored_feedback(app) == []


def test_bad_entries_are_rejected_one_by_one_and_the_good_ones_stored(app, client):
    body = {"feedback": [GOOD, {**GOOD, "outcome": "maybe"}, {**GOOD, "outcomeTimestamp": "yesterday"}]}
    issues = assert_outcome(client.post(FEEDBACK_PATH, json=body), 200, "1 of 3 feedback entries were accepted")
    assert [(issue["severity"], issue["code"]) for issue in issues] == [
        ("information", "informational"), ("warning", "invalid"), ("warning", "invalid")]
    assert [issue.get("expression") for issue in issues[1:]] == [["feedback.1.outcome"], ["feedback.2.outcomeTimestamp"]]
    assert "Must be one of: accepted, overridden" in issues[1]["diagnostics"]
    assert [(row.card_uuid, row.outcome) for row in stored_feedback(app)] == [(GOOD["card"], "overridden")]


def test_one_malformed_entry_in_64_costs_only_itself_and_a_retry_is_safe(app, client):
    cards = issue_cards(client)
    batch = [overridden(cards[i % len(cards)]["uuid"], f"2026-11-15T09:{i // 60:02d}:{i % 60:02d}Z")
             for i in range(64)]
    batch[17] = {**batch[17], "outcomeTimestamp": "2026-11-15 09:17"}
    for _attempt in range(2):  # the EHR retries the whole batch: nothing is stored twice
        issues = assert_outcome(client.post(FEEDBACK_PATH, json={"feedback": batch}), 200,
                                "63 of 64 feedback entries were accepted", "RFC 3339")
        assert [issue.get("expression") for issue in issues[1:]] == [["feedback.17.outcomeTimestamp"]]
        assert len(stored_feedback(app)) == 63


def test_a_batch_without_one_good_entry_is_a_400_naming_each(app, client):
    body = {"feedback": [{**GOOD, "outcome": "maybe"}, "not an object"]}
    issues = assert_outcome(client.post(FEEDBACK_PATH, json=body), 400, "feedback.1: must be a feedback object")
    assert [issue.get("expression") for issue in issues] == [["feedback.0.outcome"], ["feedback.1"]]
    assert {issue["severity"] for issue in issues} == {"error"}
    assert stored_feedback(app) == []


# -- flagged -----------------------------------------------------------------------------------------

def test_a_suggestion_the_card_never_offered_is_stored_and_flagged(app, client, caplog):
    cards = issue_cards(client)
    offering = next(card for card in cards if card.get("suggestions"))
    plain = next(card for card in cards if not card.get("suggestions"))
    offered = offering["suggestions"][0]["uuid"]
    body = {"feedback": [
        accepted(offering["uuid"], NOW, suggestions=(offered,)),
        accepted(offering["uuid"], "2026-11-15T09:06:00Z", suggestions=(offered, "5a0c0bd2-not-on-this-card")),
        accepted(plain["uuid"], NOW, suggestions=(offered,)),  # another card's suggestion
        accepted("4c1e0d1f-0000-4000-8000-000000000000", NOW, suggestions=("x",)),  # unknown card: cannot tell
        overridden(plain["uuid"], NOW),
    ]}
    response = client.post(FEEDBACK_PATH, json=body)
    assert response.status_code == 200 and response.get_json() == {}
    flags = {(row.card_uuid, row.outcome, row.outcome_at.minute): row.suggestions_known for row in stored_feedback(app)}
    assert flags == {(offering["uuid"], "accepted", 5): True, (offering["uuid"], "accepted", 6): False,
                     (plain["uuid"], "accepted", 5): False, (plain["uuid"], "overridden", 5): None,
                     ("4c1e0d1f-0000-4000-8000-000000000000", "accepted", 5): None}
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "feedback"]
    assert (record.unknown_cards, record.unknown_suggestions) == (1, 2)
    (warning,) = [r for r in caplog.records if getattr(r, "event", None) == "feedback_unknown_suggestions"]
    assert warning.count == 2 and "5a0c0bd2" not in warning.getMessage()


@pytest.mark.parametrize("data,content_type,status,fragment", [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    (b"null", "application/json", 400, "must be a JSON object"),
    (b'"feedback"', "application/json", 400, "must be a JSON object"),
    (b"feedback=1", "application/x-www-form-urlencoded", 415, "application/json"),
])
def test_a_body_that_is_not_a_json_object_is_refused(client, data, content_type, status, fragment):
    response = client.post(FEEDBACK_PATH, data=data, content_type=content_type)
    assert_outcome(response, status, fragment)


def test_other_methods_are_405_operation_outcomes(client):
    response = client.get(FEEDBACK_PATH)
    assert_outcome(response, 405)
    assert "POST" in response.headers["Allow"]


def test_a_body_over_the_size_limit_is_413(tmp_path):
    from tests.store.support import app_for, store_settings
    client = app_for(store_settings(tmp_path, max_body_bytes=2048)).test_client()
    response = client.post(FEEDBACK_PATH, json={"feedback": [GOOD] * 100})
    assert_outcome(response, 413)


def test_cors_applies_to_the_feedback_url(client):
    preflight = client.options(FEEDBACK_PATH, headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = client.post(FEEDBACK_PATH, json={"feedback": [GOOD]}, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_store_failing_is_a_503_operation_outcome_not_a_500(app, client):
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE card_feedback")
    response = client.post(FEEDBACK_PATH, json={"feedback": [GOOD]})
    assert_outcome(response, 503, "try again")
    assert response.headers["Retry-After"]


def test_feedback_logs_counts_but_no_comment_or_card_content(client, caplog):
    cards = issue_cards(client)
    comment = "Patient Jane Doe prefers to wait"
    client.post(FEEDBACK_PATH, json={"feedback": [overridden(cards[0]["uuid"], NOW, comment=comment),
                                                  accepted("never-issued", NOW)]})
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "feedback"]
    assert (record.received, record.stored, record.unknown_cards) == (2, 2, 1)
    assert not any(comment in repr(r.__dict__) for r in caplog.records)
