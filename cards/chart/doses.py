"""Dosage instructions -> mg per day, periods of use and tapering, for the medicines the rules read.

Only the elements that carry a dose, a schedule or a period are read (doseAndRate.doseQuantity,
timing, boundsPeriod, sequence). A dose sent without a unit (Synthea
writes `doseQuantity {value: 2}`) counts unit doses: tablets, capsules or puffs of the product.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from cards.chart.dates import read_datetime
from cards.chart.raw import codings, element, elements, number, text
from cards.knowledge_base import Knowledge

_MG_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
_UNDATED = datetime(9999, 12, 31, tzinfo=timezone.utc)
# UCUM time units (Timing.periodUnit, Duration.code), in days, calendar-free: a month is 30 days, a year 365.
DAYS_PER_TIME_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}


def period(resource: Mapping[str, Any], dosages: list[Mapping[str, Any]]) -> tuple[Any, Any]:
    """Raw start and end of use, from the resource's own period fields and dosage bounds."""
    effective = element(resource, "effectivePeriod") or {}
    validity = element(element(resource, "dispenseRequest") or {}, "validityPeriod") or {}
    starts = [resource.get("authoredOn"), effective.get("start"), resource.get("effectiveDateTime"),
              resource.get("dateAsserted")]
    ends = [effective.get("end"), validity.get("end")]
    for bounds in _bounds(dosages):
        starts.append(bounds.get("start"))
        ends.append(bounds.get("end"))
    start = min(((read_datetime(v, "start date"), v) for v in starts if v is not None), default=(None, None),
                key=lambda pair: pair[0])
    end = max(((read_datetime(v, "end date"), v) for v in ends if v is not None), default=(None, None),
              key=lambda pair: pair[0])
    return start[1], end[1]


def _bounds(dosages: list[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for dosage in dosages:
        repeat = element(element(dosage, "timing") or {}, "repeat") or {}
        bounds = element(repeat, "boundsPeriod")
        if bounds:
            yield bounds


def strength_mg(concept_codings, label: str, ingredients: tuple[str, ...], knowledge: Knowledge) -> float | None:
    for system_uri, code, _ in concept_codings:
        if knowledge.system_of(system_uri) == "rxnorm" and code in knowledge.product_strength_mg:
            by_ingredient = knowledge.product_strength_mg[code]
            known = [by_ingredient[name] for name in ingredients if name in by_ingredient]
            if len(known) == 1:
                return known[0]
    if len(ingredients) == 1:
        amounts = _MG_IN_TEXT.findall(label)
        if len(amounts) == 1:
            return float(amounts[0])
    return None


def dose_steps(dosages: list[Mapping[str, Any]], strength: float | None, knowledge: Knowledge):
    """(start, end, mg per day or None, order) for each dosage instruction."""
    steps = []
    for order, dosage in enumerate(dosages):
        timing = element(dosage, "timing") or {}
        bounds = element(element(timing, "repeat") or {}, "boundsPeriod") or {}
        per_dose = _dose_mg(dosage, strength, knowledge)
        per_day = _administrations_per_day(timing, knowledge)
        daily = per_dose * per_day if per_dose is not None and per_day is not None else None
        sequence = number(dosage.get("sequence"), "dosage.sequence")
        steps.append((read_datetime(bounds.get("start"), "dosage start"), read_datetime(bounds.get("end"), "dosage end"),
                      daily, sequence if sequence is not None else order))
    return steps


def _dose_mg(dosage: Mapping[str, Any], strength: float | None, knowledge: Knowledge) -> float | None:
    for dose_and_rate in elements(dosage, "doseAndRate"):
        quantity = element(dose_and_rate, "doseQuantity")
        if quantity is None:
            continue
        value = number(quantity.get("value"), "doseQuantity.value")
        unit = (text(quantity.get("code"), "doseQuantity.code") or text(quantity.get("unit"), "doseQuantity.unit")
                or "").lower()
        if value is None:
            continue
        if unit in _MASS_TO_MG:
            return value * _MASS_TO_MG[unit]
        if (unit in knowledge.unit_dose_words or unit == "") and strength is not None:
            return value * strength
    return None


def _administrations_per_day(timing: Mapping[str, Any], knowledge: Knowledge) -> float | None:
    for _, code, _ in codings(timing.get("code"), "timing.code"):
        if code in knowledge.timing_per_day:
            return float(knowledge.timing_per_day[code])
    repeat = element(timing, "repeat")
    if repeat is None:
        return 1.0  # no timing: read as once daily, the usual corticosteroid schedule
    frequency = number(repeat.get("frequency"), "timing.repeat.frequency") or 1.0
    every = number(repeat.get("period"), "timing.repeat.period") or 1.0
    days = DAYS_PER_TIME_UNIT.get(text(repeat.get("periodUnit"), "timing.repeat.periodUnit") or "d")
    return frequency / (every * days) if days else None


def current_dose(steps, now: datetime) -> float | None:
    dosed = [step for step in steps if step[2] is not None]
    if not dosed:
        return None
    for start, end, daily, _ in dosed:
        if (start is None or start <= now) and (end is None or now <= end):
            return daily
    return max(step[2] for step in dosed)


def is_taper(steps) -> bool:
    """Falling doses in the order itself (issue 13 item 8): a later dosage step lower than an earlier one.
    A word such as "taper" in a note or an instruction is not read: "review before any taper" is a plan,
    not a taper."""
    # Steps in time order (bounds start, then sequence); undated steps after dated ones.
    dosed = sorted((step for step in steps if step[2] is not None), key=lambda step: (step[0] or _UNDATED, step[3]))
    return any(later[2] < earlier[2] for earlier, later in zip(dosed, dosed[1:]))
