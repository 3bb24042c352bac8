"""MedicationRequest / MedicationStatement -> MedicationUse.

The medicine is identified from medicationCodeableConcept, or from the Medication a
medicationReference points to: contained (`#id`), in the same Bundle (`search.mode: include`), or
fetched by the service (`medication_references_needed` says which). Matching, in order: an RxNorm
ingredient, clinical-drug, branded-drug or pack code; an ATC code (combinations included); a generic,
synonym or brand name in the text; last, a combination ATC code that names only a class ("lisinopril
and diuretics": a diuretic, ingredient unknown). A corticosteroid given by a local route (inhaled,
nasal, topical...) loses its systemic class.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from cards.calendar import months_before
from cards.chart import doses
from cards.chart.dates import display_date, read_datetime
from cards.chart.raw import Unreadable, codings, concept_text, element, elements, reference_tail, reference_to, text
from cards.knowledge_base import Knowledge, normalise_text
from cards.view import MedicationUse

CURRENT_STATUS = {"MedicationRequest": frozenset({"active", "on-hold"}),
                  "MedicationStatement": frozenset({"active", "intended"})}
PAST_STATUS = frozenset({"stopped", "completed"})
ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order", "instance-order", "plan"})
STEROID = "systemic_corticosteroid"
MEDICATION_TYPES = frozenset(CURRENT_STATUS)

Medicines = Mapping[str, Mapping[str, Any]]  # Medication id -> Medication resource (include entries, fetched)


def relevant_status(resource: Mapping[str, Any]) -> tuple[str | None, bool] | str:
    """(status, current) when the status can matter; else why not."""
    status = text(resource.get("status"), "status")
    status = status.lower() if status else None
    current = status in CURRENT_STATUS[resource["resourceType"]]
    if current and resource["resourceType"] == "MedicationRequest":
        intent = text(resource.get("intent"), "intent")
        if (intent or "").lower() not in ORDER_INTENTS:
            return f"intent {intent or 'missing'}"
    if not current and status not in PAST_STATUS:
        if status is None:
            raise Unreadable("it has no status")
        return f"status {status}"
    return status, current


def select_medication(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime,
                      medicines: Medicines) -> MedicationUse | str:
    """The medicine as the rules need it, or why it does not count."""
    resource_type = resource["resourceType"]
    verdict = relevant_status(resource)
    if isinstance(verdict, str):
        return verdict
    status, current = verdict
    concept, unresolved = medication_concept(resource, medicines)
    concept_codings = codings(concept, "medication")
    matched = match_ingredients(concept, concept_codings, knowledge)
    if matched is None:
        if unresolved is not None:  # an unidentified medicine may be one the rules look for
            raise Unreadable(unresolved)
        return "not a medicine the rules look for"
    ingredients, named_classes, matched_by, label = matched
    dosages = elements(resource, "dosageInstruction" if resource_type == "MedicationRequest" else "dosage")
    local = _given_locally(concept_codings, dosages, label, knowledge)
    classes = tuple(dict.fromkeys(
        drug_class for drug_class in [*(knowledge.ingredients[name].drug_class for name in ingredients), *named_classes]
        if not (local and drug_class == STEROID)))
    if not classes:
        return "a corticosteroid given locally (inhaled, nasal, topical), not systemically"
    started_raw, ended_raw = doses.period(resource, dosages)
    started, ended = read_datetime(started_raw, "start date"), read_datetime(ended_raw, "end date")
    if not current and not _recently_stopped(started, ended, now, knowledge):
        return "stopped too long ago to matter"
    steps = doses.dose_steps(dosages, doses.strength_mg(concept_codings, label, ingredients, knowledge), knowledge)
    daily = doses.current_dose(steps, now)
    factor = knowledge.ingredients[ingredients[0]].prednisone_factor if len(ingredients) == 1 else None
    return MedicationUse(
        evidence=reference_to(resource), resource_type=resource_type, status=status, current=current, text=label,
        ingredients=ingredients, classes=classes, matched_by=matched_by,
        started=started, started_text=display_date(started_raw), ended=ended, ended_text=display_date(ended_raw),
        daily_dose_mg=daily, prednisone_equivalent_mg=daily * factor if daily is not None and factor else None,
        tapering=doses.is_taper(steps), local_route=local,
    )


def medication_concept(resource: Mapping[str, Any], medicines: Medicines) -> tuple[Any, str | None]:
    """(CodeableConcept naming the medicine or None, why the medicine could not be identified or None).

    When the Medication a reference points to is nowhere to be found, the reference's display may still
    name the medicine; if it names none the rules know, the medicine counts as unidentified."""
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return concept, None
    reference = element(resource, "medicationReference")
    if reference is None:
        raise Unreadable("it names no medicine (no medication[x])")
    target = text(reference.get("reference"), "medicationReference.reference")
    display = text(reference.get("display"), "medicationReference.display")
    medication = _resolve(resource, target, medicines) if target else None
    if medication is not None:
        code = medication.get("code")
        if code is not None:
            return code, None
        return None, f"the Medication it refers to ({target}) has no code"
    missing = f"the medicine it refers to ({target or 'no reference'}) could not be found"
    return ({"text": display} if display else None), missing


def _resolve(resource: Mapping[str, Any], target: str, medicines: Medicines) -> Mapping[str, Any] | None:
    if target.startswith("#"):
        for contained in elements(resource, "contained"):
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                return contained
        return None
    medication_id = reference_tail(target, "Medication")
    return medicines.get(medication_id) if medication_id else None


def medication_references_needed(resources: list[Any], medicines: Medicines) -> list[str]:
    """`Medication/{id}` references of medicines that may matter (current or recently stopped) whose
    Medication is neither contained nor in the data: the service may fetch them."""
    needed = []
    for resource in resources:
        if type(resource) is not dict or type(resource.get("resourceType")) is not str \
                or resource["resourceType"] not in MEDICATION_TYPES or resource.get("medicationCodeableConcept") is not None:
            continue
        try:
            if isinstance(relevant_status(resource), str):
                continue
            reference = element(resource, "medicationReference") or {}
            target = text(reference.get("reference"), "reference")
        except Unreadable:
            continue
        if not target or target.startswith("#") or _resolve(resource, target, medicines) is not None:
            continue
        medication_id = reference_tail(target, "Medication")
        if medication_id and f"Medication/{medication_id}" not in needed:
            needed.append(f"Medication/{medication_id}")
    return needed


def match_ingredients(concept: Any, concept_codings, knowledge: Knowledge):
    """(ingredients, classes named without an ingredient, matched_by, display text) or None."""
    label = concept_text(concept, "medication") or ""
    for system_name, index in (("rxnorm", knowledge.ingredients_by_rxnorm), ("atc", knowledge.ingredients_by_atc)):
        found = [name for system_uri, code, _ in concept_codings
                 if knowledge.system_of(system_uri) == system_name for name in index.get(code, ())]
        if found:
            return tuple(dict.fromkeys(found)), (), system_name, label or found[0]
    texts = [label] + [display for _, _, display in concept_codings if display]
    found = [name for value in texts for match in knowledge.medicine_names.finditer(normalise_text(value))
             for name in knowledge.ingredients_by_name[match.group(0)]]
    if found:
        return tuple(dict.fromkeys(found)), (), "text", label or found[0]
    class_only = [knowledge.classes_by_atc[code] for system_uri, code, _ in concept_codings
                  if knowledge.system_of(system_uri) == "atc" and code in knowledge.classes_by_atc]
    if class_only:
        classes = tuple(dict.fromkeys(c for entry in class_only for c in entry.classes))
        return (), classes, "atc", label or class_only[0].display
    return None


def _given_locally(concept_codings, dosages: list[Mapping[str, Any]], label: str, knowledge: Knowledge) -> bool:
    for system_uri, code, _ in concept_codings:
        if knowledge.system_of(system_uri) == "atc" and code and code.startswith(knowledge.local_atc_prefixes):
            return True
    for dosage in dosages:
        route = element(dosage, "route")
        if route is None:
            continue
        if any((knowledge.system_of(s), c) in knowledge.local_route_codes for s, c, _ in codings(route, "route")):
            return True
        if knowledge.local_words.search(normalise_text(concept_text(route, "route") or "")):
            return True
    return bool(knowledge.local_words.search(normalise_text(label)))


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


def _recently_stopped(started: datetime | None, ended: datetime | None, now: datetime, knowledge: Knowledge) -> bool:
    # A stop cannot precede the start, so a recent start also means a recent stop.
    window_start = months_before(now, knowledge.thresholds.lookback_shortening_trigger_months)
    last_known = ended or started
    return last_known is not None and last_known >= window_start
