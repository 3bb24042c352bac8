"""FHIR date, dateTime and instant values, read leniently where that is harmless.

A dateTime without a time zone is read as UTC (the explain report notes it), one without seconds as
:00; partial dates (year, year-month) keep their precision for display and resolve to the first
instant of the period for comparison, which errs towards "too old" and so asks for a fresh test rather
than trusting an uncertain one. A value that is not a date at all makes the element unreadable.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

from cards.calendar import days_in_month
from cards.chart.raw import Unreadable

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_HAS_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def read_datetime(value: Any, name: str) -> datetime | None:
    """The instant as an aware UTC datetime; None when absent; Unreadable when not a date."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unreadable(f"{name} is not a date")
    parsed = parse_datetime(value)
    if parsed is None:
        raise Unreadable(f"{name} {value.strip()[:40]!r} is not a date")
    return parsed


def parse_datetime(value: Any) -> datetime | None:
    """Lenient: None for anything that is not a FHIR date, dateTime or instant."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    return _parse_datetime(value)


@lru_cache(maxsize=4096)  # charts repeat the same few dates many times
def _parse_datetime(value: str) -> datetime | None:
    value = value.strip()
    match = _DATE.match(value)
    try:
        if match:
            year, month, day = (int(part) if part else 1 for part in match.groups())
            return datetime(year, month, day, tzinfo=timezone.utc)
        if "T" not in value and " " not in value:
            return None
        parsed = datetime.fromisoformat(_LONG_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def zone_note(value: Any, name: str = "dateTime") -> str | None:
    """For the explain report: a dateTime with a time but no zone, read as UTC."""
    if isinstance(value, str) and "T" in value and parse_datetime(value) and not _HAS_ZONE.search(value.strip()):
        return f"{name} {value.strip()!r} has no time zone; read as UTC"
    return None


def display_date(value: Any) -> str | None:
    """The date part as recorded (keeps the source's own precision and local calendar day)."""
    if not isinstance(value, str) or parse_datetime(value) is None:
        return None
    return value.strip()[:10]


def age_in_years(birth_date: Any, now: datetime) -> int | None:
    """Completed years. A partial birthDate takes the latest possible day, i.e. the youngest age,
    so an uncertain minor is never treated as an adult. Unreadable when birthDate is not a date."""
    if birth_date is None:
        return None
    if not isinstance(birth_date, str):
        raise Unreadable("birthDate is not a date")
    match = _DATE.match(birth_date.strip())
    if match:
        year = int(match.group(1))
        month = int(match.group(2)) if match.group(2) else 12
        day = int(match.group(3)) if match.group(3) else (days_in_month(year, month) if 1 <= month <= 12 else 0)
    else:
        parsed = read_datetime(birth_date, "birthDate")
        year, month, day = parsed.year, parsed.month, parsed.day
    try:
        date(year, month, day)
    except ValueError:
        raise Unreadable(f"birthDate {birth_date.strip()[:20]!r} is not a date") from None
    today = now.astimezone(timezone.utc).date()
    return today.year - year - ((today.month, today.day) < (month, day))
