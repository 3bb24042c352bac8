"""Conditions and finding Observations: status, verification, recency, codes, severity and sites."""
from __future__ import annotations

import pytest

from cards import load_knowledge
from cards.chart import read_chart as build_view
from tests.cards.factories import NOW, PID, condition, fasciculation, finding_observation, patient

K = load_knowledge()


def concepts(*resources) -> list[str]:
    v = build_view([patient(), *resources], patient_id=PID, now=NOW, knowledge=K)
    return [f.concept for f in v.findings]


@pytest.mark.parametrize("clinical", ["inactive", "resolved", "remission"])
def test_inactive_conditions_ignored(clinical) -> None:
    assert concepts(fasciculation(clinical=clinical)) == []


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_erroneous_conditions_ignored(verification) -> None:
    assert concepts(fasciculation(verification=verification)) == []


def test_absent_clinical_status_counts_as_active_when_recent() -> None:
    assert concepts(fasciculation(clinical=None, onset="2025-06-01")) == ["fasciculation"]
    assert concepts(fasciculation(clinical=None, onset="2024-06-01", recorded="2024-07-01")) == []
    assert concepts(fasciculation(clinical=None, onset=None)) == ["fasciculation"]


def test_explicitly_active_symptom_counts_regardless_of_age() -> None:
    assert concepts(fasciculation(clinical="recurrence", onset="2019-01-01")) == ["fasciculation"]


def test_abatement_means_over_unless_status_says_active() -> None:
    assert concepts(fasciculation(clinical=None, abatementDateTime="2026-10-01")) == []
    assert concepts(fasciculation(abatementDateTime="2026-10-01")) == ["fasciculation"]


def test_pregnancy_recency_applies_even_when_active() -> None:
    assert concepts(condition("77386006", "snomed", onset="2026-08-01")) == ["pregnancy"]
    assert concepts(condition("77386006", "snomed", onset="2024-08-01")) == []


@pytest.mark.parametrize("code, system, concept", [
    ("R25.3", "icd10cm", "fasciculation"), ("R253", "icd10cm", "fasciculation"),
    ("M62.831", "icd10cm", "muscle_cramp"), ("G47.62", "icd10cm", "muscle_cramp"),
    ("55300003", "snomed", "muscle_cramp"), ("G51.4", "icd10cm", "myokymia"),
    ("M62.541", "icd10cm", "wasting"), ("M62.50", "icd10cm", "wasting"),
    ("G12.21", "icd10cm", "motor_neuron_disease"), ("G51.33", "icd10cm", "hemifacial_spasm"),
    ("G71.12", "icd10cm", "myotonia"), ("F45.21", "icd10cm", "health_anxiety"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.90", None),
])
def test_code_membership(code, system, concept) -> None:
    if concept is None:  # the HL7 OID alias of ICD-10-CM works like the URL
        assert concepts(condition("R25.3", system)) == ["fasciculation"]
    else:
        assert concepts(condition(code, system)) == [concept]


def test_unrelated_or_malformed_codes_are_ignored() -> None:
    assert concepts(condition("I10")) == []
    assert concepts(condition("R25.3", "http://example.org/local")) == []
    assert concepts({"resourceType": "Condition", "id": "x", "code": "R25.3"}) == []


def test_severity_body_sites_and_tongue() -> None:
    v = build_view([patient(), fasciculation(severity="severe", body_sites=("53840002", "left calf", "Tongue"))],
                   patient_id=PID, now=NOW, knowledge=K)
    finding = v.findings[0]
    assert finding.severity == "severe"
    # 53840002 "Calf of leg" and "left calf" are one region (issue 13 item 6): two regions in all.
    assert finding.body_sites == ("calf", "tongue") and finding.tongue


def test_finding_observation_counts_unless_recorded_absent() -> None:
    assert concepts(finding_observation("82470000")) == ["fasciculation"]
    assert concepts(finding_observation("82470000", valueBoolean=False)) == []
    assert concepts(finding_observation("82470000", valueCodeableConcept={"text": "Absent"})) == []
    assert concepts(finding_observation("82470000", status="preliminary")) == []
    assert concepts(finding_observation("82470000", effective="2023-01-01")) == []
