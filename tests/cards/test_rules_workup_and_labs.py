"""Work-up completeness (W1-W3) and abnormal results (L1-L6), with their boundaries."""
from __future__ import annotations

import pytest

from tests.cards.factories import (calcium, card, ck, cramp, fasciculation, magnesium, medication_request,
                                   normal_workup, observation, patient, potassium, run, service_request,
                                   sodium, suggested_codes, topics, tsh)

LAB_SUGGESTIONS = {"24321-2", "17861-6", "3016-3", "2157-6"}


def test_no_labs_suggests_each_required_test() -> None:
    c = card(run([patient(), fasciculation()]), "workup-incomplete")
    # A US BMP contains calcium: the two are never suggested side by side (issue 13 item 12).
    assert set(suggested_codes(c)) == LAB_SUGGESTIONS - {"17861-6"}
    assert "Calcium: no result on file (the suggested BMP includes it)" in c["detail"]
    assert c["selectionBehavior"] == "any" and c["indicator"] == "info"
    action = c["suggestions"][0]["actions"][0]["resource"]
    assert action["category"][0]["coding"][0]["code"] == "108252007"


def test_stale_results_outside_twelve_months() -> None:
    labs = normal_workup(effective="2026-10-01", skip=("tsh",)) + [tsh(effective="2025-11-10")]
    c = card(run([patient(), fasciculation(), *labs]), "workup-incomplete")
    assert suggested_codes(c) == ["3016-3"]
    assert "older than 12 months" in c["detail"]
    assert "workup-incomplete" not in topics(run([patient(), fasciculation(), *normal_workup("2025-11-20")]))


def test_diuretic_change_shortens_the_u_and_e_window_and_adds_magnesium() -> None:
    started = medication_request(rxnorm="310798", authored="2026-10-01")
    result = run([patient(), cramp(), *normal_workup("2026-07-01"), started])
    c = card(result, "workup-incomplete")
    assert suggested_codes(c) == ["19123-9", "24321-2"]
    assert "3 months" in c["detail"] and "hydrochlorothiazide" in c["detail"]
    settled = medication_request(rxnorm="310798", authored="2025-01-01")
    c = card(run([patient(), cramp(), *normal_workup("2026-07-01"), settled]), "workup-incomplete")
    assert suggested_codes(c) == ["19123-9"]
    with_mg = run([patient(), cramp(), *normal_workup("2026-07-01"), settled, magnesium(effective="2026-07-01")])
    assert "workup-incomplete" not in topics(with_mg)


def test_steroid_stop_also_shortens_the_window() -> None:
    stopped = medication_request(rxnorm="312615", status="stopped", authored="2026-09-20")
    c = card(run([patient(), fasciculation(), *normal_workup("2026-07-01"), stopped]), "workup-incomplete")
    assert suggested_codes(c) == ["24321-2"]


def test_unusable_and_preliminary_results() -> None:
    absent = observation("3016-3", None, None, dataAbsentReason={"text": "haemolysed"})
    c = card(run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), absent]), "workup-incomplete")
    assert suggested_codes(c) == ["3016-3"] and "has no value, so it counts as missing" in c["detail"]
    preliminary = tsh(status="preliminary")
    c = card(run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), preliminary]), "workup-incomplete")
    assert "suggestions" not in c and "preliminary" in c["detail"]


def test_already_ordered_tests_are_not_suggested_again() -> None:
    ordered = [service_request("3016-3"), service_request("2157-6"), service_request("24321-2")]
    c = card(run([patient(), fasciculation(), *ordered]), "workup-incomplete")
    # A US BMP includes total calcium (CPT 80048 / LOINC 24321-2, order_codes.yaml; issue 13 item 12).
    assert "suggestions" not in c and "ordered" in c["summary"]
    # A chem-7 (the BMP without calcium), recognised by name in a local code system, leaves the calcium.
    chem7 = service_request("999", system="http://example.org/local-lab-codes")
    chem7["code"]["text"] = "Chem 7"
    without_calcium = [service_request("3016-3"), service_request("2157-6"), chem7]
    c = card(run([patient(), fasciculation(), *without_calcium]), "workup-incomplete")
    assert suggested_codes(c) == ["17861-6"]
    # A CMP includes calcium (CPT 80053, order_codes.yaml): it covers both the BMP and calcium.
    cmp = [service_request("3016-3"), service_request("2157-6"), service_request("24323-8")]
    assert "suggestions" not in card(run([patient(), fasciculation(), *cmp]), "workup-incomplete")
    everything = ordered + [service_request("17861-6")]
    c = card(run([patient(), fasciculation(), *everything]), "workup-incomplete")
    assert "suggestions" not in c and "ordered" in c["summary"]
    revoked = service_request("17861-6", status="revoked")
    c = card(run([patient(), fasciculation(), *without_calcium, revoked]), "workup-incomplete")
    assert suggested_codes(c) == ["17861-6"]


def test_uk_locale_names_u_and_e() -> None:
    c = card(run([patient(), fasciculation()], locale="UK"), "workup-incomplete")
    assert "U&E" in c["summary"] and "BMP" not in c["summary"]
    assert "BMP" in card(run([patient(), fasciculation()]), "workup-incomplete")["summary"]


def _abnormal(*labs, skip=(), **patient_kwargs):
    return run([patient(**patient_kwargs), fasciculation(), *normal_workup(skip=skip), *labs])


@pytest.mark.parametrize("value, abnormal", [(3.5, False), (3.49, True), (3.1, True)])
def test_potassium_boundary_at_the_lower_limit(value, abnormal) -> None:
    result = _abnormal(potassium(value, effective="2026-10-02"), skip=("potassium",))
    assert ("abnormal-result" in topics(result)) is abnormal
    assert ("reassurance" in topics(result)) is not abnormal


def test_interpretation_beats_range_and_range_beats_default() -> None:
    flagged = potassium(3.6, interpretation="L", effective="2026-10-02")
    assert "abnormal-result" in topics(_abnormal(flagged, skip=("potassium",)))
    own_range = observation("2823-3", 3.4, "mmol/L", low=3.3, high=5.0, effective="2026-10-02")
    assert "abnormal-result" not in topics(_abnormal(own_range, skip=("potassium",)))
    default_range = observation("2823-3", 3.4, "mmol/L", effective="2026-10-02")
    assert "abnormal-result" in topics(_abnormal(default_range, skip=("potassium",)))


@pytest.mark.parametrize("value, abnormal", [(462, False), (463, True), (920, True)])
def test_ck_boundary_at_one_and_a_half_times_uln(value, abnormal) -> None:
    result = _abnormal(ck(value, interpretation="H"), skip=("ck",))
    assert ("abnormal-result" in topics(result)) is abnormal


def test_ck_flagged_normal_by_the_lab_is_not_abnormal() -> None:
    assert "abnormal-result" not in topics(_abnormal(ck(900, interpretation="N"), skip=("ck",)))


def test_ck_without_range_uses_the_sex_specific_default() -> None:
    bare = observation("2157-6", 300, "U/L")
    assert "abnormal-result" in topics(_abnormal(bare, skip=("ck",), gender="female"))  # 300 > 1.5 x 192
    assert "abnormal-result" not in topics(_abnormal(bare, skip=("ck",), gender="male"))


def test_low_sodium_and_magnesium() -> None:
    assert "low sodium" in card(_abnormal(sodium(128), skip=("sodium",)), "abnormal-result")["summary"]
    assert "low magnesium" in card(_abnormal(magnesium(1.5)), "abnormal-result")["summary"]


def test_calcium_corrected_for_albumin() -> None:
    low_total = calcium(8.0, interpretation="L")
    albumin = observation("1751-7", 3.0, "g/dL", low=3.5, high=5.0)
    assert "abnormal-result" not in topics(_abnormal(low_total, albumin, skip=("calcium",)))  # corrected 8.8
    low_albumin_normal = observation("1751-7", 4.4, "g/dL")
    c = card(_abnormal(calcium(8.0), low_albumin_normal, skip=("calcium",)), "abnormal-result")
    assert "corrected for albumin 44 g/L" in c["detail"]
    assert "abnormal-result" in topics(_abnormal(calcium(8.0), skip=("calcium",)))  # no albumin


def test_ionised_calcium_used_directly() -> None:
    ionised = observation("1995-0", 1.05, "mmol/L", effective="2026-10-05")
    assert "low calcium" in card(_abnormal(ionised), "abnormal-result")["summary"]


@pytest.mark.parametrize("tsh_value, free_t4, kind_text", [
    (0.02, observation("14920-3", 35, "pmol/L", low=12, high=22), "overt hyperthyroidism"),
    (0.1, observation("3024-7", 1.2, "ng/dL", low=0.9, high=1.7), "subclinical hyperthyroidism"),
    (0.1, None, "add a free T4"),
    (12, None, "hypothyroidism"),
    (12, observation("14920-3", 8, "pmol/L", low=12, high=22), "fits hypothyroidism"),
])
def test_thyroid_patterns(tsh_value, free_t4, kind_text) -> None:
    labs = [tsh(tsh_value)] + ([free_t4] if free_t4 else [])
    c = card(_abnormal(*labs, skip=("tsh",)), "abnormal-result")
    assert c["indicator"] == "warning"
    assert kind_text in c["detail"]


def test_one_card_lists_every_abnormal_result() -> None:
    c = card(_abnormal(potassium(3.0), sodium(129), ck(700), skip=("potassium", "sodium", "ck")), "abnormal-result")
    assert c["summary"].startswith("3 results outside their range (low potassium, low sodium, raised CK)")
    assert c["detail"].count("\n- ") >= 3
