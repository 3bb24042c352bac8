"""Defensive readers for raw FHIR JSON and FHIR date/dateTime values.

Resources arrive straight from an EHR and may hold anything; these helpers never raise and return
None or an empty tuple for a value of the wrong type, so selection code stays short.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterator

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def as_dict(value: Any) -> Mapping[str, Any] | None:
    # JSON objects are plain dicts; the exact type test keeps the hot path off the ABC machinery.
    return value if type(value) is dict or isinstance(value, Mapping) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def codings(concept: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(system, code, display) of each Coding in a CodeableConcept; junk entries are skipped."""
    concept = as_dict(concept)
    if concept is None:
        return
    for coding in as_list(concept.get("coding")):
        if type(coding) is dict or isinstance(coding, Mapping):
            yield coding.get("system"), coding.get("code"), coding.get("display")


def concept_text(concept: Any) -> str | None:
    """CodeableConcept.text, else the first coding display."""
    concept = as_dict(concept)
    if concept is None:
        return None
    text = as_str(concept.get("text"))
    if text:
        return text
    for _, _, display in codings(concept):
        if as_str(display):
            return display
    return None


def first_code(concept: Any, wanted_system: str) -> str | None:
    for system, code, _ in codings(concept):
        if system == wanted_system and as_str(code):
            return code
    return None


def reference_to(resource: Mapping[str, Any]) -> str | None:
    """"Type/id" for a resource with an id, used as evidence in cards."""
    resource_type, resource_id = resource.get("resourceType"), as_str(resource.get("id"))
    return f"{resource_type}/{resource_id}" if resource_id else None


def referenced_patient_id(resource: Mapping[str, Any]) -> str | None:
    """The id in subject/patient when it is a literal Patient reference, else None."""
    for field in ("subject", "patient"):
        reference = as_str((as_dict(resource.get(field)) or {}).get("reference"))
        if reference and "Patient/" in reference:
            tail = reference.rsplit("Patient/", 1)[1]
            return tail.split("/_history", 1)[0] or None
    return None


# ---- dates ------------------------------------------------------------------------------------------
def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant of any precision as an aware UTC datetime.

    Partial dates (year, year-month) and bare dates resolve to the first instant of the period, in
    UTC: comparisons with lookback windows then err towards "too old", which asks for a fresh test
    rather than trusting an uncertain one. A time without a zone is read as UTC.
    """
    if not isinstance(value, str) or len(value) < 4:
        return None
    return _parse_datetime(value)


@lru_cache(maxsize=4096)  # charts repeat the same few dates many times
def _parse_datetime(value: str) -> datetime | None:
    match = _DATE.match(value)
    try:
        if match:
            year, month, day = (int(part) if part else 1 for part in match.groups())
            return datetime(year, month, day, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_date(value: Any) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def display_date(value: Any) -> str | None:
    """The date part as recorded (keeps the source's own precision and local calendar day)."""
    if not isinstance(value, str) or parse_datetime(value) is None:
        return None
    return value[:10]


def months_before(moment: datetime, months: float) -> datetime:
    """``moment`` minus whole calendar months (day clamped to the month's end); fractions as days."""
    whole = int(months)
    year, month = divmod(moment.month - 1 - whole, 12)
    year += moment.year
    month += 1
    day = min(moment.day, _days_in_month(year, month))
    shifted = moment.replace(year=year, month=month, day=day)
    return shifted - timedelta(days=round((months - whole) * 30.44))


def _days_in_month(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def age_in_years(birth_date: Any, now: datetime) -> int | None:
    """Completed years. A partial birthDate takes the latest possible day, i.e. the youngest age,
    so an uncertain minor is never treated as an adult."""
    if not isinstance(birth_date, str):
        return None
    match = _DATE.match(birth_date)
    if not match:
        parsed = parse_date(birth_date)
        if parsed is None:
            return None
        year, month, day = parsed.year, parsed.month, parsed.day
    else:
        year = int(match.group(1))
        month = int(match.group(2)) if match.group(2) else 12
        day = int(match.group(3)) if match.group(3) else _days_in_month(year, month)
    try:
        date(year, month, day)
    except ValueError:
        return None
    today = now.astimezone(timezone.utc).date()
    return today.year - year - ((today.month, today.day) < (month, day))
