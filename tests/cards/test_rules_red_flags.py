"""Red flags -> neurology-referral card (RF1-RF9), with the referral suggestion rules."""
from __future__ import annotations

import pytest

from tests.cards.factories import (card, ck, condition, cramp, fasciculation, finding_observation, normal_workup,
                                   patient, run, service_request, suggested_codes, topics)

BASE = [patient(), *normal_workup()]


def referral(*extra, **options):
    return card(run([*BASE, *extra], **options), "neurology-referral")


@pytest.mark.parametrize("red_flag", [
    condition("M62.81"), condition("26544005", "snomed"), condition("M62.561"), condition("G71.19"),
    finding_observation("26544005"),
])
def test_weakness_wasting_myotonia_refer_with_a_draft_referral(red_flag) -> None:
    result = run([*BASE, fasciculation(), red_flag])
    assert topics(result) == ["neurology-referral"]
    c = result.cards[0]
    assert c["indicator"] == "warning" and c["selectionBehavior"] == "at-most-one"
    assert suggested_codes(c) == ["183521007"]
    resource = c["suggestions"][0]["actions"][0]["resource"]
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert {"reference": f"{red_flag['resourceType']}/{red_flag['id']}"} in resource["reasonReference"]


def test_florid_fasciculation_by_severity_or_three_sites() -> None:
    assert referral(fasciculation(severity="severe"))["indicator"] == "warning"
    assert "3 different body regions" in referral(fasciculation(body_sites=("53840002", "68367000", "40983000")))["detail"]
    two_sites = run([*BASE, fasciculation(body_sites=("53840002", "68367000"))])
    assert "neurology-referral" not in topics(two_sites)
    split = [fasciculation(body_sites=("53840002",)), fasciculation(body_sites=("68367000", "40983000"))]
    assert "neurology-referral" in topics(run([*BASE, *split]))


def test_severe_cramp_with_or_without_fasciculation() -> None:
    assert "together with fasciculation" in referral(fasciculation(), cramp(severity="severe"))["detail"]
    assert "Cramp recorded as severe" in referral(cramp(severity="severe"))["detail"]
    assert "neurology-referral" not in topics(run([*BASE, cramp(severity="moderate")]))


@pytest.mark.parametrize("bulbar", [condition("R13.10"), condition("R47.1"), condition("R06.02"),
                                    fasciculation(body_sites=("tongue",))])
def test_bulbar_or_respiratory_features_are_critical(bulbar) -> None:
    c = referral(fasciculation(), bulbar)
    assert c["indicator"] == "critical"
    assert "without delay" in c["summary"] and "ALS" in c["summary"]
    assert suggested_codes(c) == ["183521007"]


def test_critical_wording_is_localised() -> None:
    uk = referral(fasciculation(), condition("R13.10"), locale="UK")
    assert "MND" in uk["summary"] and "ALS" not in uk["summary"]
    assert "motor neurone disease" in uk["detail"]


def test_breathlessness_explained_by_heart_or_lung_disease_is_not_a_red_flag() -> None:
    result = run([*BASE, fasciculation(), condition("R06.02"), condition("J45.909")])
    assert "neurology-referral" not in topics(result)


def test_myokymia_refers_only_with_another_neurological_symptom() -> None:
    alone = run([*BASE, condition("G51.4")])
    assert "neurology-referral" not in topics(alone)
    with_diplopia = run([*BASE, condition("G51.4"), condition("H53.2")])
    assert topics(with_diplopia)[0] == "neurology-referral"


def test_myokymia_red_flag_is_not_called_neuromuscular() -> None:
    """Myokymia with diplopia points to a neurological (central) cause: the card says it needs neurological
    assessment and never calls it a red flag for neuromuscular disease (golden review, finding 1)."""
    c = referral(condition("G51.4"), condition("H53.2"))
    assert c["summary"] == ("Myokymia with another neurological symptom: a red flag that needs neurological "
                            "assessment; consider referral to neurology.")
    text = c["summary"] + c["detail"]
    assert "for neuromuscular disease" not in text and "benign fasciculation syndrome" not in text
    assert "lesion in the brainstem (pons), as in multiple sclerosis (Jacobs 1994)" in c["detail"]
    assert "examine the cranial nerves and the rest of the nervous system" in c["detail"]
    assert c["source"]["label"].startswith("Primary-care fact sheet")
    assert [link["url"] for link in c["links"]] == ["https://doi.org/10.1001/archneur.1994.00540230053012"]
    # Beside a neuromuscular red flag both are said: the weakness advice and the myokymia advice.
    mixed = referral(condition("G51.4"), condition("H53.2"), condition("M62.81"))
    assert "red flag for neuromuscular disease" in mixed["summary"]
    assert "Examine for weakness" in mixed["detail"] and "cranial nerves" in mixed["detail"]
    # An open referral: the summary names no neuromuscular cause either.
    referred = referral(condition("G51.4"), condition("H53.2"), service_request("308474002", "snomed"))
    assert referred["summary"].startswith("A red flag needing neurological assessment is recorded; a neurology "
                                          "referral is already open")


@pytest.mark.parametrize("value, refers", [(923, False), (924, True), (1900, True)])
def test_ck_red_flag_boundary_at_three_times_uln(value, refers) -> None:
    result = run([patient(), *normal_workup(skip=("ck",)), ck(value), fasciculation()])
    assert ("neurology-referral" in topics(result)) is refers
    # One CK result on one warning card (issue 13 item 14): at 3x or more it is on the referral only.
    assert ("abnormal-result" in topics(result)) is not refers


def test_ck_red_flag_needs_an_index_symptom() -> None:
    result = run([patient(), *normal_workup(skip=("ck",)), ck(1900), condition("G24.5")])
    assert topics(result) == ["differential"]


def test_existing_referral_keeps_the_warning_without_a_suggestion() -> None:
    c = referral(fasciculation(), condition("M62.81"), service_request("308474002", "snomed"))
    assert c["indicator"] == "warning" and "suggestions" not in c and "selectionBehavior" not in c
    assert "already open" in c["summary"]


def test_known_mnd_is_info_without_suggestion_and_blocks_reassurance() -> None:
    result = run([*BASE, fasciculation(), condition("G12.21")])
    assert topics(result) == ["neurology-referral"]
    c = result.cards[0]
    assert c["indicator"] == "info" and "suggestions" not in c
    # Only what is recorded: the diagnosis is on the chart; no specialist is inferred (golden review, finding 7).
    assert c["summary"] == ("Motor neuron disease is already diagnosed on the chart: new twitching or cramp belongs "
                            "with the team managing it.")
    assert "already involved" not in c["detail"]
    assert "if the chart does not show who manages the disease, check that a specialist team does" in c["detail"]
    referred = card(run([*BASE, fasciculation(), condition("G12.21"), service_request("308474002", "snomed")]),
                    "neurology-referral")
    assert "A neurology referral is on the chart (" in referred["detail"] and "suggestions" not in referred
    with_weakness = card(run([*BASE, fasciculation(), condition("G12.21"), condition("M62.81")]), "neurology-referral")
    assert with_weakness["indicator"] == "warning" and "suggestions" not in with_weakness


def test_red_flags_also_run_for_differential_only_patients() -> None:
    assert topics(run([patient(), condition("G71.19")])) == ["neurology-referral"]
    assert topics(run([patient(), condition("M62.81")])) == []  # no trigger at all
