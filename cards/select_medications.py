"""MedicationRequest / MedicationStatement -> MedicationUse.

Matching order (medications.yaml): RxNorm ingredient or product code, then ATC, then whole-word
text match of ingredient names and synonyms. A corticosteroid given by a local route (inhaled,
nasal, topical...) loses its systemic class.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from cards.fhir_raw import (as_dict, as_list, as_number, as_str, codings, concept_text, display_date,
                            months_before, parse_datetime, reference_to)
from cards.knowledge_base import Knowledge, normalise_text
from cards.view import MedicationUse

CURRENT_STATUS = {"MedicationRequest": frozenset({"active", "on-hold"}),
                  "MedicationStatement": frozenset({"active", "intended"})}
PAST_STATUS = frozenset({"stopped", "completed"})
ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order", "instance-order", "plan"})
STEROID = "systemic_corticosteroid"
_MG_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
_UNDATED = datetime(9999, 12, 31, tzinfo=timezone.utc)
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}


def select_medication(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime) -> MedicationUse | None:
    """The medicine as the rules need it, or None if irrelevant, not current and not recently stopped."""
    resource_type = resource.get("resourceType")
    status = resource.get("status")
    current = status in CURRENT_STATUS.get(resource_type, ())
    if current and resource_type == "MedicationRequest" and resource.get("intent") not in ORDER_INTENTS:
        return None
    if not current and status not in PAST_STATUS:
        return None
    concept = _medication_concept(resource)
    matched = match_ingredients(concept, resource, knowledge)
    if matched is None:
        return None
    ingredients, matched_by, text = matched
    dosages = as_list(resource.get("dosageInstruction" if resource_type == "MedicationRequest" else "dosage"))
    local = _given_locally(concept, dosages, text, knowledge)
    classes = tuple(dict.fromkeys(
        knowledge.ingredients[name].drug_class for name in ingredients
        if not (local and knowledge.ingredients[name].drug_class == STEROID)))
    if not classes:
        return None
    started_raw, ended_raw = _period(resource, dosages)
    started, ended = parse_datetime(started_raw), parse_datetime(ended_raw)
    if not current and not _recently_stopped(started, ended, now, knowledge):
        return None
    steps = _dose_steps(dosages, _strength_mg(concept, text, ingredients, knowledge), knowledge)
    daily = _current_dose(steps, now)
    factor = knowledge.ingredients[ingredients[0]].prednisone_factor if len(ingredients) == 1 else None
    return MedicationUse(
        evidence=reference_to(resource), resource_type=resource_type, status=status, current=current, text=text,
        ingredients=ingredients, classes=classes, matched_by=matched_by,
        started=started, started_text=display_date(started_raw), ended=ended, ended_text=display_date(ended_raw),
        daily_dose_mg=daily, prednisone_equivalent_mg=daily * factor if daily is not None and factor else None,
        tapering=_is_taper(steps, dosages, resource), local_route=local,
    )


def tapered_or_stopped_within(medication: MedicationUse, now: datetime, days: int) -> bool:
    """A systemic corticosteroid stepping down now, or stopped/completed within the last ``days``."""
    if STEROID not in medication.classes:
        return False
    if medication.current:
        return medication.tapering  # a current prescription that steps the dose down: tapering now
    # A planned end still in the future says nothing about when it was stopped; a stop cannot precede
    # the start, so a start inside the window means a stop inside it too.
    ended = medication.ended if medication.ended and medication.ended <= now else None
    last_known = ended or medication.started
    return last_known is not None and now - timedelta(days=days) <= last_known <= now


def match_ingredients(concept: Any, resource: Mapping[str, Any], knowledge: Knowledge):
    """(ingredients, matched_by, display text) or None."""
    text = concept_text(concept) or as_str((as_dict(resource.get("medicationReference")) or {}).get("display")) or ""
    for system_name, index in (("rxnorm", knowledge.ingredients_by_rxnorm), ("atc", knowledge.ingredients_by_atc)):
        found = [name for system_uri, code, _ in codings(concept)
                 if knowledge.system_of(system_uri) == system_name for name in index.get(code, ())]
        if found:
            return tuple(dict.fromkeys(found)), system_name, text or found[0]
    texts = [text] + [display for _, _, display in codings(concept) if isinstance(display, str)]
    found = [knowledge.ingredient_by_name[match.group(0)]
             for value in texts for match in knowledge.medicine_names.finditer(normalise_text(value))]
    if found:
        return tuple(dict.fromkeys(found)), "text", text or found[0]
    return None


def _medication_concept(resource: Mapping[str, Any]) -> Any:
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return concept
    reference = as_str((as_dict(resource.get("medicationReference")) or {}).get("reference"))
    if reference and reference.startswith("#"):
        for contained in as_list(resource.get("contained")):
            contained = as_dict(contained)
            if contained and contained.get("resourceType") == "Medication" and contained.get("id") == reference[1:]:
                return contained.get("code")
    return None


def _given_locally(concept: Any, dosages: list[Any], text: str, knowledge: Knowledge) -> bool:
    for system_uri, code, _ in codings(concept):
        if knowledge.system_of(system_uri) == "atc" and isinstance(code, str) and \
                code.startswith(knowledge.local_atc_prefixes):
            return True
    for dosage in dosages:
        route = as_dict((as_dict(dosage) or {}).get("route"))
        if route is None:
            continue
        if any((knowledge.system_of(s), c) in knowledge.local_route_codes for s, c, _ in codings(route)):
            return True
        if knowledge.local_words.search(normalise_text(concept_text(route) or "")):
            return True
    return bool(knowledge.local_words.search(normalise_text(text)))


def _period(resource: Mapping[str, Any], dosages: list[Any]) -> tuple[Any, Any]:
    """Raw start and end of use, from the resource's own period fields and dosage bounds."""
    period = as_dict(resource.get("effectivePeriod")) or {}
    validity = as_dict((as_dict(resource.get("dispenseRequest")) or {}).get("validityPeriod")) or {}
    starts = [resource.get("authoredOn"), period.get("start"), resource.get("effectiveDateTime"),
              resource.get("dateAsserted")]
    ends = [period.get("end"), validity.get("end")]
    for bounds in _bounds(dosages):
        starts.append(bounds.get("start"))
        ends.append(bounds.get("end"))
    start = min((v for v in starts if parse_datetime(v)), key=parse_datetime, default=None)
    end = max((v for v in ends if parse_datetime(v)), key=parse_datetime, default=None)
    return start, end


def _bounds(dosages: list[Any]) -> Iterable[Mapping[str, Any]]:
    for dosage in dosages:
        repeat = as_dict((as_dict((as_dict(dosage) or {}).get("timing")) or {}).get("repeat")) or {}
        bounds = as_dict(repeat.get("boundsPeriod"))
        if bounds:
            yield bounds


def _recently_stopped(started: datetime | None, ended: datetime | None, now: datetime, knowledge: Knowledge) -> bool:
    # A stop cannot precede the start, so a recent start also means a recent stop.
    window_start = months_before(now, knowledge.thresholds.lookback_shortening_trigger_months)
    last_known = ended or started
    return last_known is not None and last_known >= window_start


def _strength_mg(concept: Any, text: str, ingredients: tuple[str, ...], knowledge: Knowledge) -> float | None:
    for system_uri, code, _ in codings(concept):
        if knowledge.system_of(system_uri) == "rxnorm" and code in knowledge.product_strength_mg:
            return knowledge.product_strength_mg[code]
    if len(ingredients) == 1:
        amounts = _MG_IN_TEXT.findall(text)
        if len(amounts) == 1:
            return float(amounts[0])
    return None


def _dose_steps(dosages: list[Any], strength_mg: float | None, knowledge: Knowledge):
    """(start, end, mg per day or None, order) for each dosage instruction."""
    steps = []
    for order, dosage in enumerate(dosages):
        dosage = as_dict(dosage)
        if dosage is None:
            continue
        timing = as_dict(dosage.get("timing")) or {}
        bounds = as_dict((as_dict(timing.get("repeat")) or {}).get("boundsPeriod")) or {}
        per_dose = _dose_mg(dosage, strength_mg, knowledge)
        per_day = _administrations_per_day(timing, knowledge)
        daily = per_dose * per_day if per_dose is not None and per_day is not None else None
        sequence = as_number(dosage.get("sequence"))
        steps.append((parse_datetime(bounds.get("start")), parse_datetime(bounds.get("end")), daily,
                      sequence if sequence is not None else order))
    return steps


def _dose_mg(dosage: Mapping[str, Any], strength_mg: float | None, knowledge: Knowledge) -> float | None:
    for dose_and_rate in as_list(dosage.get("doseAndRate")):
        quantity = as_dict((as_dict(dose_and_rate) or {}).get("doseQuantity"))
        if quantity is None:
            continue
        value = as_number(quantity.get("value"))
        unit = (as_str(quantity.get("code")) or as_str(quantity.get("unit")) or "").lower()
        if value is None:
            continue
        if unit in _MASS_TO_MG:
            return value * _MASS_TO_MG[unit]
        if unit in knowledge.unit_dose_words and strength_mg is not None:
            return value * strength_mg
    return None


def _administrations_per_day(timing: Mapping[str, Any], knowledge: Knowledge) -> float | None:
    for _, code, _ in codings(timing.get("code")):
        if code in knowledge.timing_per_day:
            return float(knowledge.timing_per_day[code])
    repeat = as_dict(timing.get("repeat"))
    if repeat is None:
        return 1.0  # no timing: read as once daily, the usual corticosteroid schedule
    frequency = as_number(repeat.get("frequency")) or 1.0
    period = as_number(repeat.get("period")) or 1.0
    days = _PERIOD_DAYS.get(repeat.get("periodUnit") or "d")
    return frequency / (period * days) if days else None


def _current_dose(steps, now: datetime) -> float | None:
    dosed = [step for step in steps if step[2] is not None]
    if not dosed:
        return None
    for start, end, daily, _ in dosed:
        if (start is None or start <= now) and (end is None or now <= end):
            return daily
    return max(step[2] for step in dosed)


def _is_taper(steps, dosages: list[Any], resource: Mapping[str, Any]) -> bool:
    texts = [as_str((as_dict(d) or {}).get("text")) or "" for d in dosages]
    texts += [as_str((as_dict(d) or {}).get("patientInstruction")) or "" for d in dosages]
    texts += [as_str((as_dict(note) or {}).get("text")) or "" for note in as_list(resource.get("note"))]
    if any("taper" in text.lower() for text in texts):
        return True
    # Steps in time order (bounds start, then sequence); undated steps after dated ones.
    dosed = sorted((step for step in steps if step[2] is not None), key=lambda step: (step[0] or _UNDATED, step[3]))
    return any(later[2] < earlier[2] for earlier, later in zip(dosed, dosed[1:]))
