"""Conditions and finding Observations -> ClinicalFinding.

Selection runs on the raw JSON (code membership, status, recency); only the survivors are validated
with the R4B models by the caller.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from cards.fhir_raw import (as_dict, as_list, as_str, codings, concept_text, display_date, months_before,
                            parse_datetime, reference_to)
from cards.knowledge_base import Concept, Knowledge, normalise_text
from cards.view import ClinicalFinding

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
INACTIVE_CLINICAL = frozenset({"inactive", "resolved", "remission"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})


def match_concept(concept: Any, knowledge: Knowledge) -> tuple[str, str, str, str | None] | None:
    """(concept key, system, matched code, display) for the first coding in any value set, else None."""
    for system_uri, code, display in codings(concept):
        system = knowledge.system_of(system_uri)
        if system is None or not isinstance(code, str):
            continue
        if system == "icd10cm":
            code = _dotted_icd(code)
        key = knowledge.concept_by_code.get((system, code))
        if key is None:
            key = next((owner for prefix, owner in knowledge.concept_prefixes.get(system, ())
                        if code.startswith(prefix)), None)
        if key is not None:
            return key, system, code, display if isinstance(display, str) else None
    return None


def _dotted_icd(code: str) -> str:
    code = code.strip().upper()
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and "." not in code else code


def status_code(concept: Any) -> str | None:
    for _, code, _ in codings(concept):
        if isinstance(code, str):
            return code
    return None


def select_condition(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime) -> ClinicalFinding | None:
    """The finding a Condition records, or None if it is irrelevant, inactive, refuted or too old."""
    matched = match_concept(resource.get("code"), knowledge)
    if matched is None:
        return None
    if status_code(resource.get("verificationStatus")) in EXCLUDED_VERIFICATION:
        return None
    clinical = status_code(resource.get("clinicalStatus"))
    if clinical in INACTIVE_CLINICAL:
        return None
    explicitly_active = clinical in ACTIVE_CLINICAL
    # FHIR: an abatement date means the condition is over unless the status says otherwise.
    if not explicitly_active and any(key.startswith("abatement") for key in resource):
        return None
    concept_key, system, code, display = matched
    onset_raw = resource.get("onsetDateTime") or (as_dict(resource.get("onsetPeriod")) or {}).get("start")
    recorded_raw = resource.get("recordedDate")
    onset, recorded = parse_datetime(onset_raw), parse_datetime(recorded_raw)
    concept = knowledge.concepts[concept_key]
    if not is_recent(concept, explicitly_active, (onset, recorded), now):
        return None
    sites, labels, tongue = body_sites(as_list(resource.get("bodySite")), knowledge)
    return ClinicalFinding(
        concept=concept_key, group=concept.group, system=system, code=code,
        display=display or concept_text(resource.get("code")),
        evidence=reference_to(resource), severity=severity_of(resource.get("severity"), knowledge),
        body_sites=sites, body_site_labels=labels, tongue=tongue,
        onset=onset, onset_text=display_date(onset_raw), recorded=recorded, recorded_text=display_date(recorded_raw),
        explicitly_active=explicitly_active,
    )


def select_finding_observation(resource: Mapping[str, Any], knowledge: Knowledge,
                               now: datetime) -> ClinicalFinding | None:
    """A symptom recorded as an Observation (e.g. SNOMED fasciculation), unless recorded as absent."""
    if resource.get("status") not in FINAL_OBSERVATION:
        return None
    matched = match_concept(resource.get("code"), knowledge)
    if matched is None or not knowledge.concepts[matched[0]].observation:
        return None
    if records_absence(resource, knowledge):
        return None
    concept_key, system, code, display = matched
    effective_raw = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or \
        (as_dict(resource.get("effectivePeriod")) or {}).get("start") or resource.get("issued")
    effective = parse_datetime(effective_raw)
    concept = knowledge.concepts[concept_key]
    if not is_recent(concept, False, (effective,), now):
        return None
    site = resource.get("bodySite")
    sites, labels, tongue = body_sites([site] if site else [], knowledge)
    return ClinicalFinding(
        concept=concept_key, group=concept.group, system=system, code=code, display=display,
        evidence=reference_to(resource),
        severity=severity_of(resource.get("valueCodeableConcept"), knowledge),
        body_sites=sites, body_site_labels=labels, tongue=tongue,
        recorded=effective, recorded_text=display_date(effective_raw),
    )


def is_recent(concept: Concept, explicitly_active: bool, dates: tuple[datetime | None, ...], now: datetime) -> bool:
    if concept.recency_months is None:
        return True
    if explicitly_active and not concept.recency_applies_when_active:
        return True
    known = [moment for moment in dates if moment is not None]
    if not known:
        return True  # undated but not resolved: the chart says it is current
    return max(known) >= months_before(now, concept.recency_months)


def severity_of(concept: Any, knowledge: Knowledge) -> str | None:
    for system_uri, code, _ in codings(concept):
        level = knowledge.severity_by_code.get((knowledge.system_of(system_uri), code))
        if level:
            return level
    text = normalise_text(concept_text(concept) or "")
    return next((level for level in ("severe", "moderate", "mild") if level in text.split()), None)


def body_sites(concepts: list[Any], knowledge: Knowledge) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Distinct site keys, their labels, and whether any site is the tongue."""
    keys: dict[str, str] = {}
    tongue = False
    for concept in concepts:
        concept = as_dict(concept)
        if concept is None:
            continue
        key = None
        for system_uri, code, _ in codings(concept):
            if isinstance(code, str):
                system = knowledge.system_of(system_uri)
                tongue = tongue or (system, code) in knowledge.tongue_codes
                key = key or f"{system_uri}|{code}"
        text = concept_text(concept) or ""
        tongue = tongue or bool(knowledge.tongue_words.search(normalise_text(text)))
        key = key or normalise_text(text)
        if key:
            keys.setdefault(key, text or key)
    return tuple(keys), tuple(keys.values()), tongue


def records_absence(resource: Mapping[str, Any], knowledge: Knowledge) -> bool:
    if resource.get("valueBoolean") is False:
        return True
    value = as_dict(resource.get("valueCodeableConcept"))
    if value is not None:
        if any((knowledge.system_of(s), c) in knowledge.negative_codes for s, c, _ in codings(value)):
            return True
        text = concept_text(value)
        if text and knowledge.negative_words.fullmatch(normalise_text(text)):
            return True
    text = as_str(resource.get("valueString"))
    return bool(text and knowledge.negative_words.fullmatch(normalise_text(text)))
