"""The five mutations that survived the suite in the issue-18 audit, each pinned by a test that fails under it.

The data-driven tests (test_every_*.py) are generated from the knowledge files, so deleting an entry deletes its
test and moving a threshold moves its test: they cannot catch a lost code or a retuned number. These tests name the
clinical facts themselves. docs/mutation.md ("Named survivors (issue 18)") records each mutation and its test.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.cards.factories import (NOW, card, ck, condition, cramp, fasciculation, magnesium, medication_request,
                                   medication_statement, normal_workup, patient, run, topics)

BASE = [patient(), *normal_workup(), magnesium()]


def test_the_us_quinine_card_states_the_fda_boxed_warning():
    """E7 (FDA 2010): serious, sometimes fatal blood reactions, a boxed warning and a risk management plan."""
    caution = card(run([*BASE, cramp(), medication_statement(rxnorm="9071")]), "quinine-caution")
    points = [line for line in caution["detail"].split("**What to consider**")[1].splitlines() if line.startswith("- ")]
    fda = [point for point in points if point.startswith("- FDA (2010):")]
    assert len(fda) == 1, points
    for fact in ("not approved for night-time leg cramps", "sometimes fatal", "thrombocytopenia", "HUS/TTP",
                 "boxed warning", "risk management plan"):
        assert fact in fda[0], fact
    assert any(point.startswith("- AAN (2010):") for point in points)


@pytest.mark.parametrize("value, high, shown, topic", [
    (1900, 308, "6.2×", "neurology-referral"),   # 6.17: one decimal, never rounded to 6.0
    (740, 308, "2.4×", "abnormal-result"),       # 2.40
    (1150, 300, "3.8×", "neurology-referral"),   # 3.83
])
def test_the_ck_multiple_is_shown_to_one_decimal(value, high, shown, topic):
    result = run([patient(), *normal_workup(skip=("ck",)), ck(value, high=high), fasciculation()])
    assert f"{shown} the upper limit of normal" in card(result, topic)["detail"]


def test_r53_1_weakness_is_a_red_flag_named_on_the_referral():
    """ICD-10-CM R53.1 "Weakness" (inclusion term "Asthenia NOS") is RF1 weakness (findings.yaml)."""
    referral = card(run([*BASE, fasciculation(), condition("R53.1")]), "neurology-referral")
    assert "- Muscle weakness is recorded: Muscle weakness (ICD-10-CM R53.1)" in referral["detail"]
    assert referral["indicator"] == "warning"


@pytest.mark.parametrize("medicine, shown", [
    (medication_request(rxnorm="2409"), "chlorthalidone"),
    (medication_request(atc="C03BA04"), "chlorthalidone"),
    (medication_request(rxnorm="197499"), "chlorthalidone"),
    (medication_request(text="Chlortalidone 50 mg tablets"), "Chlortalidone 50 mg tablets"),
])
def test_chlorthalidone_is_a_thiazide_like_diuretic(medicine, shown):
    review = card(run([*BASE, fasciculation(), medicine]), "medication-review")
    assert "(chlorthalidone)" in review["summary"]
    assert f"- {shown} — active MedicationRequest" in review["detail"]
    assert "(thiazide-like diuretic)" in review["detail"]


@pytest.mark.parametrize("days_ago, reviewed", [(5, True), (8, True), (20, True), (29, True), (30, True),
                                                (31, False), (60, False)])
def test_a_corticosteroid_stopped_within_30_days_is_reviewed(days_ago, reviewed):
    """S0 / E5 (Orsini 2011): fasciculations after a taper; the window is 30 days (settings.yaml)."""
    stopped = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    steroid = medication_request(rxnorm="312615", status="stopped", authored="2026-06-01",
                                 dispenseRequest={"validityPeriod": {"end": stopped}})
    result = run([*BASE, fasciculation(), steroid])
    assert ("medication-review" in topics(result)) is reviewed
    if reviewed:
        assert "within the last 30 days" in card(result, "medication-review")["detail"]
