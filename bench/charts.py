"""Synthetic charts that look like what EHRs send: one seeded generator per patient.

A `ChartMaker` builds one patient's resources, drawing on bench/vocabulary.py: US or SI laboratory
conventions, ICD-10-CM with a SNOMED CT translation or SNOMED CT alone, the statuses, categories,
dosage details, narratives and vendor extensions of real exports, panels beside single results,
Medication resources referenced from `contained`, and now and then a harmless defect in an element
the rules do not read (an `issued` without a time zone, an empty `display`, an unknown field). The
decisive facts of each scenario (which symptom, the newest potassium, which medicines are current)
are set by the chart shapes in bench/generate.py, so every chart of a scenario asks the service the
same clinical question in a different way.

All resources are synthetic (the HTEST tag, a `Bench-` family name). The same seed gives the same chart.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from bench import vocabulary as v
from fixtures.build import (COND_CATEGORY, COND_CLINICAL, COND_VER, ICD10CM, LOINC, OBS_CATEGORY,
                            OBS_INTERPRETATION, RXNORM, SCT, UCUM)

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                        "display": "Medical record number"}], "text": "MRN"}
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
VENDOR = "https://ehr.bench.example/fhir/StructureDefinition"
MED_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
TIMING_ABBREVIATION = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
DOSE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"


@dataclass
class Chart:
    """One synthetic patient's resources, by prefetch key."""

    patient: dict[str, Any]
    by_key: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, key: str, resource: dict[str, Any]) -> None:
        self.by_key.setdefault(key, []).append(resource)

    def resources(self) -> list[dict[str, Any]]:
        return [self.patient] + [r for resources in self.by_key.values() for r in resources]


class ChartMaker:
    """Resources for one patient. `quirks`: allow harmless defects in elements the rules do not read
    (off for charts loaded into a validating FHIR server)."""

    def __init__(self, patient_id: str, id_prefix: str, as_of: date, seed: int, *, style: str | None = None,
                 quirks: bool = True):
        self.random = random.Random(seed)
        self.as_of = as_of
        self.patient_id = patient_id
        self.id_prefix = id_prefix  # resource ids: unique across the charts of a set
        self.style = style or ("us" if self.random.random() < 0.7 else "si")
        self.quirks = quirks
        self._serial = 0
        self._forms = {analyte: self.random.choice(forms[self.style]) for analyte, forms in v.LATEST.items()}
        self.hhmm = f"{self.random.randrange(7, 11):02d}:{self.random.choice(('05', '20', '35', '50'))}"

    # -- values --------------------------------------------------------------------------------------

    def next_id(self, kind: str) -> str:
        self._serial += 1
        return f"{self.id_prefix}-{kind}-{self._serial:05d}"

    def day(self, days_ago: int) -> str:
        return (self.as_of - timedelta(days=days_ago)).isoformat()

    def instant(self, days_ago: int, hhmm: str | None = None) -> str:
        offset = "Z" if self.style == "si" else self.random.choice(("-05:00", "-06:00", "Z"))
        return f"{self.day(days_ago)}T{hhmm or self.hhmm}:00{offset}"

    def chance(self, p: float) -> bool:
        return self.random.random() < p

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    def _meta(self, days_ago: int, profile: str | None = None, *, incidental: bool = False) -> dict[str, Any]:
        """incidental: the resource does not decide this scenario's cards, so it may carry a defect."""
        meta: dict[str, Any] = {"versionId": str(self.random.randrange(1, 4)),
                                "lastUpdated": self.instant(max(0, days_ago - 1)),
                                "tag": [{"system": ACT_REASON, "code": "HTEST", "display": "test health data"}]}
        if profile and self.style == "us":
            meta["profile"] = [f"{US_CORE}/{profile}"]
        if incidental and self.quirks and self.chance(0.03):
            meta["lastUpdated"] = self.day(days_ago)  # a date where an instant belongs
        return meta

    # -- Patient -------------------------------------------------------------------------------------

    def patient(self, age: int, gender: str) -> dict[str, Any]:
        born = self.as_of - timedelta(days=int(365.25 * age) + self.random.randrange(1, 360))
        given = self.random.choice(v.GIVEN_NAMES)
        family = f"Bench-{self.id_prefix.upper()}"
        resource: dict[str, Any] = {
            "resourceType": "Patient", "id": self.patient_id, "meta": self._meta(400, "us-core-patient"),
            "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{given} {family}, '
                                                   f'{gender}, born {born.isoformat()}</div>'},
            "identifier": [{"use": "usual", "type": MRN_TYPE, "system": "urn:oid:2.16.840.1.113883.19.5",
                            "value": f"E{self.random.randrange(10**6, 10**7)}"}],
            "active": True,
            "name": [{"use": "official", "family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": f"555-01{self.random.randrange(10, 99)}", "use": "home"}],
            "gender": gender, "birthDate": born.isoformat(),
        }
        if self.style == "us":
            city, state, postal = self.random.choice(v.CITIES)
            resource["address"] = [{"use": "home", "line": [f"{self.random.randrange(1, 999)} Bench St"],
                                    "city": city, "state": state, "postalCode": postal, "country": "US"}]
            resource["extension"] = [{"url": f"{US_CORE}/us-core-birthsex", "valueCode": gender[0].upper()}]
            resource["communication"] = [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
                                          "preferred": True}]
        else:
            town, postal = self.random.choice(v.UK_TOWNS)
            resource["address"] = [{"use": "home", "line": [f"{self.random.randrange(1, 99)} Bench Road"],
                                    "city": town, "postalCode": postal, "country": "GB"}]
            resource["generalPractitioner"] = [{"reference": f"Practitioner/gp-{self.random.randrange(1, 40)}"}]
        return resource

    # -- Condition -----------------------------------------------------------------------------------

    def condition(self, codes: tuple[str | None, str | None, str], onset_days_ago: int, *, status: str = "active",
                  verification: str = "confirmed", text: str | None = None, incidental: bool = False) -> dict[str, Any]:
        icd, snomed, display = codes
        coding = []
        if icd and (self.style == "us" or not snomed):
            coding.append({"system": ICD10CM, "code": icd, "display": display})
        if snomed and (self.style == "si" or self.chance(0.6)):
            coding.append({"system": SCT, "code": snomed, "display": display})
        problem = self.chance(0.7)
        resource: dict[str, Any] = {
            "resourceType": "Condition", "id": self.next_id("cond"), "meta": self._meta(onset_days_ago, "us-core-condition",
                                                                                       incidental=incidental),
            "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": status}]},
            "verificationStatus": {"coding": [{"system": COND_VER, "code": verification}]},
            "category": [{"coding": [{"system": COND_CATEGORY,
                                      "code": "problem-list-item" if problem else "encounter-diagnosis",
                                      "display": "Problem List Item" if problem else "Encounter Diagnosis"}]}],
            "code": {"coding": coding, "text": text or display},
            "subject": self.subject,
            "onsetDateTime": self.instant(onset_days_ago) if self.chance(0.5) else self.day(onset_days_ago),
            "recordedDate": self.instant(max(0, onset_days_ago - self.random.randrange(0, 30))),
            "recorder": {"reference": f"Practitioner/bench-{self.random.randrange(1, 60)}"},
        }
        if not problem:
            resource["encounter"] = {"reference": f"Encounter/{self.next_id('enc')}"}
        if status in ("resolved", "inactive", "remission"):
            resource["abatementDateTime"] = self.day(max(0, onset_days_ago - self.random.randrange(30, 365)))
        if self.chance(0.25):
            resource["note"] = [{"text": "Reviewed at annual visit."}]
        if self.style == "si" and self.chance(0.4):
            resource["text"] = {"status": "generated",
                                "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text or display}</div>'}
        return resource

    def unrelated_condition(self, onset_days_ago: int) -> dict[str, Any]:
        status = self.random.choices(("active", "resolved", "inactive", "remission"), (6, 3, 1, 1))[0]
        verification = self.random.choices(("confirmed", "provisional", "unconfirmed", "refuted"), (14, 2, 1, 1))[0]
        resource = self.condition(self.random.choice(v.OTHER_CONDITIONS), onset_days_ago, status=status,
                                  verification=verification, incidental=True)
        if self.quirks and self.chance(0.05):
            resource["code"]["coding"][0]["display"] = ""  # empty display: invalid FHIR, harmless here
        if self.quirks and self.chance(0.04):
            resource["vendorSeverityRank"] = self.random.randrange(1, 5)  # an element FHIR does not define
        return resource

    # -- Observation ---------------------------------------------------------------------------------

    def lab(self, analyte: str, days_ago: int, value: float | None = None, *, older: bool = False) -> dict[str, Any]:
        form = self._forms[analyte]
        if older and analyte in v.OLDER and self.chance(0.08):
            form = v.OLDER[analyte][0]
        return self.lab_in(form, days_ago, value, older=older)

    def lab_in(self, form: v.LabForm, days_ago: int, value: float | None = None, *, older: bool = False,
               hhmm: str | None = None) -> dict[str, Any]:
        if value is None:
            value = min(max(self.random.gauss(form.typical, form.spread), form.low), form.high)
        value = round(value, form.decimals) if form.decimals else int(round(value))
        status = "final"
        if older:
            status = self.random.choices(("final", "amended", "corrected", "cancelled", "entered-in-error"),
                                         (90, 4, 3, 2, 1))[0]
        resource: dict[str, Any] = {
            "resourceType": "Observation", "id": self.next_id("obs"), "meta": self._meta(days_ago, "us-core-observation-lab", incidental=older),
            "identifier": [{"system": "https://ehr.bench.example/lab-accession",
                            "value": f"L{self.random.randrange(10**8, 10**9)}"}],
            "status": status,
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}],
                          "text": "Laboratory"}],
            "code": {"coding": [{"system": LOINC, "code": form.loinc, "display": form.display}],
                     "text": form.display.split(" [")[0]},
            "subject": self.subject,
            "effectiveDateTime": self.instant(days_ago, hhmm),
            "issued": self.instant(days_ago, "16:42"),
        }
        if status in ("cancelled", "entered-in-error"):
            resource["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                        "code": "error" if status == "entered-in-error" else "not-performed"}]}
            return resource
        resource["valueQuantity"] = {"value": value, "unit": form.unit_text, "system": UCUM, "code": form.unit}
        resource["referenceRange"] = [{"low": {"value": form.low, "unit": form.unit_text, "system": UCUM, "code": form.unit},
                                       "high": {"value": form.high, "unit": form.unit_text, "system": UCUM,
                                                "code": form.unit},
                                       "text": f"{form.low}-{form.high} {form.unit_text}"}]
        flag = "L" if value < form.low else "H" if value > form.high else "N" if self.chance(0.5) else None
        if flag:
            resource["interpretation"] = [{"coding": [{"system": OBS_INTERPRETATION, "code": flag,
                                                       "display": {"L": "Low", "H": "High", "N": "Normal"}[flag]}]}]
        if self.chance(0.3):
            resource["performer"] = [{"reference": "Organization/bench-lab", "display": "Bench Reference Laboratory"}]
        if self.chance(0.2):
            resource["specimen"] = {"reference": f"Specimen/{self.next_id('spec')}"}
        if older and self.quirks and self.chance(0.04):
            resource["issued"] = resource["issued"][:16]  # no seconds, no time zone: invalid instant
        return resource

    def panel(self, panel: tuple[str, str, tuple[str, ...]], days_ago: int, values: dict[str, float]) -> dict[str, Any]:
        """A panel Observation with its results as components (as some laboratories send them)."""
        code, display, members = panel
        components = []
        extra = [(form, round(self.random.gauss(form.typical, form.spread))) for form in (v.CHLORIDE, v.BICARBONATE)]
        for form, value in [(self._forms[member], values[member]) for member in members] + extra:
            components.append({
                "code": {"coding": [{"system": LOINC, "code": form.loinc, "display": form.display}]},
                "valueQuantity": {"value": value, "unit": form.unit_text, "system": UCUM, "code": form.unit},
                "referenceRange": [{"low": {"value": form.low, "unit": form.unit_text, "system": UCUM, "code": form.unit},
                                    "high": {"value": form.high, "unit": form.unit_text, "system": UCUM,
                                             "code": form.unit}}]})
        return {
            "resourceType": "Observation", "id": self.next_id("panel"), "meta": self._meta(days_ago, incidental=True),
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "subject": self.subject,
            "effectiveDateTime": self.instant(days_ago),
            "issued": self.instant(days_ago, "16:42"),
            "component": components,
        }

    # -- medicines -----------------------------------------------------------------------------------

    def _concept(self, medicine: v.Medicine) -> dict[str, Any]:
        return {"coding": [{"system": RXNORM, "code": medicine.code, "display": medicine.display}],
                "text": medicine.display}

    def _dosage(self, medicine: v.Medicine, start_days_ago: int, end_days_ago: int | None) -> dict[str, Any]:
        route_code, route_display = v.ROUTES[medicine.route]
        bounds = {"start": self.day(start_days_ago)}
        if end_days_ago is not None:
            bounds["end"] = self.day(end_days_ago)
        as_needed = medicine.route == "inhaled" or (medicine.per_day >= 3 and self.chance(0.5))
        how_often = "as needed" if as_needed else {1: "once daily", 2: "twice daily"}.get(
            medicine.per_day, f"{medicine.per_day} times a day")
        amount = f"{medicine.dose[0]:g} {medicine.dose[1]}" if medicine.dose else "as directed"
        dosage: dict[str, Any] = {
            "sequence": 1,
            "text": f"{amount}, {route_display.removesuffix(' route').lower()}, {how_often}",
            "timing": {"repeat": {"boundsPeriod": bounds, "frequency": medicine.per_day, "period": 1, "periodUnit": "d"}},
            "asNeededBoolean": as_needed,
            "route": {"coding": [{"system": SCT, "code": route_code, "display": route_display}], "text": route_display},
        }
        if self.chance(0.5):
            dosage["timing"]["code"] = {"coding": [{"system": TIMING_ABBREVIATION,
                                                    "code": v.TIMING_CODES[medicine.per_day]}]}
        if medicine.dose:
            value, unit_text, unit_code = medicine.dose
            dosage["doseAndRate"] = [{"type": {"coding": [{"system": DOSE_TYPE, "code": "ordered"}]},
                                      "doseQuantity": {"value": value, "unit": unit_text, "system": UCUM,
                                                       "code": unit_code}}]
        return dosage

    def _medication_element(self, resource: dict[str, Any], medicine: v.Medicine, *, may_reference: bool) -> None:
        if may_reference and self.chance(0.2):  # the product as a contained Medication, as some EHRs send it
            resource["contained"] = [{"resourceType": "Medication", "id": "med1",
                                      "code": self._concept(medicine)}]
            resource["medicationReference"] = {"reference": "#med1", "display": medicine.display}
        else:
            resource["medicationCodeableConcept"] = self._concept(medicine)

    def medication_request(self, medicine: v.Medicine, status: str, authored_days_ago: int, *,
                           may_reference: bool = True) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest", "id": self.next_id("mr"),
            "meta": self._meta(authored_days_ago, "us-core-medicationrequest", incidental=may_reference),
            "status": status, "intent": "order",
            "category": [{"coding": [{"system": MED_CATEGORY, "code": "community", "display": "Community"}]}],
        }
        self._medication_element(resource, medicine, may_reference=may_reference)
        ended = None if status in ("active", "on-hold") else max(0, authored_days_ago - self.random.randrange(30, 180))
        resource.update({
            "subject": self.subject,
            "authoredOn": self.instant(authored_days_ago),
            "requester": {"reference": f"Practitioner/bench-{self.random.randrange(1, 60)}",
                          "display": "Bench Prescriber"},
            "dosageInstruction": [self._dosage(medicine, authored_days_ago, ended)],
            "dispenseRequest": {"numberOfRepeatsAllowed": self.random.randrange(0, 6),
                                "quantity": {"value": 30 * medicine.per_day, "unit": "each"},
                                "expectedSupplyDuration": {"value": 30, "unit": "days",
                                                           "system": UCUM, "code": "d"}},
        })
        if self.chance(0.3):
            resource["courseOfTherapyType"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                "code": "continuous", "display": "Continuous long term therapy"}]}
        if self.chance(0.15):
            resource["extension"] = [{"url": f"{VENDOR}/order-class", "valueString": "Normal"}]
        return resource

    def medication_statement(self, medicine: v.Medicine, status: str, start_days_ago: int, *,
                             may_reference: bool = True) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "MedicationStatement", "id": self.next_id("ms"),
            "meta": self._meta(start_days_ago, incidental=may_reference),
            "status": status,
        }
        self._medication_element(resource, medicine, may_reference=may_reference)
        period = {"start": self.day(start_days_ago)}
        ended = None
        if status in ("completed", "stopped"):
            ended = max(0, start_days_ago - self.random.randrange(30, 180))
            period["end"] = self.day(ended)
        resource.update({
            "subject": self.subject,
            "effectivePeriod": period,
            "dateAsserted": self.day(start_days_ago),
            "informationSource": {"reference": f"Patient/{self.patient_id}"} if self.chance(0.5) else
            {"reference": f"Practitioner/bench-{self.random.randrange(1, 60)}"},
            "dosage": [self._dosage(medicine, start_days_ago, ended)],
        })
        return resource

    def service_request(self, code: tuple[str, str], authored_days_ago: int) -> dict[str, Any]:
        return {
            "resourceType": "ServiceRequest", "id": self.next_id("sr"),
            "meta": self._meta(authored_days_ago, incidental=True),
            "status": "active", "intent": "order",
            "category": [{"coding": [{"system": SCT, "code": "108252007", "display": "Laboratory procedure"}]}],
            "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}], "text": code[1]},
            "subject": self.subject,
            "authoredOn": self.instant(authored_days_ago),
            "requester": {"reference": f"Practitioner/bench-{self.random.randrange(1, 60)}"},
        }
