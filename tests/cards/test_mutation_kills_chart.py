"""Tests written for mutants of the reading layer (cards/chart/) that survived the suite (docs/mutation.md)."""
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
