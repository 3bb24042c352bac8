"""Raw FHIR resources -> PatientView.

One pass over the resources picks out, on the raw JSON, those that can matter (resource type, code in
a value set, status). Only those are validated with the fhir.resources R4B models; a resource that
fails validation or is not even a JSON object is skipped and counted, never raised.

Most chart openings are of patients without a trigger symptom, and get no card; they should cost next
to nothing. `may_trigger()` first looks only at the codes of Conditions and Observations: when none is
a code of an index symptom or a differential, nothing else is read. Otherwise the pass reads the
symptoms and diagnoses at once and puts medicines and orders aside: `collect()` tells whether the chart
really has a trigger (status, recency and patient count too), and only then does
`PatientPass.complete()` read the rest. `build_view()` reads everything.
"""
from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any, Callable, Iterable

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

from cards.fhir_raw import age_in_years, as_str, codings, referenced_patient_id, reference_to
from cards.knowledge_base import Knowledge
from cards.knowledge_model import TRIGGER_GROUPS, bare_code
from cards.select_findings import select_condition, select_finding_observation
from cards.select_labs import LabCandidates, pick_latest, pregnancy_from_observations
from cards.select_medications import select_medication, tapered_or_stopped_within
from cards.view import ActiveOrder, ClinicalFinding, MedicationUse, PatientView

MODELS = {"Patient": Patient, "Condition": Condition, "Observation": Observation,
          "MedicationRequest": MedicationRequest, "MedicationStatement": MedicationStatement,
          "ServiceRequest": ServiceRequest}


class PatientPass:
    """State of one review: the candidates found and the number of resources skipped."""

    def __init__(self, knowledge: Knowledge, patient_id: str, now: datetime) -> None:
        self.knowledge, self.patient_id, self.now = knowledge, patient_id, now
        self.skipped = 0
        self.patients: list[Mapping[str, Any]] = []
        self.findings: list[ClinicalFinding] = []
        self.labs = LabCandidates()
        self.medications: list[MedicationUse] = []
        self.orders: list[ActiveOrder] = []
        self._deferred: list[tuple[Handler, Mapping[str, Any]]] = []
        self._seen: set[tuple[str, str]] = set()
        self._order_codes = knowledge.referral_order_codes.union(*(o.covered_by for o in knowledge.orders.values()))

    def valid(self, resource: Mapping[str, Any]) -> bool:
        """R4B validation of a selected resource; failures are counted as skipped."""
        try:
            MODELS[resource["resourceType"]].model_validate(resource)
        except Exception:  # noqa: BLE001 - any failure of EHR data means "skip this resource"
            self.skipped += 1
            return False
        return True

    def offer(self, resource: Any) -> None:
        if not (type(resource) is dict or isinstance(resource, Mapping)) or \
                not isinstance(resource.get("resourceType"), str):
            self.skipped += 1
            return
        handler = _HANDLERS.get(resource["resourceType"])
        if handler is None:
            return
        resource_id = resource.get("id")
        if isinstance(resource_id, str):
            key = (resource["resourceType"], resource_id)
            if key in self._seen:
                return  # the same resource fetched by two prefetch queries
            self._seen.add(key)
        if resource["resourceType"] != "Patient":
            owner = referenced_patient_id(resource)
            if owner is not None and owner != self.patient_id:
                return
        if resource["resourceType"] in _LATER:
            self._deferred.append((handler, resource))
            return
        self._handle(handler, resource)

    def _handle(self, handler: Handler, resource: Mapping[str, Any]) -> None:
        try:
            handler(self, resource)
        except (TypeError, ValueError, AttributeError, KeyError):
            # Raw readers are defensive; this guards against shapes nobody anticipated.
            self.skipped += 1

    @property
    def has_trigger(self) -> bool:
        """An index symptom or a differential diagnosis: without one no rule runs (PatientView.has_trigger)."""
        return any(finding.group in TRIGGER_GROUPS for finding in self.findings)

    def _patient(self, resource: Mapping[str, Any]) -> None:
        self.patients.append(resource)

    def _condition(self, resource: Mapping[str, Any]) -> None:
        finding = select_condition(resource, self.knowledge, self.now)
        if finding is not None and self.valid(resource):
            self.findings.append(finding)

    def _observation(self, resource: Mapping[str, Any]) -> None:
        if self.labs.offer(resource, self.knowledge):
            return  # validated later, only if it turns out to be the latest usable result
        finding = select_finding_observation(resource, self.knowledge, self.now)
        if finding is not None and self.valid(resource):
            self.findings.append(finding)

    def _medication(self, resource: Mapping[str, Any]) -> None:
        medication = select_medication(resource, self.knowledge, self.now)
        if medication is not None and self.valid(resource):
            self.medications.append(medication)

    def _service_request(self, resource: Mapping[str, Any]) -> None:
        if resource.get("status") != "active":
            return
        for system_uri, code, display in codings(resource.get("code")):
            key = (self.knowledge.system_of(system_uri), code)
            if key in self._order_codes:
                if self.valid(resource):
                    self.orders.append(ActiveOrder(system=key[0], code=code, display=as_str(display),
                                                   evidence=reference_to(resource), status="active"))
                return

    def patient(self) -> Mapping[str, Any] | None:
        chosen = next((p for p in self.patients if p.get("id") == self.patient_id), None)
        chosen = chosen or (self.patients[0] if self.patients else None)
        return chosen if chosen is not None and self.valid(chosen) else None

    def complete(self) -> PatientView:
        """Read the medicines and orders put aside, validate the latest results: the whole view."""
        deferred, self._deferred = self._deferred, []
        for handler, resource in deferred:
            self._handle(handler, resource)
        return _view(self)

    def findings_only(self) -> PatientView:
        """The view of a chart without a trigger: its findings; nothing else was read."""
        return PatientView(
            patient_id=self.patient_id, now=self.now, age_years=None, sex=None, pregnant=False,
            pregnancy_evidence=None, findings=tuple(self.findings), labs=MappingProxyType({}),
            lab_gaps=MappingProxyType({}), medications=(), orders=(), skipped_resources=self.skipped,
            steroid_taper_or_stop=())


Handler = Callable[[PatientPass, Mapping[str, Any]], None]
# Plain functions, not bound methods kept on the instance: a pass must not reference itself, or it and
# every resource it holds would outlive the review until the cyclic garbage collector came by.
_HANDLERS: dict[str, Handler] = {
    "Patient": PatientPass._patient, "Condition": PatientPass._condition, "Observation": PatientPass._observation,
    "MedicationRequest": PatientPass._medication, "MedicationStatement": PatientPass._medication,
    "ServiceRequest": PatientPass._service_request,
}
# Read in complete(), only for a chart with a trigger symptom.
_LATER = frozenset({"MedicationRequest", "MedicationStatement", "ServiceRequest"})


def may_trigger(resources: Iterable[Any], knowledge: Knowledge) -> bool:
    """Whether any Condition or Observation carries a code of a trigger concept, whatever its system,
    status, date or patient: a superset of PatientPass.has_trigger that reads one element per resource.

    Written for speed (it looks at every resource of every chart opened): plain JSON is walked
    directly; anything else that is not plain JSON answers True, and the full pass decides."""
    codes, prefixes = knowledge.trigger_codes, knowledge.trigger_code_prefixes
    for resource in resources:
        if type(resource) is not dict:
            if isinstance(resource, Mapping):
                return True
            continue
        if resource.get("resourceType") not in ("Condition", "Observation"):
            continue
        concept = resource.get("code")
        coding_list = concept.get("coding") if type(concept) is dict else None
        if type(coding_list) is not list:
            if isinstance(concept, Mapping):
                return True
            continue
        for coding in coding_list:
            code = coding.get("code") if type(coding) is dict else None
            if type(code) is str:
                if code in codes:
                    return True
                bare = bare_code(code)
                if bare in codes or bare.startswith(prefixes):
                    return True
            elif isinstance(coding, Mapping) or isinstance(code, str):
                return True
    return False


def unread(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge) -> PatientPass:
    """The pass for a chart that may_trigger() ruled out: nothing read; what is not a resource counted."""
    state = PatientPass(knowledge, patient_id, now)
    state.skipped = sum(1 for resource in resources if not (type(resource) is dict or isinstance(resource, Mapping))
                        or not isinstance(resource.get("resourceType"), str))
    return state


def collect(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge) -> PatientPass:
    """The pass over the resources: findings read, medicines and orders put aside for complete()."""
    state = PatientPass(knowledge, patient_id, now)
    try:
        for resource in resources:
            state.offer(resource)
    except TypeError:
        state.skipped += 1  # `resources` itself was not iterable
    return state


def build_view(resources: Iterable[Any], *, patient_id: str, now: datetime, knowledge: Knowledge) -> PatientView:
    return collect(resources, patient_id=patient_id, now=now, knowledge=knowledge).complete()


def _view(state: PatientPass) -> PatientView:
    knowledge, patient_id, now = state.knowledge, state.patient_id, state.now
    patient = state.patient() or {}
    sex = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    labs, gaps = pick_latest(state.labs, knowledge, sex, state.valid)
    pregnancy_evidence = next((f.evidence or "Condition" for f in state.findings if f.concept == "pregnancy"), None) \
        or pregnancy_from_observations(state.labs.pregnancy, knowledge, now, state.valid)
    return PatientView(
        patient_id=patient_id, now=now, age_years=age_in_years(patient.get("birthDate"), now), sex=sex,
        pregnant=pregnancy_evidence is not None, pregnancy_evidence=pregnancy_evidence,
        findings=tuple(state.findings), labs=MappingProxyType(labs), lab_gaps=MappingProxyType(gaps),
        medications=tuple(state.medications), orders=tuple(state.orders), skipped_resources=state.skipped,
        steroid_taper_or_stop=tuple(m for m in state.medications if tapered_or_stopped_within(
            m, now, knowledge.thresholds.steroid_taper_window_days)),
    )
