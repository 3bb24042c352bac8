"""Tests written for mutants of cards/rules/ that survived the suite (docs/mutation.md, "Results").

Each test names the mutant kind it kills; together they pin boundaries the rule tests left open.
"""
from __future__ import annotations

import pytest

from cards import review
from cards.view import DataGap
from tests.cards.factories import (NOW, PID, calcium, card, ck, condition, cramp, fasciculation, magnesium,
                                   medication_request, medication_statement, normal_workup, observation, patient,
                                   potassium, run, service_request, sodium, suggested_codes, topics, tsh)

# factories.NOW is 2026-11-15T09:00Z; the default look-back window is 12 months (settings.yaml).
WINDOW_START = "2025-11-15T09:00:00Z"


@pytest.mark.parametrize("effective, fresh", [(WINDOW_START, True), ("2025-11-15T08:59:59Z", False)])
def test_a_result_taken_exactly_at_the_window_start_is_fresh(effective, fresh) -> None:
    """windows.is_fresh: `>=` -> `>` (the window includes its first moment)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), tsh(effective=effective)])
    assert topics(result) == (["reassurance"] if fresh else ["workup-incomplete"])


def test_an_abnormal_result_taken_exactly_at_the_window_start_is_a_current_result() -> None:
    """windows.is_fresh: `>=` -> `>` for the result rules (the work-up's own test is above)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("potassium",)),
                  potassium(2.9, effective=WINDOW_START)])
    assert topics(result) == ["abnormal-result"]
    assert "low potassium" in card(result, "abnormal-result")["summary"]


def test_an_undated_abnormal_result_is_never_reported_as_a_current_result() -> None:
    """windows.is_fresh: an undated result counted as fresh would raise an abnormal-result card and complete
    the work-up; it is asked for again instead."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("potassium",)), potassium(2.9, effective=None)])
    assert topics(result) == ["workup-incomplete"]
    assert "potassium 2.9 mmol/L, low" in card(result, "workup-incomplete")["detail"]


def _low_calcium_with_albumin(albumin_effective: str) -> list[str]:
    """Total calcium 8.0 mg/dL (low) with an albumin of 30 g/L: corrected 8.8 mg/dL, inside the range, when
    the albumin counts (drawn within albumin_max_gap_days = 7 days of the calcium)."""
    albumin = observation("1751-7", 3.0, "g/dL", low=3.5, high=5.0, effective=albumin_effective)
    low_total = calcium(8.0, effective="2026-10-10T12:00:00Z")
    return topics(run([patient(), fasciculation(), *normal_workup(skip=("calcium",)), low_total, albumin]))


@pytest.mark.parametrize("albumin_effective, corrected", [
    ("2026-10-10T12:00:00Z", True),   # same moment
    ("2026-10-11T12:00:00Z", True),   # one day apart (kills seconds * 86400 instead of / 86400)
    ("2026-10-17T12:00:00Z", True),   # exactly 7 days: still within (kills <= -> <)
    ("2026-10-03T12:00:00Z", True),   # 7 days before: the gap is absolute
    ("2026-10-17T12:00:01Z", False),  # 7 days and 1 second (kills / 86401)
    ("2026-11-09T12:00:00Z", False),  # a month apart (kills "or True")
])
def test_albumin_corrects_calcium_only_within_seven_days(albumin_effective, corrected) -> None:
    """labs._albumin_near: the gap in days and its boundary."""
    shown = _low_calcium_with_albumin(albumin_effective)
    assert ("abnormal-result" in shown) is not corrected, shown


def test_the_reassurance_card_lists_the_latest_calcium_of_any_kind() -> None:
    """workup.complete_results: of a component's alternatives, the latest dated result is listed; an undated
    one ranks last (kills the max() key mutants: constant key, `or True` calling .timestamp() on None)."""
    ionised = observation("1995-0", 1.20, "mmol/L", effective="2026-10-05", low=1.12, high=1.32)
    for total in (calcium(effective=None), calcium(effective="2026-10-01")):
        result = run([patient(), fasciculation(), *normal_workup(skip=("calcium",)), total, ionised])
        detail = card(result, "reassurance")["detail"]
        assert "- Ionized calcium 1.20 mmol/L on 2026-10-05 (reference 1.12–1.32)" in detail
        assert "Calcium 9.4" not in detail and "calcium 9.4" not in detail


HCTZ = "310798"  # hydrochlorothiazide 25 mg tablet (RxNorm), a diuretic in medications.yaml
SHORT_WINDOW_NOTE = ("- The window for BMP is 3 months because hydrochlorothiazide was started, changed or stopped "
                     "on 2026-10-01.")


def test_the_short_window_note_names_the_medicine_and_its_date() -> None:
    """workup._check_orders: the note is built from the trigger (kills trigger = None, `trigger is None`,
    the "stale" test and the misspelt parameter key)."""
    started = medication_request(rxnorm=HCTZ, authored="2026-10-01")
    c = card(run([patient(), fasciculation(), *normal_workup("2026-07-01"), started]), "workup-incomplete")
    assert "- BMP: last result 2026-07-01 is older than 3 months" in c["detail"]
    assert SHORT_WINDOW_NOTE in c["detail"]
    # A fresh BMP inside the short window: the note is not given (no stale component).
    c = card(run([patient(), fasciculation(), *normal_workup("2026-10-05"), started]), "workup-incomplete")
    assert "The window for" not in c["detail"] and suggested_codes(c) == ["19123-9"]


def test_a_diuretic_stopped_recently_shortens_the_window_however_long_ago_it_started() -> None:
    """windows.short_window_trigger: a stopped medicine's moment is its end (kills `current or True`)."""
    stopped = medication_statement(rxnorm=HCTZ, status="completed", start="2024-01-01", end="2026-10-01")
    c = card(run([patient(), fasciculation(), *normal_workup("2026-07-01"), stopped]), "workup-incomplete")
    assert SHORT_WINDOW_NOTE in c["detail"]


def test_a_medicine_of_another_class_listed_first_does_not_hide_the_diuretic() -> None:
    """windows.short_window_trigger: medicines outside the trigger classes are skipped, not the end of the
    search (kills continue -> break)."""
    other = medication_request(rxnorm="745679", text="albuterol inhaler", authored="2026-10-01")  # beta-2 agonist
    started = medication_request(rxnorm=HCTZ, authored="2026-10-01")
    c = card(run([patient(), fasciculation(), *normal_workup("2026-07-01"), other, started]), "workup-incomplete")
    assert SHORT_WINDOW_NOTE in c["detail"]


def test_the_worst_component_decides_the_order_status() -> None:
    """workup._check_orders: statuses rank by STATUS_SEVERITY, not alphabetically: a stale potassium beside a
    preliminary sodium makes the BMP stale (suggested again), not merely preliminary (not suggested)."""
    labs = normal_workup(skip=("sodium", "potassium")) + [sodium(status="preliminary"),
                                                          potassium(effective="2025-01-01")]
    c = card(run([patient(), fasciculation(), *labs]), "workup-incomplete")
    assert suggested_codes(c) == ["24321-2"]
    assert "- BMP: potassium older than 12 months (last 2025-01-01); sodium only preliminary (2026-10-01)" in c["detail"]


def test_an_unreadable_result_is_reported_even_when_the_test_is_already_ordered() -> None:
    """workup._check_orders: an unreadable result is never folded into "already ordered" (kills the
    misspelt "unreadable")."""
    unreadable = observation("3016-3", 2.0, "xyz", effective="2026-11-10")
    c = card(run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), unreadable, service_request("3016-3")]),
             "workup-incomplete")
    assert ("- TSH: the result of 2026-11-10 could not be read (unit 'xyz' is not known for this test); "
            "check it in the chart") in c["detail"]
    assert "already ordered" not in c["detail"]


@pytest.mark.parametrize("value, red_flag", [(920, False), (924, True)])
def test_a_stale_ck_is_called_red_flag_level_on_the_same_unrounded_test_as_the_red_flag(value, red_flag) -> None:
    """workup_card: 920 U/L is 2.99x the upper limit 308 (shown rounded as 3.0x) and raises no red flag when
    fresh, so the stale line does not call it 3x either; 924 U/L is exactly 3x (labs.ck_ratio rounding)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("ck",)), ck(value, effective="2025-06-01")])
    line = next(line for line in card(result, "workup-incomplete")["detail"].splitlines() if line.startswith("- CK"))
    assert ("refer to neurology if it is still 3× the upper limit or more" in line) is red_flag, line
    assert ("outside its range but older than 12 months, so history, not a current finding" in line) is not red_flag
    fresh = run([patient(), fasciculation(), *normal_workup(skip=("ck",)), ck(value, effective="2026-10-01")])
    assert ("neurology-referral" in topics(fresh)) is red_flag


def test_a_ck_flagged_normal_by_the_lab_raises_no_red_flag() -> None:
    """labs.ck_ratio: a CK the laboratory flags normal has no ratio (kills `or` -> `and`)."""
    flagged_normal = ck(1000, interpretation="N", effective="2026-10-01")
    result = run([patient(), fasciculation(), *normal_workup(skip=("ck",)), flagged_normal])
    assert "neurology-referral" not in topics(result)


def test_the_reassurance_card_lists_the_symptom_first() -> None:
    """advice.reassurance: the index symptoms are evidence on the card (kills dropping *symptoms)."""
    detail = card(run([patient(), fasciculation(), *normal_workup()]), "reassurance")["detail"]
    assert detail.startswith("**Why this card**\n- Fasciculation (ICD-10-CM R25.3) onset 2026-09-01\n- Sodium 140")


def test_compression_caution_says_unseen_when_only_the_results_are_incomplete() -> None:
    """advice.compression: "no ABI on file" needs complete results as well as findings (kills the kind's
    case change and dropping LABS from view.incomplete)."""
    gap = DataGap("labs", "incomplete", "only the first page of results was returned")
    result = review([patient(), cramp(), condition("I73.9"), *normal_workup()], patient_id=PID, now=NOW, gaps=[gap])
    assert card(result, "compression-caution")["summary"] == (
        "Peripheral arterial disease and no ABI in the data that could be read: check for one before advising "
        "compression.")


def test_the_pregnancy_cramp_card_lists_the_current_diuretic() -> None:
    """advice.cramp_in_pregnancy: the diuretic is evidence on the card (kills the misspelt class)."""
    pregnant = condition("Z33.1", onset="2026-08-01")
    result = run([patient(gender="female"), cramp(), pregnant, *normal_workup(), magnesium(),
                  medication_request(rxnorm=HCTZ, authored="2025-01-01")])
    detail = card(result, "cramp-management")["detail"]
    assert "- hydrochlorothiazide — active MedicationRequest, since 2025-01-01" in detail


def test_treatment_options_point_to_carbamazepine_when_cramps_are_recorded() -> None:
    """advice.treatment_options: the cramp point (kills cramps=None and the misspelt concept)."""
    point = "- Cramps are also recorded, so the cramp-fasciculation pattern makes carbamazepine more relevant."
    with_cramp = card(run([patient(), fasciculation(severity="moderate"), cramp(), *normal_workup()]),
                      "treatment-options")
    assert point in with_cramp["detail"]
    alone = card(run([patient(), fasciculation(severity="moderate"), *normal_workup()]), "treatment-options")
    assert point not in alone["detail"]


def _free_t4(value: float, effective: str) -> dict:
    return observation("3024-7", value, "ng/dL", low=0.8, high=1.8, effective=effective)


def test_a_free_t4_drawn_months_from_the_tsh_is_not_read_as_its_pair() -> None:
    """labs.thyroid/_paired_free_t4: a low TSH with a high free T4 drawn 92 days earlier (pairing window 30
    days) is an unpaired low TSH, not overt hyperthyroidism (kills `or True` and passing no TSH)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), tsh(0.1, effective="2026-10-01"),
                  _free_t4(2.5, "2026-07-01")])
    c = card(result, "abnormal-result")
    assert c["detail"].startswith("**Why this card**\n- TSH 0.10 mIU/L on 2026-10-01 (reference 0.40–4.00)\n\n")
    assert "- Low TSH: add a free T4 (and T3) to tell overt from subclinical hyperthyroidism." in c["detail"]


def test_a_high_free_t4_beside_a_normal_tsh_shows_both() -> None:
    """labs.thyroid: the TSH is evidence on the free-T4 note (kills dropping it)."""
    c = card(run([patient(), fasciculation(), *normal_workup(), _free_t4(2.5, "2026-10-01")]), "abnormal-result")
    assert ("- Free T4 2.5 ng/dL on 2026-10-01 (32.2 pmol/L; reference 0.8–1.8)\n"
            "- TSH 1.80 mIU/L on 2026-10-01 (reference 0.40–4.00)") in c["detail"]


def test_the_corrected_calcium_is_shown_to_two_decimals() -> None:
    """labs.calcium: 8.0 mg/dL (1.996 mmol/L) with albumin 44 g/L is 1.92 mmol/L corrected (kills rounding
    the corrected value to a whole number)."""
    result = run([patient(), fasciculation(), *normal_workup(skip=("calcium",)), calcium(8.0),
                  observation("1751-7", 4.4, "g/dL")])
    assert "corrected for albumin 44 g/L: 1.92 mmol/L" in card(result, "abnormal-result")["detail"]


def _referral_why(*resources: dict) -> str:
    detail = card(run([patient(), *resources, *normal_workup()]), "neurology-referral")["detail"]
    return detail.split("**What to consider**")[0]


def test_a_recent_hemiplegia_is_named_on_the_referral() -> None:
    """red_flags.weakness: the paralysis finding is the evidence of its line (kills dropping it, misspelt concept)."""
    why = _referral_why(fasciculation(), condition("G81.90", onset="2026-09-01", display="Hemiplegia"))
    assert ("- Hemiplegia or monoplegia recorded within the last 12 months (new weakness): Hemiplegia "
            "(ICD-10-CM G81.90) onset 2026-09-01") in why


def test_fasciculation_in_three_regions_is_named_with_its_sites() -> None:
    """red_flags.florid_fasciculation: the fasciculations are the evidence of the florid-sites line."""
    why = _referral_why(fasciculation(body_sites=("53120007", "61685007", "302551006")))
    assert ("- Fasciculation recorded in 3 different body regions (widespread): Fasciculation (ICD-10-CM R25.3) "
            "onset 2026-09-01, sites: 53120007, 61685007, 302551006") in why


def test_severe_cramp_with_fasciculation_names_both() -> None:
    """red_flags.severe_cramp: the fasciculation is evidence beside the severe cramp."""
    why = _referral_why(fasciculation(), cramp(severity="severe"))
    assert ("- Severe cramp together with fasciculation: Cramp and spasm (ICD-10-CM R25.2) onset 2026-09-01, "
            "severity severe; Fasciculation (ICD-10-CM R25.3) onset 2026-09-01") in why


@pytest.mark.parametrize("other, shown", [
    (condition("G81.90", onset="2026-09-01"), "Hemiplegia or monoplegia (ICD-10-CM G81.90) onset 2026-09-01"),
    (condition("G71.19"), "Myotonia (ICD-10-CM G71.19) onset 2026-09-01"),
    (condition("M62.81"), "Muscle weakness (ICD-10-CM M62.81) onset 2026-09-01"),
])
def test_myokymia_with_paralysis_or_myotonia_is_a_red_flag_of_its_own(other, shown) -> None:
    """red_flags.myokymia_with_other_symptoms: paralysis, myotonia and weakness count as the other symptom, and
    it is evidence on the line (kills dropping or misspelling a concept, dropping *others)."""
    why = _referral_why(condition("G51.4", display="Facial myokymia"), other)
    assert (f"- Myokymia together with another neurological symptom: Facial myokymia (ICD-10-CM G51.4) onset "
            f"2026-09-01; {shown}") in why


def test_the_treatment_card_says_why_the_fasciculation_qualifies() -> None:
    """advice.treatment_options: the qualifying symptoms are the card's evidence (kills dropping them)."""
    c = card(run([patient(), fasciculation(severity="moderate"), *normal_workup()]), "treatment-options")
    assert c["detail"].startswith("**Why this card**\n- Fasciculation recorded with moderate severity\n")
