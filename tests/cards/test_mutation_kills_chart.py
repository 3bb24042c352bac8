"""Tests written for mutants of the reading layer (cards/chart/) and card building that survived (docs/mutation.md)."""
from __future__ import annotations

from cards import review
from tests.cards.factories import NOW, PID, card, condition, fasciculation, normal_workup, observation, patient, run


def test_a_unit_not_listed_for_the_test_is_converted_by_ucum() -> None:
    """units._resolve: a unit that labs.yaml does not list (creatinine in mg/L) is still converted through UCUM
    (kills `listed is not None` -> `is None`, which gave up on every unlisted unit)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("creatinine",)),
                  observation("2160-0", 9.0, "mg/L", low=7, high=13)])
    assert "- Creatinine 9 mg/L on 2026-10-01 (80 µmol/L; reference 7–13)" in card(result, "reassurance")["detail"]


def test_a_chart_without_a_trigger_counts_each_entry_that_is_not_a_resource_once() -> None:
    """reader.unread: the skipped count (kills counting 2 per entry)."""
    result = review([patient(), "not a resource", 42, {"resourceType": 5}, condition("I10")], patient_id=PID, now=NOW)
    assert result.cards == [] and result.skipped_resources == 3


def test_the_start_of_use_is_read_from_the_dosage_bounds() -> None:
    """doses.period: without authoredOn, the start is the dosage's boundsPeriod.start (kills ignoring it)."""
    from tests.cards.factories import dose, medication_request

    started = medication_request(rxnorm="310798", authored=None, dosage=[dose(25, start="2026-10-01")])
    c = card(run([patient(), fasciculation(), *normal_workup(), started]), "medication-review")
    assert "- hydrochlorothiazide — active MedicationRequest, since 2026-10-01 (thiazide diuretic)" in c["detail"]


def test_the_strength_of_a_single_ingredient_medicine_is_read_from_its_name() -> None:
    """doses.strength_mg: "prednisone 40 mg tablet", one tablet a day, is 40 mg/day (kills the ingredient count
    changed from 1)."""
    from tests.cards.factories import dose, medication_request

    steroid = medication_request(text="prednisone 40 mg tablet", dosage=[dose(1, unit="{tbl}")])
    c = card(run([patient(), fasciculation(), *normal_workup(), steroid]), "medication-review")
    assert ("- prednisone 40 mg tablet — active MedicationRequest, since 2026-06-01; about 40 mg/day "
            "prednisone-equivalent (systemic corticosteroid)") in c["detail"]


def test_three_missing_parts_of_a_panel_are_listed_with_commas_and_and() -> None:
    """render.join_names (was workup_card._join): every name of a list of three (kills slicing [:+1] for [:-1])."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("sodium", "potassium", "urea"))])
    assert "- BMP: sodium, potassium and urea (BUN) missing; creatinine 0.9 mg/dL on file" in \
        card(result, "workup-incomplete")["detail"]


def test_a_result_with_an_effective_period_is_dated_by_its_start() -> None:
    """labs.effective_raw: effectivePeriod.start, the end only when there is no start (kills ignoring start)."""
    from tests.cards.factories import topics, tsh

    period = tsh(effective=None, effectivePeriod={"start": "2026-10-01T08:00:00Z", "end": "2026-10-02T08:00:00Z"})
    result = run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), period])
    assert topics(result) == ["reassurance"]
    assert "- TSH 1.80 mIU/L on 2026-10-01 (reference 0.40–4.00)" in card(result, "reassurance")["detail"]
