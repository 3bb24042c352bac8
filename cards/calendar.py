"""Calendar arithmetic shared by the reading layer and the rules (no FHIR here)."""
from __future__ import annotations

from datetime import date, datetime, timedelta


def months_before(moment: datetime, months: float) -> datetime:
    """``moment`` minus whole calendar months (day clamped to the month's end); fractions as days."""
    whole = int(months)
    year, month = divmod(moment.month - 1 - whole, 12)
    year += moment.year
    month += 1
    day = min(moment.day, days_in_month(year, month))
    shifted = moment.replace(year=year, month=month, day=day)
    return shifted - timedelta(days=round((months - whole) * 30.44))


def days_in_month(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day
