"""Medicine matching (RxNorm product/ingredient, ATC, text), local corticosteroids, statuses, doses."""
from __future__ import annotations

import pytest

from cards import load_knowledge
from cards.chart import read_chart as build_view
from tests.cards.factories import (NOW, PID, SYSTEMS, concept, dose, medication_request, medication_statement,
                                   patient)

K = load_knowledge()
INHALED = {"coding": [{"system": SYSTEMS["snomed"], "code": "447694001"}]}
ORAL = {"coding": [{"system": SYSTEMS["snomed"], "code": "26643006", "display": "Oral route"}]}


def meds(*resources):
    return build_view([patient(), *resources], patient_id=PID, now=NOW, knowledge=K).medications


def one(*resources):
    found = meds(*resources)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("kwargs, ingredient, matched_by", [
    ({"rxnorm": "310798"}, "hydrochlorothiazide", "rxnorm"),            # SCD product
    ({"rxnorm": "5487"}, "hydrochlorothiazide", "rxnorm"),              # ingredient
    ({"atc": "C03CA01"}, "furosemide", "atc"),
    ({"text": "Salbutamol 100 micrograms/dose inhaler"}, "albuterol", "text"),
    ({"text": "ALBUTEROL SULFATE HFA"}, "albuterol", "text"),
    ({"text": "Frusemide 40mg tablets"}, "furosemide", "text"),
    # An RxNorm code the knowledge does not list (999999 is a real Tribenzor form in drug_products.yaml).
    ({"rxnorm": "99999999", "text": "methylphenidate 10 MG"}, "methylphenidate", "text"),
    ({"text": "Dexmethylphenidate 5 mg"}, "dexmethylphenidate", "text"),
    ({"text": "Methylprednisolone 4 mg"}, "methylprednisolone", "text"),
    ({"text": "Qualaquin 324 mg capsule"}, "quinine", "text"),
])
def test_matching_order_and_synonyms(kwargs, ingredient, matched_by) -> None:
    medication = one(medication_request(**kwargs))
    assert medication.ingredients == (ingredient,)
    assert medication.matched_by == matched_by


def test_word_boundaries_prevent_partial_matches() -> None:
    assert meds(medication_request(text="Prednisolonex compound")) == ()
    assert meds(medication_request(text="levalbuterolol")) == ()


def test_unrelated_medicines_are_ignored() -> None:
    assert meds(medication_request(rxnorm="314076", text="lisinopril 10 MG Oral Tablet")) == ()


@pytest.mark.parametrize("resource", [
    medication_request(atc="R03BA02", text="budesonide 0.2 MG/ACTUAT"),
    medication_request(rxnorm="19831", text="budesonide", dosage=[dose(0.4, route=INHALED)]),
    medication_request(text="Budesonide 64 mcg nasal spray"),
    medication_request(text="hydrocortisone 1 % topical cream"),
])
def test_local_corticosteroids_are_not_systemic(resource) -> None:
    assert meds(resource) == ()


def test_oral_budesonide_and_combination_inhalers() -> None:
    oral = one(medication_request(atc="A07EA06", text="budesonide 3 MG Extended Release Oral Capsule",
                                  dosage=[dose(9, route=ORAL)]))
    assert oral.classes == ("systemic_corticosteroid",)
    combo = one(medication_request(text="budesonide / formoterol inhalation powder"))
    assert combo.classes == ("beta2_agonist",)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "draft", "unknown"])
def test_ignored_request_statuses(status) -> None:
    assert meds(medication_request(rxnorm="310798", status=status)) == ()


@pytest.mark.parametrize("status", ["entered-in-error", "not-taken", "unknown", "on-hold"])
def test_ignored_statement_statuses(status) -> None:
    assert meds(medication_statement(rxnorm="310798", status=status)) == ()


def test_current_statuses_and_intents() -> None:
    assert one(medication_request(rxnorm="310798", status="on-hold")).current
    assert one(medication_statement(rxnorm="310798", status="intended")).current
    assert meds(medication_request(rxnorm="310798", intent="proposal")) == ()


def test_stopped_counts_only_inside_the_recent_window() -> None:
    assert meds(medication_request(rxnorm="313988", status="stopped", authored="2024-01-01")) == ()
    recent = one(medication_request(rxnorm="313988", status="stopped", authored="2026-10-01"))
    assert not recent.current
    statement = one(medication_statement(rxnorm="313988", status="completed", start="2025-01-01", end="2026-11-01"))
    assert statement.ended_text == "2026-11-01"


def test_daily_dose_from_tablets_strength_and_frequency() -> None:
    tablets = one(medication_request(rxnorm="312615", dosage=[dose(2, unit="{tbl}")]))
    assert tablets.daily_dose_mg == 40 and tablets.prednisone_equivalent_mg == 40
    twice = one(medication_request(text="dexamethasone 4 mg tablet", dosage=[dose(4, per_day=2)]))
    assert twice.prednisone_equivalent_mg == pytest.approx(53.4, rel=1e-2)
    unknown = one(medication_request(rxnorm="8640"))
    assert unknown.daily_dose_mg is None


def test_taper_detected_from_falling_doses_only() -> None:
    steps = [dose(40, start="2026-11-01", end="2026-11-07", sequence=1),
             dose(20, start="2026-11-08", end="2026-11-20", sequence=2)]
    tapering = one(medication_request(rxnorm="312615", dosage=steps))
    assert tapering.tapering and tapering.prednisone_equivalent_mg == 20
    # Issue 13 item 8: a word is not a taper ("review before any taper" is a plan); only falling doses are.
    worded = one(medication_request(rxnorm="312615", dosage=[dose(20, text="taper by 5 mg weekly")],
                                    note=[{"text": "review in 4 weeks before any taper"}]))
    assert not worded.tapering
    steady = one(medication_request(rxnorm="312615", dosage=[dose(20)]))
    assert not steady.tapering


def test_contained_medication_and_reference_display() -> None:
    contained = medication_request(text=None)
    del contained["medicationCodeableConcept"]
    contained["medicationReference"] = {"reference": "#med1"}
    contained["contained"] = [{"resourceType": "Medication", "id": "med1", "code": concept("9071", "rxnorm")}]
    assert one(contained).ingredients == ("quinine",)
    display_only = medication_request()
    del display_only["medicationCodeableConcept"]
    display_only["medicationReference"] = {"reference": "Medication/x", "display": "Pyridostigmine 60 mg"}
    assert one(display_only).ingredients == ("pyridostigmine",)
