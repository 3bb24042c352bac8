"""Raw FHIR resources -> PatientView: the only code that reads raw FHIR JSON.

Each resource is read element by element: its code decides whether it can matter, then exactly the
elements the rules use are read, strictly. A relevant resource with such an element malformed is
recorded as unreadable, with the reason (cards show it, and it blocks reassurance); everything the
rules do not read is never looked at. No whole-resource validation happens here.

Most chart openings are of patients without a trigger symptom, and get no card; they should cost next
to nothing. `may_trigger()` first looks only at the codes of Conditions and Observations: when none is
a code of an index symptom or a differential, nothing else is read. Otherwise the pass reads the
symptoms and diagnoses at once and puts medicines and orders aside: `collect()` tells whether the chart
really has a trigger (status, recency and patient count too), and only then does
`ChartPass.complete()` read the rest.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, Iterable

from cards.chart.dates import age_in_years, display_date
from cards.chart.findings import match_concept, select_condition, select_finding_observation
from cards.chart.labs import (PREGNANCY, LabCandidates, Trace, effective_raw, labs_in, pick_latest,
                              pregnancy_from_observations)
from cards.chart.medications import select_medication, tapered_or_stopped_within
from cards.chart.orders import select_order
from cards.chart.raw import Unreadable, code_value, is_object, reference_to, referenced_patient_id
from cards.knowledge_base import Knowledge
from cards.knowledge_model import TRIGGER_GROUPS
from cards.chart.screen import may_trigger
from cards.view import (CONDITIONS, FINDINGS, LABS, MEDICATIONS, ORDERS, PATIENT, ActiveOrder, ClinicalFinding, DataGap,
                        MedicationUse, PatientView)
from cards.view import Unreadable as UnreadableItem

_PLAIN_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DOMAIN_OF = {"Condition": CONDITIONS, "Observation": FINDINGS, "MedicationRequest": MEDICATIONS,
              "MedicationStatement": MEDICATIONS, "ServiceRequest": ORDERS, "Patient": PATIENT}
_DATE_OF = {"Condition": ("onsetDateTime", "recordedDate"), "MedicationRequest": ("authoredOn",),
            "MedicationStatement": ("effectiveDateTime", "dateAsserted"), "ServiceRequest": ("authoredOn",)}


class ChartPass:
    """State of one reading: what was found, what could not be read, what was skipped."""

    def __init__(self, knowledge: Knowledge, patient_id: str, now: datetime, trace: Trace | None = None) -> None:
        self.knowledge, self.patient_id, self.now, self.trace = knowledge, patient_id, now, trace
        self.skipped = 0
        self.patients: list[Mapping[str, Any]] = []
        self.findings: list[ClinicalFinding] = []
        self.labs = LabCandidates()
        self.medications: list[MedicationUse] = []
        self.medicines: dict[str, Mapping[str, Any]] = {}  # Medication resources by id
        self.orders: list[ActiveOrder] = []
        self.unreadable: list[UnreadableItem] = []
        self._deferred: list[tuple[Handler, Mapping[str, Any]]] = []
        self._seen: set[tuple[str, str]] = set()
        # "Patient/<id>" when the id is a plain FHIR id: a subject reference spelt exactly so names this
        # patient (what referenced_patient_id would find in it), so _handle need not take it apart.
        self._own_reference = f"Patient/{patient_id}" if isinstance(patient_id, str) and _PLAIN_ID.fullmatch(patient_id) else None

    def _note(self, resource: Mapping[str, Any], disposition: str, why: str) -> None:
        if self.trace is not None:
            self.trace(resource, disposition, why)

    def offer(self, resource: Any) -> None:
        if not is_object(resource) or not isinstance(resource.get("resourceType"), str):
            self.skipped += 1
            if self.trace is not None:
                self.trace(resource, "ignored", "not a FHIR resource")
            return
        resource_type = resource["resourceType"]
        handler = _HANDLERS.get(resource_type)
        if handler is None:
            self._note(resource, "ignored", f"the rules do not read {resource_type} resources")
            return
        resource_id = resource.get("id")
        if isinstance(resource_id, str):
            key = (resource_type, resource_id)
            if key in self._seen:
                self._note(resource, "ignored", "the same resource was already read")
                return
            self._seen.add(key)
        if resource_type in _LATER:
            self._deferred.append((handler, resource))
            return
        self._handle(handler, resource)

    def _handle(self, handler: Handler, resource: Mapping[str, Any]) -> None:
        try:
            if resource["resourceType"] not in ("Patient", "Medication") and not self._names_this_patient(resource):
                owner = referenced_patient_id(resource)
                if owner is not None and owner != self.patient_id:
                    self._note(resource, "ignored", "it is about another patient")
                    return
            handler(self, resource)
        except Unreadable as error:
            self.unreadable_resource(resource, error.reason)

    def _names_this_patient(self, resource: Mapping[str, Any]) -> bool:
        subject = resource.get("subject")
        return (self._own_reference is not None and type(subject) is dict
                and subject.get("reference") == self._own_reference)

    def unreadable_resource(self, resource: Mapping[str, Any], reason: str, subject: str | None = None,
                            trigger: bool = False, index: bool = False, domain: str | None = None) -> None:
        resource_type = resource["resourceType"]
        if subject is None and resource_type in ("Condition", "Observation"):
            subject, domain, trigger, index = self._what_it_records(resource) or (None, domain, trigger, index)
        date = next((resource.get(name) for name in _DATE_OF.get(resource_type, ()) if resource.get(name)), None)
        if resource_type == "Observation":
            try:
                date = effective_raw(resource)
            except Unreadable:
                date = None
        self.unreadable.append(UnreadableItem(
            domain=domain or _DOMAIN_OF[resource_type], kind="lab" if domain == LABS else _KIND[resource_type],
            subject=subject, reason=reason,
            date_text=display_date(date), evidence=reference_to(resource), resource_type=resource_type,
            trigger=trigger, index=index))
        self._note(resource, "unreadable", f"{subject}: {reason}" if subject else reason)

    def _what_it_records(self, resource: Mapping[str, Any]) -> tuple[str, str | None, bool, bool] | None:
        """(subject, domain, trigger, index) from the code alone, for a resource found unreadable elsewhere."""
        try:
            found = labs_in(resource, self.knowledge) if resource["resourceType"] == "Observation" else None
            if found is not None:
                return (None if found == PREGNANCY else found[0][0].analyte), LABS, False, False
            matched = match_concept(resource.get("code"), self.knowledge)
        except Unreadable:
            return None
        if matched is None:
            return None
        group = self.knowledge.concepts[matched[0]].group
        return matched[0], None, group in TRIGGER_GROUPS, group == "index"

    @property
    def has_trigger(self) -> bool:
        """An index symptom or a differential (readable or not): without one no rule runs."""
        return any(f.group in TRIGGER_GROUPS for f in self.findings) or any(u.trigger for u in self.unreadable)

    # ---- handlers ---------------------------------------------------------------------------------
    def _patient(self, resource: Mapping[str, Any]) -> None:
        self.patients.append(resource)

    def _medication(self, resource: Mapping[str, Any]) -> None:
        if isinstance(resource.get("id"), str):
            self.medicines[resource["id"]] = resource
        self._note(resource, "used", "the medicine a MedicationRequest or MedicationStatement may refer to")

    def _finding(self, resource: Mapping[str, Any], select: Callable[..., ClinicalFinding | str], *args: Any) -> None:
        matched = match_concept(resource.get("code"), self.knowledge)
        if matched is None:
            self._note(resource, "ignored", "no code the rules read")
            return
        concept = self.knowledge.concepts[matched[0]]
        try:
            found = select(resource, self.knowledge, self.now, matched, *args)
        except Unreadable as error:
            self.unreadable_resource(resource, error.reason, subject=matched[0],
                                     trigger=concept.group in TRIGGER_GROUPS, index=concept.group == "index")
            return
        if isinstance(found, str):
            self._note(resource, "ignored", found)
        else:
            self.findings.append(found)
            self._note(resource, "used", f"{matched[0]} ({matched[1]} {matched[2]})")

    def _condition(self, resource: Mapping[str, Any]) -> None:
        self._finding(resource, select_condition)

    def _observation(self, resource: Mapping[str, Any]) -> None:
        found = labs_in(resource, self.knowledge)
        if found is not None:
            try:
                why = self.labs.offer(resource, found)
            except Unreadable as error:
                subject = None if found == PREGNANCY else found[0][0].analyte
                self.unreadable_resource(resource, error.reason, subject=subject, domain=LABS)
                return
            if why:
                self._note(resource, "ignored", why)
            return  # a lab: read later, only if it turns out to be the latest readable result
        matched = match_concept(resource.get("code"), self.knowledge)
        if matched is None or not self.knowledge.concepts[matched[0]].observation:
            self._note(resource, "ignored", "no code the rules read")
            return
        self._finding(resource, select_finding_observation)

    def _medication_use(self, resource: Mapping[str, Any]) -> None:
        found = select_medication(resource, self.knowledge, self.now, self.medicines)
        if isinstance(found, str):
            self._note(resource, "ignored", found)
        else:
            self.medications.append(found)
            named = ", ".join(found.ingredients or found.classes)
            self._note(resource, "used", f"{named} (matched by {found.matched_by})")

    def _service_request(self, resource: Mapping[str, Any]) -> None:
        found = select_order(resource, self.knowledge)
        if isinstance(found, str):
            self._note(resource, "ignored", found)
        else:
            self.orders.append(found)
            self._note(resource, "used", "an order already placed")

    # ---- the view -----------------------------------------------------------------------------------
    def patient(self) -> tuple[Mapping[str, Any], int | None, str | None]:
        chosen = next((p for p in self.patients if p.get("id") == self.patient_id), None)
        chosen = chosen or (self.patients[0] if self.patients else {})
        for other in self.patients:
            if other is not chosen:
                self._note(other, "ignored", "not the patient of this call")
        try:
            age = age_in_years(chosen.get("birthDate"), self.now)
            gender = code_value(chosen, "gender") if chosen else None
        except Unreadable as error:
            self.unreadable_resource(chosen, error.reason)
            return chosen, None, None
        if chosen:
            self._note(chosen, "used", "age and sex")
        return chosen, age, gender if gender in ("male", "female") else None

    def complete(self, gaps: Iterable[DataGap] = ()) -> PatientView:
        """Read the medicines and orders put aside, pick the latest results: the whole view."""
        deferred, self._deferred = self._deferred, []
        for handler, resource in deferred:
            self._handle(handler, resource)
        knowledge, now = self.knowledge, self.now
        _, age, sex = self.patient()
        labs, lab_gaps, unreadable_labs = pick_latest(self.labs, knowledge, sex, self.trace, age)
        pregnant, possible, evidence = self._pregnancy()
        return PatientView(
            patient_id=self.patient_id, now=now, age_years=age, sex=sex,
            pregnant=pregnant, pregnancy_possible=possible, pregnancy_evidence=evidence,
            findings=tuple(self.findings), labs=MappingProxyType(labs), lab_gaps=MappingProxyType(lab_gaps),
            medications=tuple(self.medications), orders=tuple(self.orders), skipped_resources=self.skipped,
            steroid_taper_or_stop=tuple(m for m in self.medications if tapered_or_stopped_within(
                m, now, knowledge.thresholds.steroid_taper_window_days)),
            unreadable=(*self.unreadable, *unreadable_labs), gaps=tuple(gaps),
        )

    def _pregnancy(self) -> tuple[bool, bool, tuple[str, ...]]:
        """(pregnant, pregnancy possible, evidence): a confirmed (or unqualified) pregnancy record or a
        pregnancy-status result "pregnant" is a pregnancy; a suspected record alone makes it possible."""
        records = [f for f in self.findings if f.concept == "pregnancy"]
        confirmed = [f.evidence or "Condition" for f in records if not f.suspected]
        observed = pregnancy_from_observations(self.labs.pregnancy, self.knowledge, self.now)
        if observed:
            confirmed.append(observed)
        suspected = [f.evidence or "Condition" for f in records if f.suspected]
        evidence = tuple(dict.fromkeys(confirmed or suspected))
        return bool(confirmed), not confirmed and bool(suspected), evidence

    def findings_only(self, gaps: Iterable[DataGap] = ()) -> PatientView:
        """The view of a chart without a trigger: its findings; nothing else was read."""
        return PatientView(
            patient_id=self.patient_id, now=self.now, age_years=None, sex=None, pregnant=False,
            pregnancy_evidence=(), findings=tuple(self.findings), skipped_resources=self.skipped,
            unreadable=tuple(self.unreadable), gaps=tuple(gaps))


Handler = Callable[[ChartPass, Mapping[str, Any]], None]
# Plain functions, not bound methods kept on the instance: a pass must not reference itself, or it and
# every resource it holds would outlive the review until the cyclic garbage collector came by.
_HANDLERS: dict[str, Handler] = {
    "Patient": ChartPass._patient, "Condition": ChartPass._condition, "Observation": ChartPass._observation,
    "MedicationRequest": ChartPass._medication_use, "MedicationStatement": ChartPass._medication_use,
    "ServiceRequest": ChartPass._service_request, "Medication": ChartPass._medication,
}
_KIND = {"Patient": "patient", "Condition": "finding", "Observation": "finding", "MedicationRequest": "medication",
         "MedicationStatement": "medication", "ServiceRequest": "order"}
# Read in complete(), only for a chart with a trigger symptom (Medications first: the others refer to them).
_LATER = frozenset({"MedicationRequest", "MedicationStatement", "ServiceRequest", "Medication"})


def collect(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge,
            trace: Trace | None = None) -> ChartPass:
    """The pass over the resources: findings read, medicines and orders put aside for complete()."""
    state = ChartPass(knowledge, patient_id, now, trace)
    try:
        for resource in resources:
            state.offer(resource)
    except TypeError:
        state.skipped += 1  # `resources` itself was not iterable
    state._deferred.sort(key=lambda item: item[1]["resourceType"] != "Medication")
    return state


def read_chart(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge,
               gaps: Iterable[DataGap] = ()) -> PatientView:
    return collect(resources, patient_id=patient_id, now=now, knowledge=knowledge).complete(gaps)


def unread(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge) -> ChartPass:
    """The pass for a chart that may_trigger() ruled out: nothing read; what is not a resource counted."""
    state = ChartPass(knowledge, patient_id, now)
    state.skipped = sum(1 for resource in resources if not is_object(resource)
                        or not isinstance(resource.get("resourceType"), str))
    return state


__all__ = ["ChartPass", "collect", "may_trigger", "read_chart", "unread"]
