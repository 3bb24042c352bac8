"""Deterministic synthetic CDS Hooks requests for the benchmark scenarios.

    .venv/bin/python -m bench.generate --out DIR [--as-of 2026-11-21]

Every resource is synthetic (family name `Bench-<scenario>`, the HTEST tag) and coded with the real
LOINC, RxNorm, SNOMED CT and ICD-10-CM codes the clinical knowledge (`cards/knowledge/*.yaml`) reads,
so the rules do their real work. Dates are relative to `--as-of` (default: today, UTC), so the charts
stay current whenever the benchmark runs; the same as-of date gives byte-identical files (a seeded
random generator, no clock, no uuid4).

Scenarios
    a  typical chart, full prefetch: 60 lab Observations over the analytes the rules read, 10 medicines
       (hydrochlorothiazide and albuterol among them), 5 Conditions (fasciculation, cramp): several cards
    b  large chart, full prefetch: 2,000 Observations, 200 medicines, 50 Conditions
    c  typical chart without a relevant symptom (the fast path most chart opens take): no card
    d  prefetch absent: the request supplies `patient` and `findings` only; the service fetches the
       other 5 keys from `fhirServer` (the chart of (a), loaded into the FHIR test server)
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from fixtures.build import (COND_CATEGORY, COND_CLINICAL, COND_VER, ICD10CM, LOINC, OBS_CATEGORY,
                            OBS_INTERPRETATION, RXNORM, SCT, UCUM)
from hooks.fasciculation_review import SERVICE

SERVICE_ID = SERVICE.id
FHIR_SERVER = "https://ehr.bench.example/fhir/R4"
USER_ID = "Practitioner/bench-clinician"

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
HTEST = {"tag": [{"system": ACT_REASON, "code": "HTEST", "display": "test health data"}]}

# analyte -> (LOINC, display, UCUM unit, reference low, high, typical value, spread, decimals)
LABS: dict[str, tuple[str, str, str, float, float, float, float, int]] = {
    "sodium": ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 140, 2.5, 0),
    "potassium": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.2, 0.3, 1),
    "urea": ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 14, 3, 0),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2, 0.9, 0.1, 2),
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.5, 10.5, 9.4, 0.3, 1),
    "albumin": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0, 4.2, 0.2, 1),
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", 1.7, 2.4, 2.0, 0.15, 1),
    "tsh": ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 1.8, 0.6, 2),
    "free_t4": ("3024-7", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", "ng/dL", 0.9, 1.7, 1.2, 0.15, 2),
    "ck": ("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 26, 192, 110, 30, 0),
}

# Medicines: key -> (RxNorm code, display, route SNOMED code, route display). The first ones are classes
# the rules read (cards/knowledge/medications.yaml); the rest are real RxNorm ingredients the rules ignore.
MEDICINES: dict[str, tuple[str, str]] = {
    "hydrochlorothiazide": ("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
    "albuterol": ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "furosemide": ("313988", "furosemide 40 MG Oral Tablet"),
    "prednisone": ("312615", "prednisone 20 MG Oral Tablet"),
    "metformin": ("6809", "metformin"),
    "atorvastatin": ("83367", "atorvastatin"),
    "lisinopril": ("29046", "lisinopril"),
    "omeprazole": ("7646", "omeprazole"),
    "amlodipine": ("17767", "amlodipine"),
    "sertraline": ("36437", "sertraline"),
    "acetaminophen": ("161", "acetaminophen"),
    "ibuprofen": ("5640", "ibuprofen"),
    "levothyroxine": ("10582", "levothyroxine"),
    "simvastatin": ("36567", "simvastatin"),
    "aspirin": ("1191", "aspirin"),
}
IGNORED_MEDICINES = [name for name in MEDICINES if name not in
                     ("hydrochlorothiazide", "albuterol", "furosemide", "prednisone")]

# Conditions: (ICD-10-CM, display). Index symptoms the rules start from, then unrelated diagnoses.
FASCICULATION = ("R25.3", "Fasciculation")
CRAMP = ("R25.2", "Cramp and spasm")
OTHER_CONDITIONS = [
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("M54.50", "Low back pain, unspecified"),
    ("F41.1", "Generalized anxiety disorder"),
    ("E66.9", "Obesity, unspecified"),
    ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("H52.4", "Presbyopia"),
    ("L40.0", "Psoriasis vulgaris"),
    ("K58.9", "Irritable bowel syndrome without diarrhea"),
    ("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"),
    ("D64.9", "Anemia, unspecified"),
    ("E55.9", "Vitamin D deficiency, unspecified"),
    ("I48.91", "Unspecified atrial fibrillation"),
    ("J30.9", "Allergic rhinitis, unspecified"),
    ("R51.9", "Headache, unspecified"),
]


@dataclass
class Chart:
    """One synthetic patient's resources, by prefetch key."""

    patient: dict[str, Any]
    by_key: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, key: str, resource: dict[str, Any]) -> None:
        self.by_key.setdefault(key, []).append(resource)

    def resources(self) -> list[dict[str, Any]]:
        return [self.patient] + [resource for key in PREFETCH_KEYS[1:] for resource in self.by_key.get(key, [])]


PREFETCH_KEYS = tuple(SERVICE.prefetch)  # patient, conditions, observations, findings, medication*, serviceRequests


class Builder:
    def __init__(self, scenario: str, as_of: date, seed: int):
        self.scenario = scenario
        self.as_of = as_of
        self.random = random.Random(seed)
        self.patient_id = f"bench-{scenario}-pat"
        self._serial = 0

    # -- values ------------------------------------------------------------------------------------

    def next_id(self, kind: str) -> str:
        self._serial += 1
        return f"bench-{self.scenario}-{kind}-{self._serial:05d}"

    def day(self, days_ago: int) -> str:
        return (self.as_of - timedelta(days=days_ago)).isoformat()

    def instant(self, days_ago: int, hhmm: str = "08:30") -> str:
        return f"{self.day(days_ago)}T{hhmm}:00Z"

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    # -- resources ---------------------------------------------------------------------------------

    def patient(self, gender: str, age: int) -> dict[str, Any]:
        born = date(self.as_of.year - age, 3, 14) if (self.as_of.month, self.as_of.day) >= (3, 14) else \
            date(self.as_of.year - age - 1, 3, 14)
        return {
            "resourceType": "Patient", "id": self.patient_id, "meta": HTEST,
            "identifier": [{"use": "usual", "system": "urn:oid:2.16.840.1.113883.19.5",
                            "value": f"MRN-BENCH-{self.scenario.upper()}"}],
            "active": True,
            "name": [{"use": "official", "family": f"Bench-{self.scenario.upper()}", "given": ["Alex"]}],
            "gender": gender, "birthDate": born.isoformat(),
        }

    def condition(self, icd: tuple[str, str], onset_days_ago: int, *, status: str = "active",
                  text: str | None = None) -> dict[str, Any]:
        code, display = icd
        resource: dict[str, Any] = {
            "resourceType": "Condition", "id": self.next_id("cond"), "meta": HTEST,
            "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": status}]},
            "verificationStatus": {"coding": [{"system": COND_VER, "code": "confirmed"}]},
            "category": [{"coding": [{"system": COND_CATEGORY, "code": "problem-list-item",
                                      "display": "Problem List Item"}]}],
            "code": {"coding": [{"system": ICD10CM, "code": code, "display": display}], "text": text or display},
            "subject": self.subject,
            "onsetDateTime": self.day(onset_days_ago),
            "recordedDate": self.day(max(0, onset_days_ago - 7)),
        }
        if status == "resolved":
            resource["abatementDateTime"] = self.day(max(0, onset_days_ago - 60))
        return resource

    def lab(self, analyte: str, days_ago: int, value: float | None = None) -> dict[str, Any]:
        loinc, display, unit, low, high, typical, spread, decimals = LABS[analyte]
        if value is None:
            value = round(self.random.gauss(typical, spread), decimals)
            value = min(max(value, low), high)  # a normal result unless the scenario says otherwise
        value = round(value, decimals) if decimals else int(round(value))
        resource: dict[str, Any] = {
            "resourceType": "Observation", "id": self.next_id("obs"), "meta": HTEST,
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            "subject": self.subject,
            "effectiveDateTime": self.instant(days_ago),
            "issued": self.instant(days_ago, "15:10"),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            "referenceRange": [{"low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
                                "high": {"value": high, "unit": unit, "system": UCUM, "code": unit}}],
        }
        flag = "L" if value < low else "H" if value > high else None
        if flag:
            resource["interpretation"] = [{"coding": [{"system": OBS_INTERPRETATION, "code": flag}]}]
        return resource

    def medication_request(self, medicine: str, status: str, authored_days_ago: int) -> dict[str, Any]:
        code, display = MEDICINES[medicine]
        return {
            "resourceType": "MedicationRequest", "id": self.next_id("mr"), "meta": HTEST,
            "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}],
                                          "text": display},
            "subject": self.subject,
            "authoredOn": self.day(authored_days_ago),
            "dosageInstruction": [self._dosage(medicine, authored_days_ago,
                                               None if status == "active" else max(0, authored_days_ago - 90))],
        }

    def medication_statement(self, medicine: str, status: str, start_days_ago: int) -> dict[str, Any]:
        code, display = MEDICINES[medicine]
        period = {"start": self.day(start_days_ago)}
        if status in ("completed", "stopped"):
            period["end"] = self.day(max(0, start_days_ago - 90))
        return {
            "resourceType": "MedicationStatement", "id": self.next_id("ms"), "meta": HTEST,
            "status": status,
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}],
                                          "text": display},
            "subject": self.subject,
            "effectivePeriod": period,
            "dateAsserted": self.day(start_days_ago),
            "dosage": [{"text": "as directed"}],
        }

    def _dosage(self, medicine: str, start_days_ago: int, end_days_ago: int | None) -> dict[str, Any]:
        inhaled = medicine == "albuterol"
        bounds = {"start": self.day(start_days_ago)}
        if end_days_ago is not None:
            bounds["end"] = self.day(end_days_ago)
        dosage: dict[str, Any] = {
            "text": "2 puffs when needed" if inhaled else "1 tablet by mouth once daily",
            "timing": {"repeat": {"boundsPeriod": bounds, "frequency": 1, "period": 1, "periodUnit": "d"}},
            "route": {"coding": [{"system": SCT, "code": "447694001" if inhaled else "26643006",
                                  "display": "Respiratory tract route" if inhaled else "Oral route"}]},
        }
        if inhaled:
            dosage["asNeededBoolean"] = True
        return dosage


# -- the charts ----------------------------------------------------------------------------------------

def typical_chart(builder: Builder, *, symptomatic: bool) -> Chart:
    """60 labs over 10 analytes, 10 medicines, 5 Conditions; with the symptoms, several cards."""
    chart = Chart(builder.patient("female", 58))
    conditions = ([builder.condition(FASCICULATION, 75, text="Twitching of the left calf"),
                   builder.condition(CRAMP, 60, text="Night cramps, both calves")] if symptomatic else
                  [builder.condition(OTHER_CONDITIONS[3], 400), builder.condition(OTHER_CONDITIONS[8], 900)])
    conditions += [builder.condition(OTHER_CONDITIONS[i], 3000 - 400 * i) for i in range(3)]
    for resource in conditions:
        chart.add("conditions", resource)
    # Panels every ~4 months over 3 years: BMP parts and calcium/albumin each time, thyroid and
    # magnesium only long ago, CK never (the work-up card asks for TSH, CK and magnesium), and the
    # latest potassium low (the abnormal-result card) while on a thiazide (the medication-review card).
    labs: list[dict[str, Any]] = []
    for panel in range(9):
        days_ago = 20 + 120 * panel
        for analyte in ("sodium", "potassium", "urea", "creatinine", "calcium", "albumin"):
            value = 3.1 if analyte == "potassium" and panel == 0 else None
            labs.append(builder.lab(analyte, days_ago, value))
    for panel in range(2):
        for analyte in ("tsh", "free_t4", "magnesium"):
            labs.append(builder.lab(analyte, 500 + 300 * panel))
    assert len(labs) == 60, len(labs)
    for resource in sorted(labs, key=lambda r: r["effectiveDateTime"], reverse=True):
        chart.add("observations", resource)
    chart.add("medicationRequests", builder.medication_request("hydrochlorothiazide", "active", 200))
    chart.add("medicationRequests", builder.medication_request("albuterol", "active", 150))
    for index, medicine in enumerate(("metformin", "atorvastatin", "lisinopril", "omeprazole")):
        chart.add("medicationRequests", builder.medication_request(medicine, "active", 300 + 50 * index))
    for index, medicine in enumerate(("acetaminophen", "ibuprofen", "aspirin", "sertraline")):
        chart.add("medicationStatements", builder.medication_statement(
            medicine, "active" if index % 2 == 0 else "completed", 400 + 100 * index))
    return chart


def large_chart(builder: Builder) -> Chart:
    """2,000 Observations, 200 medicines, 50 Conditions, over ~15 years."""
    chart = Chart(builder.patient("male", 63))
    chart.add("conditions", builder.condition(FASCICULATION, 90, text="Fasciculation, both calves"))
    chart.add("conditions", builder.condition(CRAMP, 45, text="Muscle cramps"))
    for index in range(48):
        icd = OTHER_CONDITIONS[index % len(OTHER_CONDITIONS)]
        status = "active" if index < 12 else "resolved"
        chart.add("conditions", builder.condition(icd, 200 + 110 * index, status=status))
    labs: list[dict[str, Any]] = []
    analytes = list(LABS)
    for index in range(2000):
        analyte = analytes[index % len(analytes)]
        days_ago = 10 + (index // len(analytes)) * 27 + builder.random.randrange(0, 5)
        value = 3.2 if analyte == "potassium" and index < len(analytes) else None
        labs.append(builder.lab(analyte, days_ago, value))
    for resource in sorted(labs, key=lambda r: r["effectiveDateTime"], reverse=True):
        chart.add("observations", resource)
    relevant = ["hydrochlorothiazide", "albuterol", "furosemide", "prednisone"]
    for index in range(120):
        medicine = relevant[index % 4] if index < 8 else IGNORED_MEDICINES[index % len(IGNORED_MEDICINES)]
        status = "active" if index < 6 or index % 10 == 0 else ("completed" if index % 3 else "stopped")
        chart.add("medicationRequests", builder.medication_request(medicine, status, 60 + 35 * index))
    for index in range(80):
        medicine = IGNORED_MEDICINES[(index * 7) % len(IGNORED_MEDICINES)]
        status = "active" if index % 8 == 0 else "completed"
        chart.add("medicationStatements", builder.medication_statement(medicine, status, 90 + 50 * index))
    return chart


# -- requests ------------------------------------------------------------------------------------------

def searchset(resources: list[dict[str, Any]], base: str) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
    if resources:
        bundle["entry"] = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in resources]
    return bundle


def request_for(chart: Chart, builder: Builder, *, prefetch_keys: tuple[str, ...] = PREFETCH_KEYS,
                fhir_server: str = FHIR_SERVER) -> dict[str, Any]:
    prefetch: dict[str, Any] = {}
    for key in prefetch_keys:
        prefetch[key] = chart.patient if key == "patient" else searchset(chart.by_key.get(key, []), fhir_server)
    return {
        "hook": "patient-view",
        "hookInstance": _hook_instance(builder.scenario),
        "fhirServer": fhir_server,
        "context": {"userId": USER_ID, "patientId": chart.patient["id"]},
        "prefetch": prefetch,
    }


def _hook_instance(scenario: str) -> str:
    return f"b0000000-0000-4000-8000-{ord(scenario):012x}"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    request: dict[str, Any]
    fhir_resources: list[dict[str, Any]] = field(default_factory=list)  # (d): what the FHIR server holds
    fetched_keys: tuple[str, ...] = ()


SCENARIOS = ("a", "b", "c", "d")
TITLES = {
    "a": "typical chart, full prefetch (60 Observations, 10 medicines, 5 Conditions)",
    "b": "large chart, full prefetch (2,000 Observations, 200 medicines, 50 Conditions)",
    "c": "no relevant symptom (typical chart without fasciculation or cramp)",
    "d": "prefetch absent: 5 keys fetched from a FHIR server adding 100 ms per response",
}
FETCHED_KEYS = ("conditions", "observations", "medicationStatements", "medicationRequests", "serviceRequests")


def build(name: str, as_of: date, *, fhir_server_for_d: str = "http://127.0.0.1:8089/fhir/R4") -> Scenario:
    builder = Builder(name, as_of, seed=ord(name))
    if name == "a":
        chart = typical_chart(builder, symptomatic=True)
        return Scenario(name, TITLES[name], request_for(chart, builder))
    if name == "b":
        chart = large_chart(builder)
        return Scenario(name, TITLES[name], request_for(chart, builder))
    if name == "c":
        chart = typical_chart(builder, symptomatic=False)
        return Scenario(name, TITLES[name], request_for(chart, builder))
    if name == "d":
        chart = typical_chart(builder, symptomatic=True)
        supplied = tuple(key for key in PREFETCH_KEYS if key not in FETCHED_KEYS)
        request = request_for(chart, builder, prefetch_keys=supplied, fhir_server=fhir_server_for_d)
        return Scenario(name, TITLES[name], request, fhir_resources=chart.resources(), fetched_keys=FETCHED_KEYS)
    raise ValueError(f"unknown scenario {name!r}")


def write(scenario: Scenario, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario.name}.json"
    path.write_bytes(orjson.dumps(scenario.request))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--fhir-server", default="http://127.0.0.1:8089/fhir/R4",
                        help="fhirServer of scenario (d)")
    args = parser.parse_args(argv)
    for name in SCENARIOS:
        scenario = build(name, args.as_of, fhir_server_for_d=args.fhir_server)
        path = write(scenario, args.out)
        print(f"{path}  {path.stat().st_size:>10,} bytes  {scenario.title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
