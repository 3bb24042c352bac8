"""The normalised patient view: the single input of every rule.

Everything here is already filtered (status, recency) and normalised (UTC datetimes, canonical
units), so rules never look at raw FHIR. The view also knows what it could not see: relevant
resources that could not be read, and data the service could not obtain (DataGap). Reassurance and
every sentence saying something is normal or absent require the data they depend on to be complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

from cards.knowledge_model import TRIGGER_GROUPS

_EMPTY: Mapping = MappingProxyType({})
# Condition.verificationStatus codes that mean "suspected": the finding may be present, it is not established.
SUSPECTED = frozenset({"provisional", "differential", "unconfirmed"})

# The domains of data the rules read; a DataGap or an unreadable resource names the one it affects.
PATIENT, CONDITIONS, FINDINGS, LABS, MEDICATIONS, ORDERS = (
    "patient", "conditions", "findings", "labs", "medications", "orders")
DOMAINS = (PATIENT, CONDITIONS, FINDINGS, LABS, MEDICATIONS, ORDERS)


@dataclass(frozen=True)
class ClinicalFinding:
    """A symptom, sign or diagnosis from a Condition or a finding Observation."""

    concept: str  # key in findings.yaml, e.g. "fasciculation"
    group: str  # index | differential | red_flag | diagnosis | context
    system: str  # short code-system name, e.g. "icd10cm"
    code: str  # the matched code, e.g. "R25.3"
    display: str | None  # coding display / text as recorded
    evidence: str | None  # "Condition/abc"
    severity: str | None = None  # mild | moderate | severe
    body_sites: tuple[str, ...] = ()  # one key per distinct body region (laterality and synonyms collapsed)
    body_site_labels: tuple[str, ...] = ()
    tongue: bool = False
    widespread: bool = False  # the record itself says generalised / widespread (code text or body site)
    onset: datetime | None = None
    onset_text: str | None = None
    recorded: datetime | None = None
    recorded_text: str | None = None
    explicitly_active: bool = False
    verification: str | None = None  # confirmed | provisional | differential | unconfirmed; None: not stated

    @property
    def suspected(self) -> bool:
        """Recorded as provisional, differential or unconfirmed: suspected, never diagnosed."""
        return self.verification in SUSPECTED

    @property
    def started(self) -> datetime | None:
        """The earliest date we know the finding existed."""
        dates = [moment for moment in (self.onset, self.recorded) if moment]
        return min(dates) if dates else None


@dataclass(frozen=True)
class LabResult:
    """The latest valid result of one analyte, in the analyte's canonical unit."""

    analyte: str
    value: float
    unit: str
    code: str
    effective: datetime | None
    effective_text: str | None
    status: str
    evidence: str | None
    low: float | None = None
    high: float | None = None
    range_source: str | None = None  # observation | default
    interpretation: str | None = None  # low | high | normal (laboratory flag)
    original_value: float | None = None
    original_unit: str | None = None
    comparator: str | None = None
    range_filled: str | None = None  # "low" | "high": the lab gave one bound; this one is the default's
    range_sex: str | None = None  # male | female: the lab's sex-specific range chosen for the patient
    older_final: "LabResult | None" = None  # a newer out-of-range preliminary result is used instead of this

    @property
    def preliminary(self) -> bool:
        return self.status == "preliminary"

    @property
    def direction(self) -> str | None:
        """low | high | normal: the laboratory's flag first, then the reference range; None when neither says."""
        if self.interpretation is not None:
            return self.interpretation
        return self.compare(self.value)

    def compare(self, value: float) -> str | None:
        """Where a value lies against this result's reference range."""
        if self.low is None and self.high is None:
            return None
        if self.low is not None and value < self.low:
            return "low"
        if self.high is not None and value > self.high:
            return "high"
        return "normal"

    @property
    def ratio_to_upper_limit(self) -> float | None:
        return self.value / self.high if self.high else None


@dataclass(frozen=True)
class LabGap:
    """Why an analyte has no usable result: results exist, but none has a value (dataAbsentReason)."""

    analyte: str
    reason: str  # unusable (no value)
    effective: datetime | None
    effective_text: str | None
    evidence: str | None


@dataclass(frozen=True)
class MedicationUse:
    """One MedicationRequest/MedicationStatement matched to ingredients of interest."""

    evidence: str | None
    resource_type: str
    status: str
    current: bool
    text: str
    ingredients: tuple[str, ...]  # empty when only the class is known (a combination ATC code)
    classes: tuple[str, ...]
    matched_by: str  # rxnorm | atc | text
    started: datetime | None = None
    started_text: str | None = None
    ended: datetime | None = None
    ended_text: str | None = None
    daily_dose_mg: float | None = None
    prednisone_equivalent_mg: float | None = None
    tapering: bool = False  # the order's own dose steps fall (a note saying "taper" is not read)
    local_route: bool = False  # inhaled/nasal/topical: a corticosteroid given so is not systemic

    def has_class(self, drug_class: str) -> bool:
        return drug_class in self.classes


@dataclass(frozen=True)
class ActiveOrder:
    system: str | None  # short system name, e.g. "loinc"; None for a local code system
    code: str | None
    display: str | None
    evidence: str | None
    status: str
    covers: frozenset[str] = frozenset()  # work-up orders (labs.yaml) this order provides


@dataclass(frozen=True)
class Unreadable:
    """A relevant resource that could not be read: shown on the cards, never taken for absent."""

    domain: str  # one of DOMAINS
    kind: str  # lab | finding | medication | order | patient
    subject: str | None  # the analyte or concept key, when known
    reason: str  # "unit 'xyz' is not known for this test"
    date_text: str | None
    evidence: str | None
    resource_type: str
    trigger: bool = False  # a symptom that starts a review (index or differential concept)
    index: bool = False  # an index symptom


@dataclass(frozen=True)
class DataGap:
    """Data the service could not obtain (a prefetch key not fetched, only partly fetched, ...)."""

    domain: str  # one of DOMAINS
    kind: str  # not_obtained | incomplete
    detail: str  # why, in plain words: "the FHIR server answered HTTP 500"


@dataclass(frozen=True)
class PatientView:
    patient_id: str
    now: datetime
    age_years: int | None  # None: birthDate unknown, treated as adult
    sex: str | None
    pregnant: bool  # a confirmed (or unqualified) pregnancy record, or a pregnancy-status result "pregnant"
    pregnancy_evidence: tuple[str, ...]  # the records behind pregnant / pregnancy_possible
    findings: tuple[ClinicalFinding, ...]
    labs: Mapping[str, LabResult] = field(default_factory=lambda: _EMPTY)
    lab_gaps: Mapping[str, LabGap] = field(default_factory=lambda: _EMPTY)
    medications: tuple[MedicationUse, ...] = ()  # current ones and recently stopped ones
    steroid_taper_or_stop: tuple[MedicationUse, ...] = ()  # tapering now or stopped within 30 days
    orders: tuple[ActiveOrder, ...] = ()
    skipped_resources: int = 0
    unreadable: tuple[Unreadable, ...] = ()
    gaps: tuple[DataGap, ...] = ()
    pregnancy_possible: bool = False  # only a suspected (provisional/differential/unconfirmed) pregnancy record

    # ---- completeness -----------------------------------------------------------------------------
    def incomplete(self, *domains: str) -> bool:
        """Whether any of the domains (all when none named) has a gap or an unreadable resource."""
        wanted = domains or DOMAINS
        return any(gap.domain in wanted for gap in self.gaps) or any(item.domain in wanted for item in self.unreadable)

    def unreadable_of(self, *subjects: str) -> tuple[Unreadable, ...]:
        return tuple(item for item in self.unreadable if item.subject in subjects)

    # ---- convenience queries used by many rules ----------------------------------------------------
    def findings_of(self, *concepts: str) -> tuple[ClinicalFinding, ...]:
        return tuple(finding for finding in self.findings if finding.concept in concepts)

    def confirmed_of(self, *concepts: str) -> tuple[ClinicalFinding, ...]:
        """Findings of the concepts that are not merely suspected (for diagnoses that change advice)."""
        return tuple(finding for finding in self.findings_of(*concepts) if not finding.suspected)

    def findings_in(self, group: str) -> tuple[ClinicalFinding, ...]:
        return tuple(finding for finding in self.findings if finding.group == group)

    def has(self, concept: str) -> bool:
        return any(finding.concept == concept for finding in self.findings)

    @property
    def has_index_symptom(self) -> bool:
        """A readable index symptom, or one recorded in a resource that could not be read."""
        return any(finding.group == "index" for finding in self.findings) or any(u.index for u in self.unreadable)

    @property
    def has_trigger(self) -> bool:
        return any(finding.group in TRIGGER_GROUPS for finding in self.findings) or \
            any(item.trigger for item in self.unreadable)

    @property
    def abi(self) -> LabResult | None:
        return self.labs.get("abi")

    @property
    def current_medications(self) -> tuple[MedicationUse, ...]:
        return tuple(medication for medication in self.medications if medication.current)

    def current_in_class(self, drug_class: str) -> tuple[MedicationUse, ...]:
        return tuple(m for m in self.medications if m.current and m.has_class(drug_class))

    def has_active_order(self, codes: frozenset[tuple[str, str]]) -> ActiveOrder | None:
        return next((order for order in self.orders if (order.system, order.code) in codes), None)

    def active_order_covering(self, order_key: str) -> ActiveOrder | None:
        return next((order for order in self.orders if order_key in order.covers), None)


# ---- prescribing (order-select, order-sign) --------------------------------------------------------
@dataclass(frozen=True)
class DraftMedication:
    """A draft MedicationRequest of the order being composed or signed, matched to the medicines the
    rules know (cards/chart/draft_orders.py). Durations and doses are None when not stated or not
    readable; `*_unreadable` says why when a stated one could not be read."""

    evidence: str | None  # "MedicationRequest/request-123": what a delete suggestion refers to
    text: str
    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    matched_by: str
    selected: bool = True  # order-select: among the selections; order-sign: every draft
    reason_concepts: tuple[str, ...] = ()  # findings.yaml concepts the reasonCode/reasonReference names
    reason_texts: tuple[str, ...] = ()  # the stated reasons as written
    reason_unreadable: str | None = None
    duration_days: float | None = None  # the longest period the order states it covers
    duration_source: str | None = None  # which element stated it (texts.yaml names: duration_sources)
    duration_unreadable: str | None = None
    daily_dose_mg: float | None = None
    prednisone_equivalent_mg: float | None = None
    dose_unreadable: str | None = None

    def has_class(self, drug_class: str) -> bool:
        return drug_class in self.classes

    @property
    def reason_stated(self) -> bool:
        return bool(self.reason_concepts or self.reason_texts or self.reason_unreadable)


@dataclass(frozen=True)
class UnreadableDraft:
    """A draft order whose medicine could not be identified because a used element is malformed."""

    evidence: str | None
    reason: str
