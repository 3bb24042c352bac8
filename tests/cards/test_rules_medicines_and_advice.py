"""Medication review (M1-M5), quinine, cyclobenzaprine, and the advice cards (R1, T1, CR1, CP1, HA1, D1)."""
from __future__ import annotations

from datetime import date

import pytest

from tests.cards.factories import (card, condition, cramp, dose, fasciculation, magnesium, medication_request,
                                   medication_statement, normal_workup, observation, patient, run, topics)

BASE = [patient(), *normal_workup()]


@pytest.mark.parametrize("medicine, label", [
    (medication_request(rxnorm="310798"), "thiazide diuretic"),
    (medication_request(rxnorm="745679", text="albuterol inhaler"), "beta-2 agonist"),
    (medication_statement(rxnorm="6901", text="methylphenidate 20 MG"), "stimulant"),
    (medication_statement(text="Pyridostigmine bromide 60 mg tablet"), "cholinesterase inhibitor"),
    (medication_request(rxnorm="135447"), "cholinesterase inhibitor"),
])
def test_current_provoking_medicines_get_a_review_card(medicine, label) -> None:
    result = run([*BASE, magnesium(), fasciculation(), medicine])  # magnesium: the diuretic asks for it
    c = card(result, "medication-review")
    assert c["indicator"] == "info" and label in c["detail"]
    assert "reassurance" in topics(result)  # additive


@pytest.mark.parametrize("rxnorm, subclass", [("9997", "potassium-sparing diuretic"), ("313988", "loop diuretic"),
                                              ("310798", "thiazide diuretic")])
def test_the_diuretic_explanation_is_true_for_every_kind_of_diuretic(rxnorm, subclass) -> None:
    """Golden review (issue 18): "Diuretics lower potassium" was said of spironolactone too, which raises it."""
    detail = card(run([*BASE, magnesium(), fasciculation(), medication_request(rxnorm=rxnorm)]),
                  "medication-review")["detail"]
    assert subclass in detail
    assert "Diuretics lower potassium" not in detail
    assert "Loop and thiazide-type diuretics lower potassium and magnesium; potassium-sparing ones can raise potassium." \
        in detail


def test_stopped_long_ago_or_entered_in_error_medicines_are_silent() -> None:
    old = medication_request(rxnorm="313988", status="stopped", authored="2024-05-01")
    wrong = medication_request(rxnorm="310798", status="entered-in-error")
    assert topics(run([*BASE, fasciculation(), old, wrong])) == ["reassurance"]


@pytest.mark.parametrize("daily_mg, flagged", [(20, True), (15, False), (40, True)])
def test_high_dose_corticosteroid_threshold(daily_mg, flagged) -> None:
    steroid = medication_request(rxnorm="8640", text="prednisone", dosage=[dose(daily_mg)], authored="2025-01-01")
    assert ("medication-review" in topics(run([*BASE, fasciculation(), steroid]))) is flagged


def test_corticosteroid_taper_or_recent_stop() -> None:
    stopped = medication_request(rxnorm="312615", status="stopped", authored="2026-10-21",
                                 dispenseRequest={"validityPeriod": {"end": "2026-11-10"}})
    c = card(run([*BASE, fasciculation(), stopped]), "medication-review")
    assert "recently stopped or its dose is falling" in c["summary"]
    assert c["source"]["url"] == "https://doi.org/10.4081/ni.2011.e11"
    long_ago = medication_request(rxnorm="312615", status="stopped", authored="2026-08-01",
                                  dispenseRequest={"validityPeriod": {"end": "2026-09-01"}})
    assert "medication-review" not in topics(run([*BASE, fasciculation(), long_ago]))
    tapering = medication_request(rxnorm="312615", authored="2026-11-01",
                                  dosage=[dose(40, start="2026-11-01", end="2026-11-07"), dose(10, start="2026-11-08")])
    assert "medication-review" in topics(run([*BASE, fasciculation(), tapering]))


def test_inhaled_corticosteroid_is_not_reviewed() -> None:
    inhaled = medication_request(atc="R03BA02", text="budesonide 0.2 MG/ACTUAT inhaler")
    assert topics(run([*BASE, fasciculation(), inhaled])) == ["reassurance"]


def test_quinine_caution_by_locale() -> None:
    quinine = medication_statement(rxnorm="9071", text="quinine sulfate 324 MG")
    us = card(run([*BASE, cramp(), quinine]), "quinine-caution")
    assert us["indicator"] == "warning" and "FDA" in us["summary"] and "fda.gov" in us["source"]["url"]
    uk = card(run([*BASE, cramp(), quinine], locale="UK"), "quinine-caution")
    assert "MHRA" in uk["summary"] and "4-week" in uk["detail"] and "QT" in uk["detail"]
    assert "cks.nice.org.uk" in uk["source"]["url"]


def test_cyclobenzaprine_not_indicated() -> None:
    c = card(run([*BASE, fasciculation(), medication_request(text="cyclobenzaprine 10 MG Oral Tablet")]),
             "cyclobenzaprine-not-indicated")
    assert "2–3 weeks" in c["summary"] and c["indicator"] == "info"
    assert "source" in c and "url" not in c["source"] and "links" not in c


def test_reassurance_content_and_repeat_reminder() -> None:
    c = card(run([*BASE, fasciculation()]), "reassurance")
    for fact in ("52%", "93%", "family history", "weakness", "over-treatment"):
        assert fact in c["detail"]
    assert "Potassium 4.2 mmol/L on 2026-10-01 (reference 3.5–5.1)" in c["detail"]
    reminder = card(run([*BASE, fasciculation()], reassurance_given_on=date(2026, 6, 1)), "reassurance")
    assert "2026-06-01" in reminder["summary"] and "52%" not in reminder["detail"]
    stale = card(run([*BASE, fasciculation()], reassurance_given_on=date(2025, 6, 1)), "reassurance")
    assert "52%" in stale["detail"]
    future = card(run([*BASE, fasciculation()], reassurance_given_on=date(2027, 1, 1)), "reassurance")
    assert "52%" in future["detail"]


def test_treatment_options_for_persistent_bothersome_fasciculation() -> None:
    assert "treatment-options" in topics(run([*BASE, fasciculation(severity="moderate")]))
    assert "treatment-options" in topics(run([*BASE, fasciculation(onset="2026-04-01")]))
    assert "treatment-options" not in topics(run([*BASE, fasciculation(severity="mild", onset="2026-09-01")]))
    assert "treatment-options" not in topics(run([*BASE, cramp(severity="moderate")]))
    c = card(run([*BASE, fasciculation(severity="moderate"), cramp()]), "treatment-options")
    assert "single case report" in c["detail"] and "cramp-fasciculation" in c["detail"]


def test_treatment_options_not_in_pregnancy_nor_with_red_flags() -> None:
    pregnant = condition("Z33.1", onset="2026-08-01")
    assert "treatment-options" not in topics(run([*BASE, fasciculation(severity="moderate"), pregnant]))
    weak = condition("M62.81")
    assert topics(run([*BASE, fasciculation(severity="moderate"), weak])) == ["neurology-referral"]


def test_treatment_options_wait_for_a_complete_work_up() -> None:
    """Drugs are for benign fasciculation once it is established: never beside an open work-up (item 15)."""
    assert topics(run([patient(), fasciculation(severity="moderate")])) == ["workup-incomplete"]


def test_cramp_management_and_its_pregnancy_variant() -> None:
    us = card(run([*BASE, cramp()]), "cramp-management")
    assert "Do not use quinine" in us["detail"] and "diltiazem" in us["detail"]
    uk = card(run([*BASE, cramp()], locale="UK"), "cramp-management")
    assert "MHRA" in uk["detail"]
    pregnant = card(run([*BASE, cramp(), condition("77386006", "snomed", onset="2026-07-01")]), "cramp-management")
    assert "Pregnancy on file" in pregnant["summary"] and "WHO" in pregnant["detail"]
    assert "vitamin B" not in pregnant["detail"]
    assert pregnant["source"]["url"].startswith("https://www.who.int/")
    diuretic = card(run([*BASE, cramp(), medication_request(rxnorm="310798")]), "cramp-management")
    assert "A diuretic is current" in diuretic["detail"]


def test_compression_caution() -> None:
    abi = observation("446841001", 0.5, "{ratio}", system="snomed")
    c = card(run([*BASE, cramp(), condition("I73.9"), abi]), "compression-caution")
    assert "0.50" in c["summary"] and "below 0.6" in c["summary"]
    ok = observation("446841001", 0.6, "{ratio}", system="snomed")
    assert "compression-caution" not in topics(run([*BASE, cramp(), condition("I73.9"), ok]))
    no_abi = card(run([*BASE, cramp(), condition("I70.213")]), "compression-caution")
    assert "measure the ABI" in no_abi["summary"]
    assert "compression-caution" not in topics(run([*BASE, cramp()]))


def test_health_anxiety_card_and_reassurance_wording() -> None:
    # One explanation, one card: beside reassurance the health-anxiety advice is on it (issue 13 item 15).
    result = run([*BASE, fasciculation(), condition("F45.21")])
    assert topics(result) == ["reassurance"]
    assert "14%" in card(result, "reassurance")["detail"]
    assert "explicit explanation" in card(result, "reassurance")["detail"]
    alone = run([patient(), fasciculation(), condition("F45.21")])
    assert topics(alone) == ["workup-incomplete", "health-anxiety"]
    assert "once the work-up allows" in card(alone, "health-anxiety")["summary"]


@pytest.mark.parametrize("code, words", [("G51.4", "Myokymia"), ("G24.5", "Blepharospasm"),
                                         ("G51.39", "Hemifacial spasm"), ("G25.81", "Restless legs")])
def test_one_differential_card_per_condition(code, words) -> None:
    c = card(run([patient(), condition(code)]), "differential")
    assert words in c["summary"] and c["indicator"] == "info"


def test_differential_only_patients_get_no_bfs_pathway() -> None:
    result = run([patient(), condition("G24.5"), condition("G25.81"), medication_request(rxnorm="310798"),
                  observation("2823-3", 2.9, "mmol/L")])
    assert topics(result) == ["differential", "differential"]


def test_long_dynamic_summaries_stay_within_the_limit() -> None:
    many = [medication_request(rxnorm=code) for code in ("310798", "313988", "9997", "6901", "135447", "745679")]
    c = card(run([*BASE, magnesium(), fasciculation(), *many]), "medication-review")
    assert len(c["summary"]) <= 139
    for locale in ("US", "UK"):
        workup = card(run([patient(), cramp(), medication_request(rxnorm="310798")], locale=locale),
                      "workup-incomplete")
        assert "magnesium" in workup["summary"] and len(workup["summary"]) <= 139


# ---- golden card text review (fixtures/README.md, Review record): each corrected sentence pinned ----------
def test_reassurance_speaks_of_the_symptoms_the_patient_has() -> None:
    """Cramp only -> cramp facts; fasciculation -> the fasciculation evidence; both -> both (finding 3)."""
    only_cramp = card(run([*BASE, cramp()]), "reassurance")
    assert only_cramp["summary"] == ("No red flags and a normal work-up: very likely benign cramp; explain this and "
                                     "follow up.")
    assert "Cramps are common: in one study 37% of people had muscle cramps within a year, and an isolated cramp " \
           "is usually benign." in only_cramp["detail"]
    assert "Seek neurology advice if cramps become unusually severe or disabling" in only_cramp["detail"]
    for twitching_fact in ("Twitching usually continues", "fasciculation syndrome", "over-treatment"):
        assert twitching_fact not in only_cramp["detail"]
    only_twitching = card(run([*BASE, fasciculation()]), "reassurance")
    assert "very likely benign twitching;" in only_twitching["summary"]
    assert "- Twitching is common: in one study over half of people had fasciculation within a year." \
        in only_twitching["detail"]
    assert "37%" not in only_twitching["detail"]
    both = card(run([*BASE, fasciculation(), cramp()]), "reassurance")
    assert "very likely benign twitching and cramp;" in both["summary"]
    assert "Twitching and cramps are common: in one study over half of people had fasciculation, and 37% cramps, " \
           "within a year." in both["detail"]
    myokymia = card(run([*BASE, condition("G51.4")]), "reassurance")
    assert "very likely benign myokymia;" in myokymia["summary"]
    assert "Myokymia on its own is nearly always benign" in myokymia["detail"]
    assert "Twitching usually continues" not in myokymia["detail"]
    reminder = card(run([*BASE, cramp()], reassurance_given_on=date(2026, 6, 1)), "reassurance")
    assert reminder["summary"].startswith("Reassurance about benign cramp was given on 2026-06-01")


def test_reassurance_figures_and_certainty_match_the_sources() -> None:
    """37% (S4), not "about a third"; associated symptoms "may resolve" (S0), not "tend to settle" (finding 4)."""
    for locale in ("US", "UK"):
        detail = card(run([*BASE, fasciculation(), cramp()], locale=locale), "reassurance")["detail"]
        assert "about a third" not in detail and "tend to settle" not in detail
        assert "Subjective weakness, tingling and cramps often accompany benign twitching and may resolve, to a " \
               "varying degree, without treatment." in detail


def test_pregnancy_cramp_card_lists_the_pregnancy_evidence() -> None:
    """The card relies on the pregnancy: its record is in "Why this card" (finding 5)."""
    pregnant = card(run([*BASE, cramp(), condition("Z33.1", onset="2026-08-01")]), "cramp-management")
    assert "- Pregnancy (ICD-10-CM Z33.1) onset 2026-08-01" in pregnant["detail"]
    status = observation("82810-3", None, None)
    status["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]}
    by_result = card(run([*BASE, cramp(), status]), "cramp-management")
    assert by_result["summary"].startswith("Pregnancy on file")
    assert f"- Pregnancy status recorded as pregnant (Observation/{status['id']})" in by_result["detail"]
    suspected = card(run([*BASE, cramp(), condition("Z33.1", verification="provisional")]), "cramp-management")
    assert "Pregnancy (ICD-10-CM Z33.1) onset 2026-09-01 — suspected (provisional)" \
        in suspected["detail"]


@pytest.mark.parametrize("symptom, summary", [
    (fasciculation(severity="moderate"), "Fasciculation recorded as moderate: if it keeps bothering the patient, "
                                         "gabapentin or carbamazepine may help; the evidence is thin."),
    (fasciculation(onset="2026-04-01"), "Fasciculation for over 6 months: if it keeps bothering the patient, "
                                        "gabapentin or carbamazepine may help; the evidence is thin."),
])
def test_treatment_options_summary_states_what_the_chart_shows(symptom, summary) -> None:
    """Severity or duration as recorded, never the stand-in "persistent, bothersome" (finding 2)."""
    assert card(run([*BASE, symptom]), "treatment-options")["summary"] == summary


def test_treatment_options_already_treated_summary_states_the_duration() -> None:
    gabapentin = medication_statement(text="gabapentin 300 MG Oral Capsule")
    c = card(run([*BASE, fasciculation(onset="2026-02-15"), gabapentin]), "treatment-options")
    assert c["summary"] == ("Fasciculation for over 6 months, already treated (gabapentin): review its benefit before "
                            "adding or switching.")


def test_a_symptom_recorded_at_several_visits_is_one_why_line() -> None:
    """The same record without its sites is subsumed by the line that gives them (finding 6)."""
    detail = card(run([*BASE, fasciculation(body_sites=("Calf of leg",)), fasciculation(), fasciculation()]),
                  "reassurance")["detail"]
    assert detail.count("- Fasciculation (ICD-10-CM R25.3) onset 2026-09-01") == 1
    assert "- Fasciculation (ICD-10-CM R25.3) onset 2026-09-01, sites: Calf of leg" in detail
    other_day = card(run([*BASE, fasciculation(body_sites=("Calf of leg",)), fasciculation(onset="2026-08-01")]),
                     "reassurance")["detail"]
    assert "- Fasciculation (ICD-10-CM R25.3) onset 2026-08-01\n" in other_day


def test_reassurance_for_myokymia_with_cramp_speaks_of_both() -> None:
    c = card(run([*BASE, condition("G51.4"), cramp()]), "reassurance")
    assert "very likely benign myokymia and cramp;" in c["summary"]
    assert "37% of people had muscle cramps" in c["detail"] and "Myokymia on its own" in c["detail"]
    assert "Twitching usually continues" not in c["detail"]


def test_treatment_options_already_treated_summary_stays_within_the_limit() -> None:
    current = [medication_statement(text=f"{name} 100 MG Oral Capsule") for name in
               ("gabapentin", "pregabalin", "carbamazepine")]
    c = card(run([*BASE, fasciculation(onset="2026-02-15"), *current]), "treatment-options")
    assert c["summary"] == ("Fasciculation for over 6 months, already treated: review the benefit of the current "
                            "drug before adding or switching.")
