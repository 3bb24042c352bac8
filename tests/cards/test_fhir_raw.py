"""FHIR dates in every precision, compared in UTC; calendar arithmetic; age; defensive readers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cards.fhir_raw import (age_in_years, codings, concept_text, display_date, months_before, parse_datetime,
                            referenced_patient_id)

UTC = timezone.utc


@pytest.mark.parametrize("value, expected", [
    ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-10", datetime(2026, 10, 1, tzinfo=UTC)),
    ("2026-10-05", datetime(2026, 10, 5, tzinfo=UTC)),
    ("2026-10-05T10:30:00Z", datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
    ("2026-10-05T01:30:00+02:00", datetime(2026, 10, 4, 23, 30, tzinfo=UTC)),
    ("2026-10-05T10:30:00.123-05:00", datetime(2026, 10, 5, 15, 30, 0, 123000, tzinfo=UTC)),
    ("2026-10-05T10:30:00", datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
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


@pytest.mark.parametrize("birth, expected", [
    ("2008-11-15", 18), ("2008-11-16", 17), ("1990", 35), ("2008", 17), ("2008-12", 17), ("2008-10", 18),
    ("nonsense", None), (None, None),
])
def test_age_uses_the_youngest_possible_age_for_partial_dates(birth, expected) -> None:
    assert age_in_years(birth, datetime(2026, 11, 15, 9, tzinfo=UTC)) == expected


def test_readers_skip_junk() -> None:
    assert list(codings({"coding": [None, "x", {"system": "s", "code": "c"}]})) == [("s", "c", None)]
    assert list(codings("R25.3")) == []
    assert concept_text({"coding": [{"display": "Cramp"}]}) == "Cramp"
    assert concept_text(["x"]) is None
    assert referenced_patient_id({"subject": {"reference": "https://ehr/fhir/Patient/42/_history/3"}}) == "42"
    assert referenced_patient_id({"subject": {"reference": "urn:uuid:abc"}}) is None
    assert referenced_patient_id({"subject": "Patient/1"}) is None
