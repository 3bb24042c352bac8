"""Conditions and finding Observations -> ClinicalFinding.

Relevance comes first (a code in a value set); then only the elements the rules use are read:
verification and clinical status, onset and recorded dates, abatement, severity, body sites. A
relevant resource with one of those malformed raises Unreadable; an irrelevant one is never read past
its code.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from cards.calendar import months_before
from cards.chart.dates import display_date, read_datetime
from cards.chart.raw import (Unreadable, code_value, codings, concept_text, element, elements, reference_to,
                             status_code, text)
from cards.knowledge_base import Concept, Knowledge, normalise_text
from cards.knowledge_model import ICD_SYSTEMS, dotted_icd
from cards.chart.sites import read_sites, says_widespread
from cards.view import SUSPECTED, ClinicalFinding

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
INACTIVE_CLINICAL = frozenset({"inactive", "resolved", "remission"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
VERIFICATION = frozenset({"confirmed", *SUSPECTED})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})


def match_concept(concept: Any, knowledge: Knowledge) -> tuple[str, str, str, str | None] | None:
    """(concept key, system, matched code, display) for the first coding in any value set, else None."""
    for system_uri, code, display in codings(concept):
        system = knowledge.system_of(system_uri)
        if system is None or code is None:
            continue
        if system in ICD_SYSTEMS:
            code = dotted_icd(code)
        key = knowledge.concept_by_code.get((system, code))
        if key is not None:
            return key, system, code, display
    return None


def select_condition(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime,
                     matched: tuple[str, str, str, str | None]) -> ClinicalFinding | str:
    """The finding a Condition records, or why it does not count (inactive, refuted, too old, negated).

    verificationStatus provisional, differential or unconfirmed keeps the finding, marked suspected: a
    suspected red flag is still a red flag, and the rules never treat a suspected diagnosis as made."""
    verification = status_code(element(resource, "verificationStatus"), "verificationStatus")
    if verification in EXCLUDED_VERIFICATION:
        return f"verificationStatus {verification}"
    clinical = status_code(element(resource, "clinicalStatus"), "clinicalStatus")
    if clinical in INACTIVE_CLINICAL:
        return f"clinicalStatus {clinical}"
    explicitly_active = clinical in ACTIVE_CLINICAL
    # FHIR: an abatement date means the condition is over unless the status says otherwise.
    if not explicitly_active and any(key.startswith("abatement") and resource[key] not in (None, "")
                                     for key in resource):
        return "abated, and not recorded as active"
    concept_key, system, code, display = matched
    concept = knowledge.concepts[concept_key]
    label = concept_text(resource.get("code"))
    if negated(label, knowledge):
        if concept.group == "red_flag":  # a red flag is never dropped on a reading of free text: shown instead
            raise Unreadable(f"its code records {concept_key.replace('_', ' ')} but its text reads "
                             f"{' '.join(label.split())[:60]!r}; check the problem list")
        return "its text records the finding as absent"
    onset_raw = resource.get("onsetDateTime")
    if onset_raw is None:
        onset_raw = (element(resource, "onsetPeriod") or {}).get("start")
    recorded_raw = resource.get("recordedDate")
    onset, recorded = read_datetime(onset_raw, "onset"), read_datetime(recorded_raw, "recordedDate")
    if not is_recent(concept, explicitly_active, (onset, recorded), now):
        return "recorded too long ago to count as current"
    sites = read_sites(elements(resource, "bodySite"), knowledge)
    return ClinicalFinding(
        concept=concept_key, group=concept.group, system=system, code=code,
        display=display or label, evidence=reference_to(resource),
        severity=severity_of(element(resource, "severity"), knowledge),
        body_sites=sites.regions, body_site_labels=sites.labels, tongue=sites.tongue,
        widespread=sites.widespread or says_widespread(normalise_text(label or ""), knowledge),
        onset=onset, onset_text=display_date(onset_raw), recorded=recorded, recorded_text=display_date(recorded_raw),
        explicitly_active=explicitly_active,
        verification=verification if verification in VERIFICATION else None,
    )


def select_finding_observation(resource: Mapping[str, Any], knowledge: Knowledge, now: datetime,
                               matched: tuple[str, str, str, str | None]) -> ClinicalFinding | str:
    """A symptom recorded as an Observation (e.g. SNOMED fasciculation), unless recorded as absent."""
    status = code_value(resource)
    if status not in FINAL_OBSERVATION:
        if status is None:
            raise Unreadable("it has no status")
        return f"status {status}"
    concept_key, system, code, display = matched
    if records_absence(resource, knowledge):
        return "it records the finding as absent"
    effective_raw = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or \
        (element(resource, "effectivePeriod") or {}).get("start") or resource.get("issued")
    effective = read_datetime(effective_raw, "effective date")
    concept = knowledge.concepts[concept_key]
    if not is_recent(concept, False, (effective,), now):
        return "recorded too long ago to count as current"
    site = element(resource, "bodySite")
    sites = read_sites([site] if site else [], knowledge)
    label = concept_text(resource.get("code"))
    return ClinicalFinding(
        concept=concept_key, group=concept.group, system=system, code=code, display=display,
        evidence=reference_to(resource),
        severity=severity_of(element(resource, "valueCodeableConcept"), knowledge),
        body_sites=sites.regions, body_site_labels=sites.labels, tongue=sites.tongue,
        widespread=sites.widespread or says_widespread(normalise_text(label or ""), knowledge),
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
    for system_uri, code, _ in codings(concept, "severity"):
        level = knowledge.severity_by_code.get((knowledge.system_of(system_uri), code))
        if level:
            return level
    words = normalise_text(concept_text(concept, "severity") or "").split()
    return next((level for level in ("severe", "moderate", "mild") if level in words), None)


def records_absence(resource: Mapping[str, Any], knowledge: Knowledge) -> bool:
    """The Observation records the finding as absent: a false or negative value ("Not detected" 260415000,
    "Absent"), an interpretation ND/NEG, or a text such as "No focal weakness" (issue 13 item 5)."""
    if resource.get("valueBoolean") is False:
        return True
    value = element(resource, "valueCodeableConcept")
    concepts = [value] if value is not None else []
    concepts += elements(resource, "interpretation")
    for concept in concepts:
        if any((knowledge.system_of(s), c) in knowledge.negative_codes for s, c, _ in codings(concept, "value")):
            return True
    texts = [concept_text(value, "value") if value is not None else None,
             text(resource.get("valueString"), "valueString"), concept_text(resource.get("code"))]
    return any(negated(label, knowledge) for label in texts)


def negated(label: str | None, knowledge: Knowledge) -> bool:
    """A text that says the finding is absent: "No fasciculations seen", "Weakness: absent", "None"."""
    if not label:
        return False
    words = normalise_text(label)
    cues = knowledge.text_cues
    if not words or cues.negation_breakers.search(words):
        return False  # "no change in weakness" is not an absence: the finding counts (the safe reading)
    return bool(knowledge.negative_words.fullmatch(words) or cues.negation_leading.match(words)
                or cues.negation_trailing.match(words))
