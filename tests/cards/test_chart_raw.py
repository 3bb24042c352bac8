"""FHIR dates in every precision, compared in UTC; calendar arithmetic; age; the strict element readers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cards.calendar import months_before
from cards.chart.dates import age_in_years, display_date, parse_datetime, read_datetime, zone_note
from cards.chart.raw import Unreadable, codings, concept_text, referenced_patient_id

UTC = timezone.utc


@pytest.mark.parametrize("value, expected", [
    ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-10", datetime(2026, 10, 1, tzinfo=UTC)),
    ("2026-10-05", datetime(2026, 10, 5, tzinfo=UTC)),
    ("2026-10-05T10:30:00Z", datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
    ("2026-10-05T01:30:00+02:00", datetime(2026, 10, 4, 23, 30, tzinfo=UTC)),
    ("2026-10-05T10:30:00.123-05:00", datetime(2026, 10, 5, 15, 30, 0, 123000, tzinfo=UTC)),
    ("2026-10-05T10:30:00", datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
    # Lenient where harmless: no time zone (UTC), no seconds (:00), over-long fractions, spaces.
    ("2026-11-10T08:30", datetime(2026, 11, 10, 8, 30, tzinfo=UTC)),
    ("2026-11-10T08:30Z", datetime(2026, 11, 10, 8, 30, tzinfo=UTC)),
    ("2026-11-10T08:30:00.1234567+01:00", datetime(2026, 11, 10, 7, 30, 0, 123456, tzinfo=UTC)),
    (" 2026-11-10 ", datetime(2026, 11, 10, tzinfo=UTC)),
])
def test_every_precision_parses_to_utc(value, expected) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize("value", ["", "20", "2026-13", "2026-02-30", "yesterday", None, 2026, {"date": "2026"}])
def test_bad_dates_are_none(value) -> None:
    assert parse_datetime(value) is None


def test_display_date_keeps_the_recorded_calendar_day() -> None:
    assert display_date("2026-10-05T01:30:00+10:00") == "2026-10-05"
    assert display_date("2026-10") == "2026-10"
    assert display_date("nonsense") is None


def test_months_before_clamps_to_month_end() -> None:
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 11, 15, 9, tzinfo=UTC), 12) == datetime(2025, 11, 15, 9, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)


def test_a_date_without_time_zone_is_noted_for_the_explain_report() -> None:
    assert zone_note("2026-11-10T08:30", "effectiveDateTime") == (
        "effectiveDateTime '2026-11-10T08:30' has no time zone; read as UTC")
    assert zone_note("2026-11-10T08:30:00Z") is None and zone_note("2026-11-10") is None


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45", 20261110, {"date": "2026"}])
def test_a_used_date_that_is_not_a_date_is_unreadable_with_its_value(value) -> None:
    with pytest.raises(Unreadable, match="effectiveDateTime"):
        read_datetime(value, "effectiveDateTime")
    assert read_datetime(None, "effectiveDateTime") is None


@pytest.mark.parametrize("birth, expected", [
    ("2008-11-15", 18), ("2008-11-16", 17), ("1990", 35), ("2008", 17), ("2008-12", 17), ("2008-10", 18),
    (None, None),
])
def test_age_uses_the_youngest_possible_age_for_partial_dates(birth, expected) -> None:
    assert age_in_years(birth, datetime(2026, 11, 15, 9, tzinfo=UTC)) == expected


@pytest.mark.parametrize("birth", ["nonsense", "2008-02-30", 1990])
def test_a_birth_date_that_is_not_a_date_is_unreadable(birth) -> None:
    with pytest.raises(Unreadable, match="birthDate"):
        age_in_years(birth, datetime(2026, 11, 15, 9, tzinfo=UTC))


def test_readers_trim_codes_and_take_empty_strings_for_absent() -> None:
    assert codings({"coding": [{"system": "s", "code": "2823-3 ", "display": ""}]}) == [("s", "2823-3", None)]
    assert codings(None) == [] and codings({"text": "only text"}) == []
    assert concept_text({"coding": [{"display": "Cramp"}]}) == "Cramp"
    assert referenced_patient_id({"subject": {"reference": "https://ehr/fhir/Patient/42/_history/3"}}) == "42"
    assert referenced_patient_id({"subject": {"reference": "urn:uuid:abc"}}) is None


@pytest.mark.parametrize("concept, reason", [
    ("R25.3", "not a CodeableConcept"),
    ({"coding": {"code": "R25.3"}}, "not a list"),
    ({"coding": [None]}, "not a Coding"),
    ({"coding": [{"system": "s", "code": 253}]}, "not text"),
])
def test_a_malformed_code_is_unreadable_not_skipped(concept, reason) -> None:
    with pytest.raises(Unreadable, match=reason):
        codings(concept)
    with pytest.raises(Unreadable):
        concept_text(concept) if not isinstance(concept, dict) or "text" in concept else codings(concept)


def test_a_subject_that_is_not_a_reference_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="subject"):
        referenced_patient_id({"subject": "Patient/1"})
