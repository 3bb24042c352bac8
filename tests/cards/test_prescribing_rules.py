"""Prescribing rules (issue 17), rule by rule: what each card says, its indicator and its suggestions, and
the cases where no card is the right answer. Drafts are shaped as the CDS Hooks Sandbox builds them."""
from __future__ import annotations

from typing import Any

import pytest

from cards.chart.draft_orders import read_draft_orders
from cards.knowledge_base import load_knowledge
from cards.options import ReviewOptions
from cards.prescribing import OrderReview, review_orders
from fixtures.prescribing import DRAFT, sandbox_draft
from tests.cards import factories as f
from tests.cards.cardcheck import assert_cards

FASCICULATION_REASON = {"coding": [{"system": "http://snomed.info/sct", "code": "82470000", "display": "Fasciculation"}],
                        "text": "Twitching of calf"}
CRAMP_REASON = {"coding": [{"system": "http://snomed.info/sct", "code": "55300003", "display": "Muscle cramp"}],
                "text": "Calf cramps"}
MALARIA_REASON = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "B54", "display": "Malaria"}],
                  "text": "Malaria"}
BACK_PAIN = {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}],
             "text": "Low back pain"}
QUININE = ("9071", "quinine sulfate 324 MG Oral Capsule")
CYCLOBENZAPRINE = ("21949", "cyclobenzaprine hydrochloride 10 MG Oral Tablet")


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": [{"resource": resource} for resource in resources]}


def draft(drug: tuple[str, str] | None, **kwargs: Any) -> dict[str, Any]:
    return sandbox_draft(f.PID, *(drug or (None, None)), **kwargs)


def check(chart: list[dict], *drafts: dict[str, Any], locale: str = "US", selections=None) -> OrderReview:
    result = review_orders(chart, bundle(*drafts), patient_id=f.PID, now=f.NOW, selections=selections,
                           options=ReviewOptions(locale=locale))
    assert_cards(result.cards)
    return result


def only(result: OrderReview, topic: str) -> dict[str, Any]:
    assert [c["source"]["topic"]["code"] for c in result.cards] == [topic], result.cards
    return result.cards[0]


def delete_actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for s in card.get("suggestions", ()) for a in s["actions"] if a["type"] == "delete"]


def chart(*extra: dict[str, Any], workup: bool = True) -> list[dict[str, Any]]:
    return [f.patient(), *(f.normal_workup() if workup else []), *extra]


# ---- RX1 quinine -----------------------------------------------------------------------------------
def test_quinine_for_cramp_us_warns_and_offers_to_delete_the_draft():
    card = only(check(chart(f.cramp()), draft(QUININE, reason=CRAMP_REASON, supply_days=30)), "rx-quinine")
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Quinine for leg cramps is not FDA-approved and carries a boxed warning (serious blood "
                               "disorders): reconsider this order.")
    assert "risk management plan (REMS)" in card["detail"] and "Stated reason: Calf cramps" in card["detail"]
    assert "MHRA" not in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    [suggestion] = card["suggestions"]
    assert suggestion["label"] == "Remove the quinine order"
    assert suggestion["actions"] == [{"type": "delete", "description": f"Delete the draft order {DRAFT}.",
                                      "resourceId": DRAFT}]
    assert card["source"]["url"].startswith("https://www.fda.gov/")


def test_quinine_uk_cites_mhra_four_week_trial_and_qt_never_the_fda():
    card = only(check(chart(f.cramp()), draft(QUININE, reason=CRAMP_REASON), locale="UK"), "rx-quinine")
    assert card["summary"] == ("Quinine for cramps: MHRA limits it to cramps that regularly disrupt sleep, as a 4-week "
                               "trial with review.")
    assert "QT interval" in card["detail"] and "4-week trial" in card["detail"]
    assert "FDA" not in card["detail"] + card["summary"] + str(card.get("links"))
    assert delete_actions(card)[0]["resourceId"] == DRAFT


def test_quinine_without_reason_on_a_cramp_chart_and_with_no_reason_nor_cramp():
    on_chart = only(check(chart(f.cramp()), draft(QUININE)), "rx-quinine")
    assert on_chart["summary"].startswith("Quinine with cramp on the chart:")
    assert "No reason stated on the order" in on_chart["detail"]
    unknown = only(check(chart(), draft(QUININE)), "rx-quinine")
    assert unknown["summary"] == ("Quinine order without a readable reason: if it is for leg cramps, it is not "
                                  "FDA-approved for that use.")


def test_quinine_for_malaria_gets_no_card_and_no_locale_ever_suggests_quinine():
    assert check(chart(f.cramp()), draft(QUININE, reason=MALARIA_REASON)).cards == []
    for locale in ("US", "UK"):
        for card in check(chart(f.cramp()), draft(QUININE, reason=CRAMP_REASON), locale=locale).cards:
            for suggestion in card.get("suggestions", ()):
                assert all(a["type"] == "delete" for a in suggestion["actions"])  # removes it, never adds it


# ---- RX2 cyclobenzaprine ----------------------------------------------------------------------------
def test_cyclobenzaprine_for_fasciculation_is_not_indicated_with_removal():
    card = only(check(chart(f.fasciculation()), draft(CYCLOBENZAPRINE, reason=FASCICULATION_REASON, supply_days=14)),
                "rx-cyclobenzaprine")
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Cyclobenzaprine does not treat fasciculation: it is licensed only for acute "
                               "musculoskeletal spasm, so consider removing this order.")
    assert "Duration on the order: about 14 days (expected supply duration)" in card["detail"]
    assert card["suggestions"][0]["label"] == "Remove the cyclobenzaprine order"
    assert delete_actions(card)[0]["resourceId"] == DRAFT


def test_cyclobenzaprine_with_fasciculation_on_the_chart_and_no_reason():
    card = only(check(chart(f.fasciculation()), draft(CYCLOBENZAPRINE)), "rx-cyclobenzaprine")
    assert card["indicator"] == "info"
    assert card["summary"] == ("Cyclobenzaprine does not treat the fasciculation on the chart; for another reason, "
                               "keep it to 21 days at most.")
    assert "suggestions" not in card
    assert "Duration: not stated on the order" in card["detail"]


@pytest.mark.parametrize("extra, days, source", [
    ({"dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"}}}, 30,
     "expected supply duration"),
    ({"dispenseRequest": {"expectedSupplyDuration": {"value": 10, "code": "d"}, "numberOfRepeatsAllowed": 2}}, 30,
     "expected supply duration, repeats included"),
    ({"dispenseRequest": {"validityPeriod": {"start": "2026-11-15", "end": "2026-12-14"}}}, 30, "validity period"),
    ({"dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d",
                                                   "boundsDuration": {"value": 4, "unit": "weeks", "code": "wk"}}}}]},
     28, "dosage duration"),
])
def test_cyclobenzaprine_for_another_reason_reads_the_duration_wherever_it_is(extra, days, source):
    order = draft(CYCLOBENZAPRINE, reason=BACK_PAIN)
    order.update(extra)
    card = only(check(chart(), order), "rx-cyclobenzaprine")
    assert card["summary"] == (f"This cyclobenzaprine order covers {days} days: for any reason it should be limited "
                               "to 2–3 weeks.")
    assert f"Duration on the order: about {days} days ({source})" in card["detail"]


def test_cyclobenzaprine_within_three_weeks_for_another_reason_gets_no_card():
    assert check(chart(), draft(CYCLOBENZAPRINE, reason=BACK_PAIN, supply_days=14)).cards == []
    assert check(chart(), draft(CYCLOBENZAPRINE, reason=BACK_PAIN, supply_days=21)).cards == []


def test_cyclobenzaprine_duration_unknown_or_unreadable_is_said_never_guessed():
    unknown = only(check(chart(), draft(CYCLOBENZAPRINE, reason=BACK_PAIN)), "rx-cyclobenzaprine")
    assert unknown["summary"] == ("Cyclobenzaprine should be limited to 2–3 weeks; this order states no duration, so "
                                  "check how long it will run.")
    assert "days (" not in unknown["detail"]
    order = draft(CYCLOBENZAPRINE, reason=BACK_PAIN, supply_days=30)
    order["dispenseRequest"]["expectedSupplyDuration"]["code"] = "tablets"
    order["dispenseRequest"]["expectedSupplyDuration"]["unit"] = "tablets"
    unreadable = only(check(chart(), order), "rx-cyclobenzaprine")
    assert unreadable["summary"] == ("Cyclobenzaprine should be limited to 2–3 weeks; this order's duration could not "
                                     "be read, so check it.")
    assert ("Duration: could not be read (dispenseRequest.expectedSupplyDuration has a unit that is not a time unit)"
            in unreadable["detail"])
    assert "30 days" not in unreadable["detail"]


# ---- RX3 gabapentin / carbamazepine before the work-up -------------------------------------------------
def test_gabapentin_for_fasciculation_without_work_up_suggests_the_missing_tests():
    card = only(check([f.patient(), f.fasciculation()], draft(("25480", "gabapentin"), reason=FASCICULATION_REASON)),
                "rx-rule-out-first")
    assert card["indicator"] == "info"
    assert card["summary"] == ("Before gabapentin for twitching or cramp, rule out secondary causes: BMP, TSH, CK "
                               "missing or out of date.")
    assert "hyperthyroidism, electrolyte" in card["detail"] and "TSH: no result on file" in card["detail"]
    assert [s["label"] for s in card["suggestions"]] == ["Order BMP", "Order TSH", "Order CK"]
    assert card["selectionBehavior"] == "any"


def test_gabapentin_uk_suggests_the_uk_order_set():
    card = only(check([f.patient(), f.fasciculation()], draft(("25480", "gabapentin"), reason=FASCICULATION_REASON),
                      locale="UK"), "rx-rule-out-first")
    labels = [s["label"] for s in card["suggestions"]]
    assert "Order BMP" not in labels and len(labels) == 4


def test_carbamazepine_with_hyperthyroid_result_names_the_abnormal_result():
    resources = [f.patient(), f.fasciculation(), *f.normal_workup(skip=("tsh",)), f.tsh(0.01)]
    card = only(check(resources, draft(("2002", "carbamazepine"), reason=FASCICULATION_REASON)), "rx-rule-out-first")
    assert card["indicator"] == "warning"
    assert card["summary"] == ("A work-up result is out of range: treat or explain it before starting carbamazepine for "
                               "twitching or cramp.")
    assert "Out of range:" in card["detail"] and "TSH 0.01" in card["detail"]
    assert "suggestions" not in card


def test_gabapentin_after_complete_normal_work_up_or_for_another_reason_gets_no_card():
    assert check(chart(f.fasciculation()), draft(("25480", "gabapentin"), reason=FASCICULATION_REASON)).cards == []
    epilepsy = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G40.909"}], "text": "Epilepsy"}
    assert check([f.patient(), f.fasciculation()], draft(("25480", "gabapentin"), reason=epilepsy)).cards == []


def test_work_up_not_seen_is_never_called_missing():
    from cards.view import LABS, DataGap
    result = review_orders([f.patient(), f.fasciculation()], bundle(draft(("25480", "gabapentin"))),
                           patient_id=f.PID, now=f.NOW, gaps=[DataGap(LABS, "not_obtained", "HTTP 500")])
    card = only(result, "rx-rule-out-first")
    assert "not in the data that could be read" in card["summary"]
    assert "no result on file" not in card["detail"]


# ---- RX4 carbamazepine in pregnancy ------------------------------------------------------------------
def test_carbamazepine_in_pregnancy_warns_with_removal():
    pregnant = f.condition("Z33.1", display="Pregnant state, incidental")
    result = check(chart(pregnant, f.cramp()), draft(("2002", "carbamazepine"), reason=CRAMP_REASON))
    card = next(c for c in result.cards if c["source"]["topic"]["code"] == "rx-carbamazepine-pregnancy")
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Carbamazepine ordered during a pregnancy: it raises the risk of major birth defects, "
                               "neural tube defects among them.")
    assert f"Pregnancy on the chart: Condition/{pregnant['id']}" in card["detail"]
    assert delete_actions(card)[0]["resourceId"] == DRAFT


def test_carbamazepine_with_suspected_pregnancy_says_suspected_not_pregnant():
    suspected = f.condition("Z33.1", verification="provisional")
    card = next(c for c in check(chart(suspected), draft(("2002", "carbamazepine"))).cards
                if c["source"]["topic"]["code"] == "rx-carbamazepine-pregnancy")
    assert card["summary"] == ("Carbamazepine ordered while a pregnancy is suspected on the chart: confirm pregnancy "
                               "status first (birth defects).")
    assert "Pregnancy suspected, not confirmed" in card["detail"]


def test_gabapentin_in_pregnancy_gets_no_teratogenicity_card():
    pregnant = f.condition("Z33.1")
    assert check(chart(pregnant, f.fasciculation()), draft(("25480", "gabapentin"))).cards == []


# ---- RX5-RX8 medicines that provoke cramp or twitching ------------------------------------------------
def test_diuretic_started_in_a_patient_with_cramp_suggests_u_and_e_and_magnesium():
    card = only(check(chart(f.cramp()), draft(("313988", "furosemide 40 MG Oral Tablet"), supply_days=30)),
                "rx-provoking-medicine")
    assert card["indicator"] == "info"
    assert card["summary"] == ("Furosemide can provoke cramp or twitching, which this patient already has: monitor BMP "
                               "and magnesium.")
    assert [s["label"] for s in card["suggestions"]] == ["Order BMP", "Order magnesium"]
    assert "Loop and thiazide-type diuretics lower potassium and magnesium (potassium-sparing ones can raise" in card["detail"]


def test_beta2_agonist_with_low_potassium_and_no_symptom():
    resources = [f.patient(), *f.normal_workup(skip=("potassium",)), f.potassium(3.1)]
    card = only(check(resources, draft(("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"))),
                "rx-provoking-medicine")
    assert card["summary"] == ("Albuterol can provoke cramp or twitching; this patient's potassium is already low: "
                               "monitor BMP.")
    assert "Potassium 3.1 mmol/L" in card["detail"]


def test_uk_names_the_u_and_e():
    card = only(check(chart(f.cramp()), draft(("313988", "furosemide 40 MG Oral Tablet")), locale="UK"),
                "rx-provoking-medicine")
    assert "monitor U&E and magnesium." in card["summary"]


def test_high_dose_corticosteroid_counts_low_dose_does_not():
    high = draft(("312615", "prednisone 20 MG Oral Tablet"), pills=2)
    card = only(check(chart(f.fasciculation()), high), "rx-provoking-medicine")
    assert "Dose on the order: about 40 mg/day prednisone-equivalent" in card["detail"]
    assert "High doses of corticosteroid" in card["detail"]
    low = draft(("198145", "prednisone 10 MG Oral Tablet"))
    assert check(chart(f.fasciculation()), low).cards == []


def test_stimulant_card_cites_stimulant_sources_only():
    card = only(check(chart(f.fasciculation()), draft(("6901", "methylphenidate"))), "rx-provoking-medicine")
    assert "Garrison" not in str(card.get("links")) + card["source"]["label"]
    assert card["summary"].startswith("Methylphenidate can provoke cramp or twitching")


def test_a_class_already_current_is_not_being_started_and_no_symptom_no_card():
    hctz = f.medication_request(rxnorm="310798", text="hydrochlorothiazide 25 MG Oral Tablet")
    assert check(chart(f.cramp(), hctz), draft(("310798", "hydrochlorothiazide 25 MG Oral Tablet"))).cards == []
    assert check(chart(), draft(("313988", "furosemide 40 MG Oral Tablet"))).cards == []


# ---- what is read, and what is not -----------------------------------------------------------------------
def test_most_prescriptions_get_no_card_and_the_chart_is_not_read():
    result = check(chart(f.cramp()), draft(("308182", "amoxicillin 500 MG Oral Capsule"), supply_days=7))
    assert result.cards == [] and not result.relevant


def test_order_select_checks_only_the_selections():
    other = draft(QUININE, reason=CRAMP_REASON)
    other["id"] = "request-456"
    result = check(chart(f.cramp()), other, draft(("308182", "amoxicillin")), selections=[DRAFT])
    assert result.cards == []
    assert len(check(chart(f.cramp()), other, selections=["MedicationRequest/request-456"]).cards) == 1


def test_sandbox_shapes_are_tolerated():
    knowledge = load_knowledge()
    order = draft(QUININE, reason=CRAMP_REASON, supply_days=30)
    assert isinstance(order["category"], dict) and isinstance(order["reasonCode"], dict)
    [read], unreadable = read_draft_orders(bundle(order), knowledge, f.NOW)
    assert unreadable == ()
    assert read.evidence == DRAFT and read.reason_concepts == ("muscle_cramp",) and read.duration_days == 30
    # The dose in {pill}: one tablet of a known strength, once a day.
    [prednisone], _ = read_draft_orders(bundle(draft(("312615", "prednisone 20 MG Oral Tablet"))), knowledge, f.NOW)
    assert prednisone.daily_dose_mg == 20
    # STU3's doseQuantity directly on the dosage.
    stu3 = draft(("312615", "prednisone 20 MG Oral Tablet"))
    stu3["dosageInstruction"][0]["doseQuantity"] = stu3["dosageInstruction"][0].pop("doseAndRate")[0]["doseQuantity"]
    assert read_draft_orders(bundle(stu3), knowledge, f.NOW)[0][0].daily_dose_mg == 20
    # No medicine chosen yet, a withdrawn draft, another kind of order: nothing to check.
    withdrawn = draft(QUININE)
    withdrawn["status"] = "entered-in-error"
    service_request = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft"}
    assert read_draft_orders(bundle(draft(None), withdrawn, service_request), knowledge, f.NOW) == ((), ())


def test_a_reason_given_by_reference_is_read_from_the_chart():
    cramp = f.cramp()
    order = draft(QUININE)
    order["reasonReference"] = [{"reference": f"Condition/{cramp['id']}"}]
    card = only(check(chart(cramp), order), "rx-quinine")
    assert card["summary"].startswith("Quinine for leg cramps")


def test_an_unreadable_draft_is_reported_to_a_patient_with_twitching_and_never_dropped():
    broken = draft(QUININE)
    broken["medicationCodeableConcept"] = "quinine"
    card = only(check(chart(f.fasciculation()), broken), "rx-draft-unreadable")
    assert card["summary"] == ("A draft order could not be read, so the twitching and cramp checks did not run on it: "
                               "review it yourself.")
    assert f"Draft order {DRAFT}: medication is not a CodeableConcept" in card["detail"]
    assert check(chart(), broken).cards == []  # no twitching or cramp: none of these checks would apply


def test_an_unreadable_reason_is_reported_and_counts_as_unknown():
    order = draft(QUININE)
    order["reasonCode"] = "cramps"
    card = only(check(chart(), order), "rx-quinine")
    assert "Quinine order without a readable reason" in card["summary"]
    assert "The reason on the order could not be read (reasonCode is not a list of FHIR elements)" in card["detail"]


def test_children_get_no_prescribing_card():
    assert check([f.patient(birth_date="2012-01-01"), f.cramp()], draft(QUININE, reason=CRAMP_REASON)).cards == []


def test_stimulant_with_low_magnesium_and_no_symptom_names_the_magnesium():
    resources = [f.patient(), *f.normal_workup(), f.magnesium(1.2, effective="2026-10-02")]
    card = only(check(resources, draft(("6901", "methylphenidate"))), "rx-provoking-medicine")
    assert card["summary"] == ("Methylphenidate can provoke cramp or twitching; this patient's magnesium is already low: "
                               "monitor BMP.")
    assert "Magnesium 1.2 mg/dL" in card["detail"]


def test_every_prescribing_setting_is_exercised():
    """settings.yaml `prescribing`: each provoking class, low analyte and teratogenic ingredient has a test above."""
    settings = load_knowledge().prescribing
    assert set(settings.provoking_classes) == {"diuretic", "stimulant", "systemic_corticosteroid", "beta2_agonist"}
    assert settings.low_analytes == ("potassium", "magnesium")
    assert settings.teratogenic_ingredients == {"carbamazepine"}
    assert settings.cyclobenzaprine_max_days == 21


def test_a_reason_coded_without_text_is_named_by_its_concept():
    bare = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R25.2"}]}
    card = only(check(chart(), draft(QUININE, reason=bare)), "rx-quinine")
    assert "Stated reason: Muscle cramp" in card["detail"] and "No reason stated" not in card["detail"]
    assert card["summary"].startswith("Quinine for leg cramps")
