"""Issue 13, findings and advice: suspected vs confirmed, absent findings, red flags once missed, regions,
pregnancy, referral drafts, contradictions, treatments already taken and the alert budget."""
from __future__ import annotations

import pytest

from cards.findings import finding
from cards.precedence import card_count, within_budget
from tests.cards.factories import (card, condition, cramp, fasciculation, finding_observation, medication_request,
                                   medication_statement, normal_workup, observation, patient, run, topics)

BASE = [patient(), *normal_workup()]


def worded(text: str, **kwargs) -> dict:
    """A fasciculation Condition whose code text says ``text``."""
    record = fasciculation(**kwargs)
    record["code"]["text"] = text
    return record


def referral(*resources, **kwargs) -> dict:
    return card(run([*BASE, fasciculation(), *resources], **kwargs), "neurology-referral")


def urgent(c: dict) -> dict:
    return c["suggestions"][0]["actions"][0]["resource"]


# ---- item 2: suspected is never diagnosed ---------------------------------------------------------------
@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
def test_a_suspected_mnd_is_a_critical_red_flag_with_an_urgent_referral(verification):
    c = referral(condition("G12.21", verification=verification))
    assert c["indicator"] == "critical" and "suspected, not diagnosed" in c["summary"]
    assert "already diagnosed" not in c["summary"] + c["detail"]
    resource = urgent(c)
    assert resource["priority"] == "urgent" and "Suspected motor neuron disease" in resource["reasonCode"][0]["text"]


def test_a_confirmed_or_unqualified_mnd_is_known_and_a_refuted_one_is_ignored():
    for verification in ("confirmed", None):
        c = referral(condition("G12.21", verification=verification))
        assert c["indicator"] == "info" and "already diagnosed" in c["summary"] and "suggestions" not in c
    assert topics(run([*BASE, fasciculation(), condition("G12.21", verification="refuted")])) == ["reassurance"]


def test_a_suspected_red_flag_still_refers_and_says_it_is_suspected():
    c = referral(condition("M62.81", verification="provisional"))
    assert "suspected (provisional), not confirmed" in c["detail"]


def test_only_a_confirmed_cause_explains_breathlessness_away():
    breathless = condition("R06.02")
    assert "neurology-referral" not in topics(run([*BASE, fasciculation(), breathless, condition("J45.909")]))
    suspected_asthma = condition("J45.909", verification="provisional")
    assert "neurology-referral" in topics(run([*BASE, fasciculation(), breathless, suspected_asthma]))


def test_a_suspected_health_anxiety_changes_no_advice():
    result = run([*BASE, fasciculation(), condition("F45.21", verification="differential")])
    assert "Health anxiety" not in card(result, "reassurance")["detail"]


# ---- item 3: red flags once missed -------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["M21.371", "M21.372", "M21.331"])
def test_foot_and_wrist_drop_are_weakness(code):
    assert "Muscle weakness is recorded" in referral(condition(code))["detail"]


def test_hemiplegia_counts_when_recent_only():
    assert "Hemiplegia or monoplegia" in referral(condition("G81.91", onset="2026-08-01"))["detail"]
    old = condition("G81.91", onset="2021-01-01", recorded="2021-01-02")
    assert topics(run([*BASE, fasciculation(), old])) == ["reassurance"]


@pytest.mark.parametrize("record", [worded("Generalised fasciculations"), fasciculation(body_sites=("38266002",)),
                                    fasciculation(body_sites=("widespread, both legs",))])
def test_fasciculation_recorded_as_generalised_is_widespread(record):
    c = card(run([*BASE, record]), "neurology-referral")
    assert "generalised or widespread" in c["detail"]


def test_a_negated_widespread_is_not_widespread():
    assert topics(run([*BASE, worded("Fasciculation, not widespread")])) == ["reassurance"]


# ---- item 6: regions -------------------------------------------------------------------------------------
def test_one_region_charted_three_ways_is_one_region():
    records = [fasciculation(body_sites=("Left calf",)), fasciculation(body_sites=("Right calf",)),
               fasciculation(body_sites=("53840002",)), fasciculation(body_sites=("Left",))]
    result = run([*BASE, *records])
    assert topics(result) == ["reassurance"]
    assert {site for f in result.view.findings for site in f.body_sites} == {"calf"}


def test_one_site_text_naming_three_regions_is_widespread():
    assert "3 different body regions" in referral(fasciculation(body_sites=("Calves, thighs and upper arms",)))["detail"]


# ---- item 4: pregnancy -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pregnancy", [condition("Z3A.20"), condition("O26.891"), condition("Z34.02"),
                                       condition("72892002", "snomed"), condition("Z33", "http://hl7.org/fhir/sid/icd-10"),
                                       observation("82810-3", None, None, effective="2026-09-01",
                                                   valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct",
                                                                                     "code": "77386006"}]})])
def test_pregnancy_from_any_record_keeps_drug_options_away(pregnancy):
    result = run([*BASE, fasciculation(severity="moderate"), cramp(), pregnancy])
    assert result.view.pregnant and result.view.pregnancy_evidence
    assert "treatment-options" not in topics(result)
    c = card(result, "cramp-management")
    assert "Pregnancy on file" in c["summary"] and "diltiazem are possibly" not in c["detail"]


def test_a_suspected_pregnancy_is_possible_never_on_file():
    result = run([*BASE, fasciculation(severity="moderate"), cramp(), condition("Z33.1", verification="provisional")])
    assert result.view.pregnancy_possible and not result.view.pregnant
    assert "treatment-options" not in topics(result)
    assert "Pregnancy is possible" in card(result, "cramp-management")["summary"]


def test_a_pregnancy_older_than_ten_months_is_not_a_pregnancy():
    result = run([*BASE, cramp(), condition("Z34.02", onset="2025-09-01", recorded="2025-09-01")])
    assert not result.view.pregnant and "Pregnancy" not in card(result, "cramp-management")["summary"]


# ---- item 5: absent is not present -------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260415000"}]}},
    {"valueCodeableConcept": {"text": "Absent"}}, {"valueString": "None seen"},
    {"interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                     "code": "ND"}]}]},
    {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "26544005"}], "text": "No focal weakness"}},
    {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "26544005"}], "text": "Weakness: absent"}},
])
def test_an_exam_recording_weakness_as_absent_is_no_red_flag(extra):
    assert topics(run([*BASE, fasciculation(), finding_observation("26544005", **extra)])) == ["reassurance"]


@pytest.mark.parametrize("text", ["No change in weakness", "No improvement in weakness", "Weakness of both legs"])
def test_text_that_is_not_a_plain_negation_keeps_the_red_flag(text):
    found = finding_observation("26544005", code={"coding": [{"system": "http://snomed.info/sct", "code": "26544005"}],
                                                  "text": text})
    assert "neurology-referral" in topics(run([*BASE, fasciculation(), found]))


def test_a_negated_symptom_is_no_trigger_and_a_negated_red_flag_condition_is_a_contradiction():
    assert run([patient(), worded("No fasciculations seen")]).cards == []
    negated = condition("M62.81")
    negated["code"]["text"] = "No focal weakness"
    result = run([*BASE, fasciculation(), negated])
    assert topics(result) == ["data-gap"]
    assert "its code records weakness but its text reads" in card(result, "data-gap")["detail"]


# ---- items 7 and 8: referral drafts; no contradictions --------------------------------------------------------
def test_only_an_mnd_suspicion_makes_the_draft_urgent():
    assert "priority" not in urgent(referral(condition("M62.81")))
    bulbar = urgent(referral(condition("R13.10")))
    assert bulbar["priority"] == "urgent" and "(Difficulty swallowing)" in bulbar["note"][0]["text"]


def test_a_chart_without_twitching_or_cramp_never_says_it_has_one():
    c = card(run([patient(), condition("G71.19")]), "neurology-referral")
    assert c["summary"].startswith("A red flag") and "twitching or cramp" not in urgent(c)["note"][0]["text"].lower()


def test_beside_a_referral_nothing_says_benign_or_offers_symptomatic_drugs():
    result = run([*BASE, condition("G51.4"), condition("H53.2"), cramp(), condition("F45.21"), condition("M62.81")])
    assert topics(result) == ["neurology-referral"]


# ---- item 10: a treatment already taken ---------------------------------------------------------------------
@pytest.mark.parametrize("medicine, name", [("gabapentin", "gabapentin"), ("pregabalin", "pregabalin"),
                                            ("Tegretol carbamazepine 200 mg", "carbamazepine")])
def test_a_treatment_already_taken_is_never_offered_as_new(medicine, name):
    result = run([*BASE, fasciculation(severity="moderate"), medication_statement(text=medicine)])
    c = card(result, "treatment-options")
    assert f"already treated ({name})" in c["summary"] and "usual first choice" not in c["detail"]
    assert "medication-review" not in topics(result)


def test_dose_review_wording_for_medicines_usually_needed():
    c = card(run([*BASE, fasciculation(), medication_request(rxnorm="745679")]), "medication-review")
    assert "so review its dose" in c["summary"] and "still needed" not in c["summary"]


# ---- item 15: the budget -----------------------------------------------------------------------------------
def test_the_budget_leaves_out_advice_least_important_first_and_never_a_warning():
    def f(topic, kind="x"):
        return finding("X", topic, kind, "s")
    findings = [f("abnormal-result"), f("workup-incomplete"), f("medication-review"), f("quinine-caution"),
                f("compression-caution"), f("cyclobenzaprine-not-indicated"), f("health-anxiety"),
                f("cramp-management"), f("differential", "blepharospasm"), f("differential", "hemifacial_spasm")]
    kept = within_budget(findings, 6)
    assert card_count(kept) == 6
    assert [x.topic for x in kept] == ["abnormal-result", "workup-incomplete", "medication-review", "quinine-caution",
                                       "compression-caution", "cyclobenzaprine-not-indicated"]
