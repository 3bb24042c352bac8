"""The public review() contract: gating, precedence, junk tolerance, Review fields and speed."""
from __future__ import annotations

import copy
import random
import time
from datetime import datetime

import pytest

from cards import FINDING_CODES, KNOWLEDGE_VERSION, LAB_LOINC_CODES, Review, ReviewOptions, load_knowledge, review
from cards.findings import finding
from cards.precedence import apply_precedence
from tests.cards.cardcheck import assert_cards
from tests.cards.factories import (NOW, PID, ck, condition, cramp, fasciculation, medication_request, normal_workup,
                                   observation, patient, potassium, run, topics, tsh)


def test_public_api_surface() -> None:
    result = run([patient(), fasciculation(), *normal_workup()])
    assert isinstance(result, Review)
    assert result.topics == ("reassurance",) and result.skipped_resources == 0 and result.rules == ("R1",)
    assert result.view.patient_id == PID and result.view.has_index_symptom
    assert ReviewOptions() == ReviewOptions(locale="US", reassurance_given_on=None)
    assert KNOWLEDGE_VERSION and LAB_LOINC_CODES and FINDING_CODES and load_knowledge()


def test_no_index_symptom_or_differential_means_no_cards_even_with_abnormal_data() -> None:
    result = run([patient(), potassium(2.8), ck(5000), medication_request(rxnorm="310798"),
                  medication_request(text="quinine sulfate 324 MG"), condition("M62.81"), condition("I73.9")])
    assert result.cards == [] and result.topics == ()


@pytest.mark.parametrize("birth_date, cards_expected", [("2008-11-16", False), ("2008-11-15", True),
                                                        (None, True), ("2010", False)])
def test_minors_get_no_cards_and_unknown_age_counts_as_adult(birth_date, cards_expected) -> None:
    result = run([patient(birth_date=birth_date), fasciculation(), condition("M62.81")])
    assert bool(result.cards) is cards_expected


def test_precedence_rules() -> None:
    red_flag = finding("RF1", "neurology-referral", "weakness", "s")
    reassure = finding("R1", "reassurance", "reassurance", "s")
    treat = finding("T1", "treatment-options", "persistent", "s")
    workup = finding("W1", "workup-incomplete", "missing", "s")
    abnormal = finding("L1", "abnormal-result", "low_potassium", "s")
    medicine = finding("M1", "medication-review", "diuretic", "s")
    assert apply_precedence([red_flag, reassure, treat, medicine]) == [red_flag, medicine]
    # Treatment options only beside reassurance: never while the work-up is open (issue 13 item 15).
    assert apply_precedence([workup, reassure, treat]) == [workup]
    assert apply_precedence([abnormal, reassure, treat]) == [abnormal]
    assert apply_precedence([reassure, treat, medicine]) == [reassure, treat, medicine]


def test_cards_come_most_urgent_first() -> None:
    result = run([patient(), fasciculation(severity="moderate"), cramp(), condition("M62.81"), potassium(3.0),
                  medication_request(rxnorm="310798"), condition("G25.81")])
    # Beside a red flag the cramp card (symptomatic drug options) is held back and restless legs keeps its own
    # card (issue 13 items 8 and 15).
    assert topics(result) == ["neurology-referral", "abnormal-result", "workup-incomplete", "medication-review",
                              "differential"]


def test_duplicates_and_other_patients_resources_are_ignored() -> None:
    weak = condition("M62.81")
    other = condition("M62.81", subject={"reference": "Patient/someone-else"})
    urn = condition("R25.3", subject={"reference": "urn:uuid:1234"})
    result = run([patient(), fasciculation(), *normal_workup(), other])
    assert result.topics == ("reassurance",)
    result = run([patient(), urn, *normal_workup(), weak, copy.deepcopy(weak)])
    assert len(result.view.findings_of("weakness")) == 1 and result.topics == ("neurology-referral",)


JUNK = [None, 42, "Condition", [], {}, {"resourceType": 7}, {"resourceType": "Condition"},
        {"resourceType": "Observation", "code": "2823-3", "valueQuantity": "3.1"},
        {"resourceType": "Condition", "code": {"coding": "R25.3"}},
        {"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                            "code": ["R25.3"]}]}},
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
         "medicationCodeableConcept": {"text": 5}},
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
         "medicationCodeableConcept": {"text": "furosemide"}, "dosageInstruction": "daily"},
        {"resourceType": "Patient", "id": PID, "birthDate": 1990},
        {"resourceType": "ServiceRequest", "status": "active", "code": {"coding": [{"system": "http://loinc.org",
                                                                                  "code": "3016-3"}]}}]


def test_junk_never_raises_and_is_counted() -> None:
    result = run([patient(), fasciculation(), *JUNK])
    assert result.skipped_resources >= 5
    assert "workup-incomplete" in result.topics


@pytest.mark.parametrize("resources", [None, 42, "abc", {"resourceType": "Bundle"}, iter([None])])
def test_non_iterable_or_odd_inputs(resources) -> None:
    result = review(resources, patient_id=PID, now=NOW)
    assert result.cards == []


def test_naive_now_is_read_as_utc() -> None:
    result = review([patient(), fasciculation(), *normal_workup()], patient_id=PID, now=datetime(2026, 11, 15, 9))
    assert result.topics == ("reassurance",)
    assert_cards(result.cards)


def _mutations(resource, rng: random.Random):
    """The resource with one randomly chosen value (at any depth) replaced by junk."""
    mutated = copy.deepcopy(resource)
    containers = [mutated]
    paths = []
    while containers:
        node = containers.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            paths.append((node, key))
            if isinstance(value, (dict, list)):
                containers.append(value)
    if paths:
        node, key = rng.choice(paths)
        node[key] = rng.choice([None, 0, -1, "", "x", True, [], {}, [None], {"a": 1}, 1e308, "2026-99-99"])
    return mutated


def test_fuzzed_resources_never_raise() -> None:
    rng = random.Random(20261115)
    seeds = [fasciculation(severity="severe", body_sites=("53840002",)), cramp(), potassium(3.0), tsh(0.02),
             observation("1751-7", 3.0, "g/dL"), medication_request(rxnorm="312615", status="stopped",
                                                                   authored="2026-11-01"),
             observation("446841001", 0.5, "{ratio}", system="snomed"), condition("M62.81"), patient()]
    for _ in range(400):
        resources = [_mutations(rng.choice(seeds), rng) for _ in range(6)] + [patient(), fasciculation()]
        result = review(resources, patient_id=PID, now=NOW, options=ReviewOptions(locale=rng.choice(["US", "UK"])))
        assert_cards(result.cards)


def test_a_two_thousand_observation_chart_is_fast() -> None:
    labs = []
    for index in range(2000):
        builder = (potassium, tsh, ck)[index % 3]
        labs.append(builder(effective=f"20{15 + index % 11}-{1 + index % 12:02d}-{1 + index % 28:02d}"))
    resources = [patient(), fasciculation(), *normal_workup(), *labs]
    review(resources, patient_id=PID, now=NOW)
    started = time.perf_counter()
    result = review(resources, patient_id=PID, now=NOW)
    elapsed = time.perf_counter() - started
    assert result.topics == ("reassurance",)
    assert_cards(result.cards)
    assert elapsed < 0.25, f"{elapsed * 1000:.0f} ms"  # about 15-25 ms on a laptop; generous for CI
