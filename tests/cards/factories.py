"""Small builders of raw FHIR R4 resources for the card tests; every review() they run is card-checked."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from cards import Review, ReviewOptions, review
from tests.cards.cardcheck import assert_cards

NOW = datetime(2026, 11, 15, 9, 0, tzinfo=timezone.utc)
PID = "p1"
SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "atc": "http://www.whocc.no/atc",
    "ucum": "http://unitsofmeasure.org",
}
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def concept(code: str, system: str = "icd10cm", display: str | None = None, text: str | None = None) -> dict:
    coding = {"system": SYSTEMS.get(system, system), "code": code}
    if display:
        coding["display"] = display
    result: dict[str, Any] = {"coding": [coding]}
    if text:
        result["text"] = text
    return result


def patient(birth_date: str | None = "1980-05-01", gender: str = "male", patient_id: str = PID) -> dict:
    resource = {"resourceType": "Patient", "id": patient_id, "gender": gender}
    if birth_date:
        resource["birthDate"] = birth_date
    return resource


def condition(code: str, system: str = "icd10cm", *, clinical: str | None = "active", verification: str = "confirmed",
              onset: str | None = "2026-09-01", recorded: str | None = None, severity: str | None = None,
              body_sites: tuple[str, ...] = (), display: str | None = None, **extra: Any) -> dict:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": _id("cond"), "code": concept(code, system, display),
                                "subject": {"reference": f"Patient/{PID}"}}
    if clinical:
        resource["clinicalStatus"] = concept(clinical, "http://terminology.hl7.org/CodeSystem/condition-clinical")
    if verification:
        resource["verificationStatus"] = concept(verification,
                                                 "http://terminology.hl7.org/CodeSystem/condition-ver-status")
    if onset:
        resource["onsetDateTime"] = onset
    if recorded:
        resource["recordedDate"] = recorded
    if severity:
        code_by_level = {"severe": "24484000", "moderate": "6736007", "mild": "255604002"}
        resource["severity"] = concept(code_by_level[severity], "snomed", severity.title())
    if body_sites:
        resource["bodySite"] = [concept(site, "snomed") if site.isdigit() else {"text": site} for site in body_sites]
    resource.update(extra)
    return resource


def fasciculation(**kwargs: Any) -> dict:
    return condition("R25.3", display="Fasciculation", **kwargs)


def cramp(**kwargs: Any) -> dict:
    return condition("R25.2", display="Cramp and spasm", **kwargs)


def observation(code: str, value: float | None, unit: str | None, *, system: str = "loinc", status: str = "final",
                effective: str | None = "2026-10-01", issued: str | None = None, low: float | None = None,
                high: float | None = None, interpretation: str | None = None, ucum: bool = True,
                **extra: Any) -> dict:
    resource: dict[str, Any] = {"resourceType": "Observation", "id": _id("obs"), "status": status,
                                "code": concept(code, system), "subject": {"reference": f"Patient/{PID}"}}
    if effective:
        resource["effectiveDateTime"] = effective
    if issued:
        resource["issued"] = issued
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit is not None:
            quantity["unit"] = unit
            if ucum:
                quantity.update(system=SYSTEMS["ucum"], code=unit)
        resource["valueQuantity"] = quantity
    if low is not None or high is not None:
        reference_range = {}
        if low is not None:
            reference_range["low"] = {"value": low, "unit": unit}
        if high is not None:
            reference_range["high"] = {"value": high, "unit": unit}
        resource["referenceRange"] = [reference_range]
    if interpretation:
        resource["interpretation"] = [concept(interpretation,
                                              "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation")]
    resource.update(extra)
    return resource


def finding_observation(snomed: str, *, status: str = "final", effective: str = "2026-10-01", **extra: Any) -> dict:
    resource = {"resourceType": "Observation", "id": _id("fobs"), "status": status, "code": concept(snomed, "snomed"),
                "subject": {"reference": f"Patient/{PID}"}, "effectiveDateTime": effective}
    resource.update(extra)
    return resource


# Latest-result helpers for the analytes of the required work-up.
def sodium(value: float = 140, **kw: Any) -> dict:
    return observation("2951-2", value, "mmol/L", low=135, high=145, **kw)


def potassium(value: float = 4.2, **kw: Any) -> dict:
    return observation("2823-3", value, "mmol/L", low=3.5, high=5.1, **kw)


def bun(value: float = 14, **kw: Any) -> dict:
    return observation("3094-0", value, "mg/dL", low=7, high=20, **kw)


def creatinine(value: float = 0.9, **kw: Any) -> dict:
    return observation("2160-0", value, "mg/dL", low=0.7, high=1.3, **kw)


def calcium(value: float = 9.4, **kw: Any) -> dict:
    return observation("17861-6", value, "mg/dL", low=8.5, high=10.5, **kw)


def tsh(value: float = 1.8, **kw: Any) -> dict:
    return observation("3016-3", value, "m[IU]/L", low=0.4, high=4.0, **kw)


def ck(value: float = 150, high: float = 308, **kw: Any) -> dict:
    return observation("2157-6", value, "U/L", low=39, high=high, **kw)


def magnesium(value: float = 2.0, **kw: Any) -> dict:
    return observation("19123-9", value, "mg/dL", low=1.7, high=2.4, **kw)


def normal_workup(effective: str = "2026-10-01", skip: tuple[str, ...] = ()) -> list[dict]:
    builders = {"sodium": sodium, "potassium": potassium, "urea": bun, "creatinine": creatinine,
                "calcium": calcium, "tsh": tsh, "ck": ck}
    return [build(effective=effective) for name, build in builders.items() if name not in skip]


def medication_request(*, rxnorm: str | None = None, atc: str | None = None, text: str | None = None,
                       status: str = "active", intent: str = "order", authored: str | None = "2026-06-01",
                       dosage: list[dict] | None = None, **extra: Any) -> dict:
    codings = []
    if rxnorm:
        codings.append({"system": SYSTEMS["rxnorm"], "code": rxnorm})
    if atc:
        codings.append({"system": SYSTEMS["atc"], "code": atc})
    medication: dict[str, Any] = {"coding": codings} if codings else {}
    if text:
        medication["text"] = text
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "id": _id("mr"), "status": status,
                                "intent": intent, "medicationCodeableConcept": medication,
                                "subject": {"reference": f"Patient/{PID}"}}
    if authored:
        resource["authoredOn"] = authored
    if dosage:
        resource["dosageInstruction"] = dosage
    resource.update(extra)
    return resource


def medication_statement(*, rxnorm: str | None = None, text: str | None = None, status: str = "active",
                         start: str | None = "2026-01-01", end: str | None = None, **extra: Any) -> dict:
    medication: dict[str, Any] = {"coding": [{"system": SYSTEMS["rxnorm"], "code": rxnorm}]} if rxnorm else {}
    if text:
        medication["text"] = text
    resource: dict[str, Any] = {"resourceType": "MedicationStatement", "id": _id("ms"), "status": status,
                                "medicationCodeableConcept": medication, "subject": {"reference": f"Patient/{PID}"}}
    period = {key: value for key, value in (("start", start), ("end", end)) if value}
    if period:
        resource["effectivePeriod"] = period
    resource.update(extra)
    return resource


def dose(mg: float, *, unit: str = "mg", per_day: int = 1, start: str | None = None, end: str | None = None,
         sequence: int | None = None, route: dict | None = None, text: str | None = None) -> dict:
    repeat: dict[str, Any] = {"frequency": per_day, "period": 1, "periodUnit": "d"}
    if start or end:
        repeat["boundsPeriod"] = {key: value for key, value in (("start", start), ("end", end)) if value}
    dosage: dict[str, Any] = {"timing": {"repeat": repeat},
                              "doseAndRate": [{"doseQuantity": {"value": mg, "unit": unit, "system": SYSTEMS["ucum"],
                                                                "code": unit}}]}
    if sequence is not None:
        dosage["sequence"] = sequence
    if route:
        dosage["route"] = route
    if text:
        dosage["text"] = text
    return dosage


def service_request(code: str, system: str = "loinc", status: str = "active") -> dict:
    return {"resourceType": "ServiceRequest", "id": _id("sr"), "status": status, "intent": "order",
            "code": concept(code, system), "subject": {"reference": f"Patient/{PID}"}}


def run(resources: list[Any], *, locale: str = "US", now: datetime = NOW, **options: Any) -> Review:
    result = review(resources, patient_id=PID, now=now, options=ReviewOptions(locale=locale, **options))
    assert_cards(result.cards)
    return result


def topics(result: Review) -> list[str]:
    return [card["source"]["topic"]["code"] for card in result.cards]


def card(result: Review, topic: str) -> dict:
    matches = [c for c in result.cards if c["source"]["topic"]["code"] == topic]
    assert len(matches) == 1, f"expected one {topic} card, got {len(matches)}: {topics(result)}"
    return matches[0]


def suggested_codes(card_: dict) -> list[str]:
    return sorted(action["resource"]["code"]["coding"][0]["code"]
                  for suggestion in card_.get("suggestions", ()) for action in suggestion["actions"])
