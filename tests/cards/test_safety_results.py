"""Issue 13, results and orders: every out-of-range result, the patient's own range, preliminary and stale
results, locale order sets, what exactly is missing, units, and orders matched as whole tests."""
from __future__ import annotations

import pytest

from cards.chart.orders import covered_by_name
from cards.knowledge_base import load_knowledge
from tests.cards.factories import (calcium, card, ck, creatinine, fasciculation, medication_request, normal_workup,
                                   observation, patient, potassium, run, service_request, sodium, suggested_codes,
                                   topics, tsh)

K = load_knowledge()
SEX_RANGES = [{"low": {"value": 39, "unit": "U/L"}, "high": {"value": 308, "unit": "U/L"},
               "appliesTo": [{"coding": [{"system": "http://snomed.info/sct", "code": "248153007"}]}]},
              {"low": {"value": 26, "unit": "U/L"}, "high": {"value": 192, "unit": "U/L"},
               "appliesTo": [{"text": "Female"}]}]


def chart(*labs, skip=(), gender="male", **kwargs):
    return run([patient(gender=gender), fasciculation(), *normal_workup(skip=skip), *labs], **kwargs)


# ---- item 1: every result outside its range ------------------------------------------------------------
@pytest.mark.parametrize("lab, skip, item, indicator", [
    (potassium(6.4, effective="2026-10-02"), "potassium", "high potassium", "warning"),
    (sodium(150, effective="2026-10-02"), "sodium", "high sodium", "warning"),
    (calcium(12.6, effective="2026-10-02"), "calcium", "high calcium", "warning"),
    (creatinine(4.8, effective="2026-10-02"), "creatinine", "high creatinine", "warning"),
    (creatinine(0.4, effective="2026-10-02"), "creatinine", "low creatinine", "info"),
    (observation("3094-0", 48, "mg/dL", low=7, high=20, effective="2026-10-02"), "urea", "high urea", "info"),
    (observation("3094-0", 3, "mg/dL", low=7, high=20, effective="2026-10-02"), "urea", "low urea", "info"),
    (ck(18, effective="2026-10-02"), "ck", "low CK", "info"),
    (observation("19123-9", 3.1, "mg/dL", low=1.7, high=2.4), None, "high magnesium", "info"),
    (observation("33914-3", 42, "mL/min/1.73m2", effective="2026-10-02"), None, "low eGFR", "warning"),
])
def test_every_result_outside_its_range_is_listed_and_blocks_reassurance(lab, skip, item, indicator):
    result = chart(lab, skip=(skip,) if skip else ())
    c = card(result, "abnormal-result")
    assert item in c["summary"] and c["indicator"] == indicator
    assert "reassurance" not in topics(result)


def test_a_free_t4_out_of_range_beside_a_normal_tsh_is_a_note_even_drawn_weeks_apart():
    far = observation("3024-7", 2.4, "ng/dL", low=0.9, high=1.7, effective="2026-11-14")  # 44 days after the TSH
    c = card(chart(far), "abnormal-result")
    assert "high free T4" in c["summary"] and c["indicator"] == "info"


@pytest.mark.parametrize("value, topic", [(308, None), (420, "trivial"), (462, "trivial"), (463, "abnormal-result")])
def test_the_ck_trivial_band_is_named_and_never_called_normal(value, topic):
    result = chart(ck(value, effective="2026-10-02"), skip=("ck",))
    if topic == "abnormal-result":
        assert "abnormal-result" in topics(result)
        return
    text = card(result, "reassurance")["summary"]
    assert ("only a trivial CK rise" in text) is (topic == "trivial")
    assert ("normal work-up" in text) is (topic is None)


# ---- item 3: the patient's own range; a newer preliminary result --------------------------------------------
@pytest.mark.parametrize("gender, refers", [("female", True), ("male", False), (None, True)])
def test_a_ck_is_judged_against_the_range_for_the_patients_sex(gender, refers):
    result = chart(ck(600, effective="2026-10-02", referenceRange=SEX_RANGES), skip=("ck",), gender=gender or "unknown")
    assert ("neurology-referral" in topics(result)) is refers  # unknown sex: the narrowest bounds (192)


def test_a_range_for_another_population_or_age_band_is_not_used():
    other = [{"high": {"value": 1000, "unit": "U/L"}, "appliesTo": [{"text": "Athletes"}]},
             {"high": {"value": 900, "unit": "U/L"}, "age": {"high": {"value": 12, "unit": "a"}}}]
    result = chart(ck(1000, effective="2026-10-02", referenceRange=other), skip=("ck",))
    assert result.view.labs["ck"].high == 308 and "neurology-referral" in topics(result)


def test_a_one_bound_range_takes_the_other_bound_from_the_default_and_says_so():
    result = chart(ck(1000, effective="2026-10-02", referenceRange=[{"low": {"value": 39, "unit": "U/L"}}]),
                   skip=("ck",), gender="female")
    assert result.view.labs["ck"].high == 192 and result.view.labs["ck"].range_filled == "high"
    assert "the laboratory gave no upper limit" in card(result, "neurology-referral")["detail"]


def test_a_newer_preliminary_result_out_of_range_is_used_and_shown_as_preliminary():
    result = chart(potassium(2.8, status="preliminary", effective="2026-11-10"))
    detail = card(result, "abnormal-result")["detail"]
    assert "preliminary result, newer than the final result of 2026-10-01" in detail
    assert "BMP: potassium only preliminary (2026-11-10)" in card(result, "workup-incomplete")["detail"]


# ---- item 9: stale results are history ---------------------------------------------------------------------
def test_stale_results_never_make_an_abnormal_result_or_a_red_flag():
    old_tsh = tsh(0.05, effective="2023-10-01", interpretation="L")
    old_ck = ck(5000, effective="2022-06-01")
    result = chart(old_tsh, old_ck, skip=("tsh", "ck"))
    assert topics(result) == ["workup-incomplete"]
    detail = card(result, "workup-incomplete")["detail"]
    assert "outside its range but older than 12 months, so history" in detail
    assert "refer to neurology if it is still 3× the upper limit or more" in detail


def test_the_short_window_after_a_diuretic_change_makes_an_older_potassium_history_too():
    diuretic = medication_request(rxnorm="310798", authored="2026-10-20")
    result = run([patient(), fasciculation(), *normal_workup(effective="2026-07-01"), diuretic,
                  potassium(3.0, effective="2026-07-02")])
    assert "abnormal-result" not in topics(result)
    assert "older than 3 months" in card(result, "workup-incomplete")["detail"]


# ---- items 12 and 13: order sets; what exactly is missing ---------------------------------------------------
def test_us_suggests_calcium_alone_when_only_calcium_is_missing():
    c = card(chart(skip=("calcium",)), "workup-incomplete")
    assert suggested_codes(c) == ["17861-6"] and "Order calcium" in [s["label"] for s in c["suggestions"]]


def test_uk_suggests_u_and_e_and_a_bone_profile_by_text():
    c = card(run([patient(), fasciculation()], locale="UK"), "workup-incomplete")
    texts = sorted(a["resource"]["code"].get("text", "") for s in c["suggestions"] for a in s["actions"])
    assert "Urea and electrolytes (U&E)" in texts and "Bone profile" in texts
    assert all("coding" not in a["resource"]["code"] for s in c["suggestions"] for a in s["actions"]
               if a["resource"]["code"].get("text") in ("Bone profile", "Urea and electrolytes (U&E)"))


def test_a_panel_line_names_what_is_missing_beside_what_is_on_file():
    c = card(chart(potassium(3.1, effective="2026-10-02"), skip=("urea", "creatinine", "potassium")),
             "workup-incomplete")
    assert "BMP: urea (BUN) and creatinine missing; sodium 140 mmol/L and potassium 3.1 mmol/L on file" in c["detail"]


# ---- item 14: units -----------------------------------------------------------------------------------------
def test_us_shows_the_reported_unit_first_and_uk_the_si_unit():
    us = card(chart(), "reassurance")["detail"]
    uk = card(chart(locale="UK"), "reassurance")["detail"]
    assert "Creatinine 0.9 mg/dL on 2026-10-01 (80 µmol/L; reference 0.7–1.3)" in us
    assert "Creatinine 80 µmol/L on 2026-10-01 (reported as 0.9 mg/dL; reference 62–115)" in uk


# ---- orders already placed are matched as whole tests --------------------------------------------------------
@pytest.mark.parametrize("text", ["Calcium score CT", "Urine calcium", "TSH receptor antibodies", "CK-MB",
                                  "Magnesium, urine 24h", "Calcium, urine, 24 hour", "CK isoenzymes", "CA 125"])
def test_an_order_for_another_test_is_not_the_work_up_test(text):
    assert covered_by_name(text, K) == frozenset()


@pytest.mark.parametrize("text, covers", [("Calcium, serum", {"calcium"}), ("Basic metabolic panel (BMP)", {"bmp", "calcium"}),
                                          ("TSH with reflex to free T4", {"tsh"}), ("CK total", {"ck"}),
                                          ("Magnesium level", {"magnesium"}), ("U&E", {"bmp"}),
                                          ("Bone profile", {"calcium"}), ("Creatine kinase (CK), serum", {"ck"})])
def test_an_order_for_the_serum_test_or_its_panel_counts(text, covers):
    assert covered_by_name(text, K) == covers


def test_a_local_look_alike_order_leaves_the_test_suggested():
    order = service_request("LOC1", system="https://ehr.example.org/codeset/200")
    order["code"]["text"] = "Urine calcium"
    c = card(run([patient(), fasciculation(), *normal_workup(skip=("calcium",)), order]), "workup-incomplete")
    assert suggested_codes(c) == ["17861-6"]
