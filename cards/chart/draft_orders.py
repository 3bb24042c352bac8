"""The draft orders of order-select / order-sign (`context.draftOrders`) -> DraftMedication.

Only MedicationRequests are read; other orders (ServiceRequest, NutritionOrder...) are left alone. The
medicine is matched exactly as on the chart (cards/chart/medications.py). Read, and nothing else:
the medicine, the stated reason (reasonCode, reasonReference to a Condition of the chart), the dose
and the period the order covers. The public CDS Hooks Sandbox sends not-quite-R4 drafts, tolerated
here: no `intent`, `category` and `reasonCode` as single objects, a dose counted in `{pill}`, and
(before R4) `doseQuantity` directly on the dosage. A draft with no medicine yet (the sandbox while a
drug is being picked) has nothing to check; one whose used element is malformed is reported.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Iterable

from cards.chart import doses
from cards.chart.dates import read_datetime
from cards.chart.findings import match_concept
from cards.chart.medications import STEROID, _given_locally, match_ingredients, medication_concept
from cards.chart.raw import (Unreadable, code_value, codings, concept_text, element, elements, is_object, number,
                             reference_tail, reference_to, text)
from cards.knowledge_base import Knowledge
from cards.view import DraftMedication, UnreadableDraft

# Statuses of a draft that will not be signed: nothing to check.
WITHDRAWN = frozenset({"entered-in-error", "cancelled", "revoked"})
# Words for the UCUM time units of doses.DAYS_PER_TIME_UNIT, as a Duration's `unit` may spell them.
_UNIT_WORDS = {"second": "s", "seconds": "s", "minute": "min", "minutes": "min", "hour": "h", "hours": "h",
               "day": "d", "days": "d", "week": "wk", "weeks": "wk", "month": "mo", "months": "mo",
               "year": "a", "years": "a"}


def read_draft_orders(bundle: Any, knowledge: Knowledge, now: datetime, *, selections: Iterable[str] | None = None,
                      conditions: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> tuple[tuple[DraftMedication, ...], tuple[UnreadableDraft, ...]]:
    """The draft medicines the rules know, and the drafts that could not be read.

    ``selections``: the order-select selections (None: every draft is being signed). ``conditions``:
    the chart's Conditions by id, for a reason given as a reference."""
    chosen = None if selections is None else frozenset(selections)
    found, unreadable = [], []
    for resource in _draft_resources(bundle):
        evidence = reference_to(resource)
        try:
            draft = _read(resource, knowledge, now, conditions or {})
        except Unreadable as error:
            unreadable.append(UnreadableDraft(evidence, error.reason))
            continue
        if draft is None:
            continue
        found.append(DraftMedication(**{**draft, "evidence": evidence,
                                        "selected": chosen is None or evidence in chosen}))
    return tuple(found), tuple(unreadable)


def conditions_by_id(resources: Iterable[Any]) -> dict[str, Mapping[str, Any]]:
    return {resource["id"]: resource for resource in resources
            if is_object(resource) and resource.get("resourceType") == "Condition" and isinstance(resource.get("id"), str)}


def _draft_resources(bundle: Any) -> list[Mapping[str, Any]]:
    if not is_object(bundle):
        return []
    entries = bundle.get("entry")
    return [entry["resource"] for entry in (entries if isinstance(entries, list) else [])
            if is_object(entry) and is_object(entry.get("resource"))
            and entry["resource"].get("resourceType") == "MedicationRequest"]


def _read(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime,
          conditions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    if code_value(resource, "status") in WITHDRAWN:
        return None
    if resource.get("medicationCodeableConcept") is None and resource.get("medicationReference") is None:
        return None  # no medicine chosen yet: nothing to check
    concept, unresolved = medication_concept(resource, {})
    concept_codings = codings(concept, "medication")
    matched = match_ingredients(concept, concept_codings, knowledge)
    if matched is None:
        if unresolved is not None:
            raise Unreadable(unresolved)
        return None  # most prescriptions: a medicine the rules do not look for
    ingredients, named_classes, matched_by, label = matched
    dosages = [_r4_dosage(dosage) for dosage in elements(resource, "dosageInstruction")]
    local = _given_locally(concept_codings, dosages, label, knowledge)
    classes = tuple(dict.fromkeys(
        drug_class for drug_class in [*(knowledge.ingredients[name].drug_class for name in ingredients), *named_classes]
        if not (local and drug_class == STEROID)))
    if not classes:
        return None  # a corticosteroid given locally
    draft: dict[str, Any] = {"text": label, "ingredients": ingredients, "classes": classes, "matched_by": matched_by}
    draft.update(_reason(resource, knowledge, conditions))
    draft.update(_duration(resource, dosages))
    draft.update(_dose(concept_codings, label, ingredients, dosages, knowledge, now))
    return draft


def _r4_dosage(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    """A dosage with its dose where R4 keeps it: `doseQuantity` on the dosage itself (STU3, and the
    sandbox before R4) moved into `doseAndRate`."""
    if "doseQuantity" in dosage and "doseAndRate" not in dosage:
        return {**dosage, "doseAndRate": [{"doseQuantity": dosage["doseQuantity"]}]}
    return dosage


def _reason(resource: Mapping[str, Any], knowledge: Knowledge,
            conditions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What the order says it is for: reasonCode (one CodeableConcept or a list) and reasonReference
    to a Condition of the chart. A malformed reason is reported, and then counts as stated."""
    concepts, texts = [], []
    try:
        stated = list(elements(resource, "reasonCode"))
        for reference in elements(resource, "reasonReference"):
            target = text(reference.get("reference"), "reasonReference.reference") or ""
            condition = conditions.get(reference_tail(target, "Condition") or "")
            if condition is not None and condition.get("code") is not None:
                stated.append(element(condition, "code"))
            else:
                display = text(reference.get("display"), "reasonReference.display")
                texts.append(display or target or "a reason that could not be looked up")
        for concept in stated:
            matched = match_concept(concept, knowledge)
            if matched is not None:
                concepts.append(matched[0])
            label = concept_text(concept, "reasonCode")
            if label:
                texts.append(label)
            elif matched is None:  # a code the rules do not know, without text: shown as the code
                code = next((code for _, code, _ in codings(concept, "reasonCode") if code), None)
                if code:
                    texts.append(f"code {code}")
    except Unreadable as error:
        return {"reason_unreadable": error.reason}
    return {"reason_concepts": tuple(dict.fromkeys(concepts)), "reason_texts": tuple(dict.fromkeys(texts))}


def _duration(resource: Mapping[str, Any], dosages: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The longest period the order states it covers, and where it says so. Never guessed: when none
    is stated it is unknown, and when a stated one cannot be read the duration is unknown, with why."""
    candidates: list[tuple[float, str]] = []
    try:
        dispense = element(resource, "dispenseRequest") or {}
        supply = _days(element(dispense, "expectedSupplyDuration"), "dispenseRequest.expectedSupplyDuration")
        if supply is not None:
            repeats = number(dispense.get("numberOfRepeatsAllowed"), "dispenseRequest.numberOfRepeatsAllowed") or 0
            candidates.append((supply * (1 + repeats), "supply_with_repeats" if repeats else "supply"))
        validity = _period_days(element(dispense, "validityPeriod"), "dispenseRequest.validityPeriod")
        if validity is not None:
            candidates.append((validity, "validity"))
        for dosage in dosages:
            repeat = element(element(dosage, "timing") or {}, "repeat") or {}
            bounds = _days(element(repeat, "boundsDuration"), "timing.repeat.boundsDuration")
            if bounds is not None:
                candidates.append((bounds, "bounds_duration"))
            period = _period_days(element(repeat, "boundsPeriod"), "timing.repeat.boundsPeriod")
            if period is not None:
                candidates.append((period, "bounds_period"))
    except Unreadable as error:
        return {"duration_unreadable": error.reason}
    if not candidates:
        return {}
    days, source = max(candidates)
    return {"duration_days": days, "duration_source": source}


def _days(duration: Mapping[str, Any] | None, name: str) -> float | None:
    if duration is None:
        return None
    value = number(duration.get("value"), f"{name}.value")
    if value is None:
        return None
    unit = text(duration.get("code"), f"{name}.code") or text(duration.get("unit"), f"{name}.unit") or ""
    unit = _UNIT_WORDS.get(unit.lower(), unit)
    if unit not in doses.DAYS_PER_TIME_UNIT:
        raise Unreadable(f"{name} has a unit that is not a time unit")
    if value < 0:
        raise Unreadable(f"{name} is negative")
    return value * doses.DAYS_PER_TIME_UNIT[unit]


def _period_days(period: Mapping[str, Any] | None, name: str) -> float | None:
    """Days from start to end, both days counted; None unless both are stated."""
    if period is None or period.get("start") is None or period.get("end") is None:
        return None
    start, end = read_datetime(period.get("start"), f"{name}.start"), read_datetime(period.get("end"), f"{name}.end")
    if start is None or end is None:
        return None
    if end < start:
        raise Unreadable(f"{name} ends before it starts")
    return (end - start).total_seconds() / 86400 + 1


def _dose(concept_codings, label: str, ingredients: tuple[str, ...], dosages: list[Mapping[str, Any]],
          knowledge: Knowledge, now: datetime) -> dict[str, Any]:
    try:
        strength = doses.strength_mg(concept_codings, label, ingredients, knowledge)
        steps = doses.dose_steps(dosages, strength, knowledge)
    except Unreadable as error:
        return {"dose_unreadable": error.reason}
    daily = doses.current_dose(steps, now)
    factor = knowledge.ingredients[ingredients[0]].prednisone_factor if len(ingredients) == 1 else None
    return {"daily_dose_mg": daily,
            "prednisone_equivalent_mg": daily * factor if daily is not None and factor else None}
