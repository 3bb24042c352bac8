"""Tests written for the reading-layer mutants (cards/chart/) still open after the sampled mutmut run
(docs/mutation.md, "Survivors not yet killed"). Each was checked by applying the mutant by hand: it fails
under the mutant and passes on the real code. They pin what a card, the list of references to fetch or the
`evaluate --explain` report says."""
from __future__ import annotations

from cards.chart import medication_references_needed
from tests.cards.factories import (NOW, PID, card, concept, creatinine, fasciculation, finding_observation,
                                   medication_request, normal_workup, observation, patient, run, service_request,
                                   sodium, topics)

GAP = "data-gap"


def _gap_lines(resources: list) -> str:
    return card(run([patient(), fasciculation(), *normal_workup(), *resources]), GAP)["detail"]


# ---- reading logic --------------------------------------------------------------------------------------------
def _by_reference(target: str) -> dict:
    request = medication_request(medicationReference={"reference": target})
    del request["medicationCodeableConcept"]
    return request


def test_a_medication_already_in_the_chart_is_not_fetched_again() -> None:
    """chart.medication_references_needed: a Medication sent with the chart resolves the reference
    (kills reading "resourcetype", which found no Medication and asked for every one)."""
    medicine = {"resourceType": "Medication", "id": "m1", "code": concept("310798", "rxnorm")}
    assert medication_references_needed([patient(), fasciculation(), _by_reference("Medication/m1"), medicine]) == []


def test_a_medication_missing_from_the_chart_is_asked_for() -> None:
    """medications.medication_references_needed: a medicationReference to a Medication not sent is listed
    (kills `is not str` -> `is str`, which skipped every resource)."""
    assert medication_references_needed([patient(), fasciculation(), _by_reference("Medication/m2")]) == \
        ["Medication/m2"]


def test_a_dosage_period_in_an_unknown_unit_leaves_the_dose_unknown() -> None:
    """doses._administrations_per_day: periodUnit "xyz" gives no daily dose, the medicine is still shown
    (kills `if days` -> `if days or True`, which divided by None)."""
    odd = medication_request(rxnorm="310798", dosage=[{
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "xyz"}},
        "doseAndRate": [{"doseQuantity": {"value": 25, "unit": "mg"}}]}])
    c = card(run([patient(), fasciculation(), *normal_workup(), odd]), "medication-review")
    assert "- hydrochlorothiazide — active MedicationRequest, since 2026-06-01 (thiazide diuretic)" in c["detail"]


def test_a_fasciculation_observation_is_dated_by_its_effective_period() -> None:
    """findings.select_finding_observation: effectivePeriod.start dates the finding; one of 2020 is too old
    to count, one of this month counts (kills reading the period from None)."""
    def chart(start: str) -> list:
        return [patient(), finding_observation("82470000", effectiveDateTime=None, effectivePeriod={"start": start}),
                *normal_workup()]
    assert run(chart("2020-01-01")).cards == []
    assert topics(run(chart("2026-11-01"))) == ["reassurance"]


def test_a_fasciculation_observation_of_the_tongue_is_a_red_flag() -> None:
    """findings.select_finding_observation: the Observation's bodySite is read (kills dropping it)."""
    result = run([patient(), finding_observation("82470000", bodySite={"text": "tongue"}), *normal_workup()])
    assert "- Fasciculation of the tongue: Fasciculation (SNOMED CT 82470000) recorded 2026-10-01, sites: tongue" \
        in card(result, "neurology-referral")["detail"]


def test_a_quantity_without_a_value_is_missing_not_unreadable() -> None:
    """labs._to_result: a valueQuantity without value is no result; the previous sodium is used (kills
    comparing with "VALUEQUANTITY", which called it "a Quantity, not a quantity")."""
    result = run([patient(), fasciculation(), *normal_workup(),
                  sodium(effective="2026-11-01", valueQuantity={"unit": "mmol/L"})])
    assert topics(result) == ["reassurance"]
    assert "- Sodium 140 mmol/L on 2026-10-01 (reference 135–145)" in card(result, "reassurance")["detail"]


def test_a_quantity_code_of_another_system_is_not_read_as_ucum() -> None:
    """units.unit_of: the code of a non-UCUM system is ignored and the unit text read, even when that code
    spells a UCUM unit (kills ignoring the system, which read 0.9 µmol/L: a low creatinine)."""
    odd = creatinine(effective="2026-11-01", valueQuantity={"value": 0.9, "unit": "mg/dL",
                                                           "system": "http://example.org/units", "code": "umol/L"})
    result = run([patient(), fasciculation(), *normal_workup(skip=("creatinine",)), odd])
    assert topics(result) == ["reassurance"]
    assert "- Creatinine 0.9 mg/dL on 2026-11-01 (80 µmol/L; reference 0.7–1.3)" in card(result, "reassurance")["detail"]


# ---- element names in "could not be read" reasons -------------------------------------------------------------
def test_the_reason_names_a_malformed_timing_code() -> None:
    """doses._administrations_per_day: "timing.code", not "code"."""
    bad = medication_request(rxnorm="312615", dosage=[{"timing": {"code": "BID"},
                                                       "doseAndRate": [{"doseQuantity": {"value": 20, "unit": "mg"}}]}])
    assert f"could not be read: timing.code is not a CodeableConcept ({'MedicationRequest/' + bad['id']})" \
        in _gap_lines([bad])


def test_the_reason_names_a_malformed_dose_unit() -> None:
    """doses._dose_mg: "doseQuantity.unit"."""
    bad = medication_request(text="prednisone 20 mg tablet",
                             dosage=[{"doseAndRate": [{"doseQuantity": {"value": 20, "unit": 5}}]}])
    assert f"could not be read: doseQuantity.unit is not text (MedicationRequest/{bad['id']})" in _gap_lines([bad])


def test_the_reason_names_a_malformed_clinical_status() -> None:
    """findings.select_condition: "clinicalStatus"."""
    bad = fasciculation(clinicalStatus={"coding": "x"})
    detail = card(run([patient(), bad, *normal_workup()]), GAP)["detail"]
    assert (f"- Condition recording Fasciculation (2026-09-01) could not be read: clinicalStatus.coding is not a list "
            f"(Condition/{bad['id']})") in detail


def test_the_reason_names_a_malformed_body_site_text() -> None:
    """sites.read_sites: "bodySite.text", not "code.text"."""
    bad = fasciculation(bodySite=[{"text": 5}])
    detail = card(run([patient(), bad, *normal_workup()]), GAP)["detail"]
    assert f"could not be read: bodySite.text is not text (Condition/{bad['id']})" in detail


def test_the_reason_names_a_malformed_order_text() -> None:
    """orders.select_order: "code.text" of an order with no known code."""
    order = service_request("zzz")
    order["code"]["text"] = 5
    detail = card(run([patient(), fasciculation(), *normal_workup(), order]), GAP)["detail"]
    assert f"- ServiceRequest of an unknown date could not be read: code.text is not text (ServiceRequest/{order['id']})" \
        in detail


def test_the_reason_names_a_malformed_age_unit_of_a_reference_range() -> None:
    """ranges._age_applies: "referenceRange.age.unit"."""
    banded = sodium(effective="2026-11-01")
    banded["referenceRange"][0]["age"] = {"high": {"value": 200, "unit": 7}}
    result = run([patient(), fasciculation(), *normal_workup(), banded])
    assert "- BMP: sodium of 2026-11-01 could not be read (referenceRange.age.unit is not text); check it in the chart" \
        in card(result, "workup-incomplete")["detail"]


def test_the_reason_names_a_malformed_component_value() -> None:
    """labs._lowest_component: "component.valueQuantity" of an ankle-brachial index."""
    abi = observation("446841001", None, None, system="snomed", component=[{"valueQuantity": {"value": "x"}}])
    assert ("- Ankle-brachial index result of 2026-10-01 could not be read: component.valueQuantity.value is not a "
            f"number (it is the text 'x') (Observation/{abi['id']})") in _gap_lines([abi])


# ---- the `evaluate --explain` report: the reader's notes and cards/chart/explain.py ---------------------------
def _report(resources: list, *, validate: bool = False) -> tuple[list, str]:
    from cards.chart.explain import explain, render

    entries = explain([(None, resource) for resource in resources], patient_id=PID, now=NOW, validate=validate)
    return entries, render(entries, patient_id=PID, now=NOW)


def _section(report: str, name: str) -> list[str]:
    return report.split(f"\n{name}\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_the_report_says_why_each_resource_was_used_or_ignored() -> None:
    """reader: the notes "age and sex" (patient 55, _note 4), "no code the rules read" (_observation 51), "not a
    FHIR resource" as ignored (offer 16), "stopped too long ago to matter" as ignored (_medication_use 17,
    medications.select_medication 96), "intent proposal" (medications.relevant_status 42), "status missing"
    (orders.select_order 16), "an equal or newer sodium result was used" (labs.pick_latest 25); explain: the
    label Patient/p1 (_label 4), explain() itself (explain 5) and render()'s note lines (render 22)."""
    from tests.cards.factories import medication_statement

    blood_pressure = {"resourceType": "Observation", "id": "bp", "status": "final", "code": concept("8480-6", "loinc")}
    stopped = medication_statement(rxnorm="310798", status="completed", start="2020-01-01", end="2020-02-01")
    proposal = medication_request(rxnorm="310798", intent="proposal")
    unstated = service_request("3016-3")
    del unstated["status"]
    older = sodium(effective="2026-09-01")
    _, report = _report([patient(), fasciculation(), *normal_workup(), older, blood_pressure, "junk",
                         stopped, proposal, unstated])
    assert report.startswith(f"Data-quality report for patient {PID} as of 2026-11-15T09:00:00+00:00: 15 resources, "
                             "9 used, 6 ignored, 0 unreadable.")
    assert f"  Patient/{PID}: age and sex" in _section(report, "USED")
    assert _section(report, "IGNORED") == [
        f"  Observation/{older['id']}: an equal or newer sodium result was used",
        "  Observation/bp: no code the rules read",
        "  entry #12 (not a FHIR resource): not a FHIR resource",
        f"  MedicationStatement/{stopped['id']}: stopped too long ago to matter",
        f"  MedicationRequest/{proposal['id']}: intent proposal",
        f"  ServiceRequest/{unstated['id']}: status missing",
    ]


def test_the_report_as_json_and_its_r4b_advice() -> None:
    """explain: Entry.as_json's "why" (as_json 9); strict R4B validation finds nothing in a valid Patient
    (r4b_advice 2) and names the element and the message of an invalid one (r4b_advice 42)."""
    odd = sodium()
    odd["foo"] = 1
    entries, _ = _report([patient(), fasciculation(), odd], validate=True)
    assert entries[0].as_json() == {"resource": f"Patient/{PID}", "prefetchKey": None, "disposition": "used",
                                    "why": ["age and sex"], "notes": [], "r4bValidation": []}
    assert entries[2].advice == ["foo: Extra inputs are not permitted"]


# ---- more reading logic ------------------------------------------------------------------------------------------
def test_an_unreadable_result_of_the_same_day_as_the_readable_one_is_not_hidden() -> None:
    """labs._not_older: a potassium dated 2026-11-10 (day only) that cannot be read is not older than a readable
    one of 2026-11-10 00:00 (kills comparing with midnight plus one microsecond)."""
    from tests.cards.factories import potassium

    unreadable = potassium(effective="2026-11-10", valueQuantity={"value": 4.0, "unit": "xyz"})
    readable = potassium(effective="2026-11-10T00:00:00Z")
    result = run([patient(), fasciculation(), *normal_workup(skip=("potassium",)), unreadable, readable])
    assert topics(result) == ["workup-incomplete"]
    assert "- BMP: potassium of 2026-11-10 could not be read (unit 'xyz' is not known for this test); " \
        "check it in the chart" in card(result, "workup-incomplete")["detail"]


def test_the_patient_is_chosen_by_id_when_several_are_sent() -> None:
    """reader.patient: the Patient whose id is the hook's patient, not the first one sent (kills choosing the
    first: a 10-year-old, for whom no card is shown)."""
    child = patient(birth_date="2016-01-01", patient_id="p0")
    result = run([child, patient(), fasciculation(), *normal_workup()])
    assert result.view.age_years == 46
    assert topics(result) == ["reassurance"]


def test_an_order_already_placed_names_its_record() -> None:
    """orders.select_order: the active order's reference is its evidence (kills dropping it, which said only
    "ServiceRequest")."""
    order = service_request("3016-3")
    result = run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), order])
    assert f"- TSH: already ordered (ServiceRequest/{order['id']})" in card(result, "workup-incomplete")["detail"]


def test_an_unreadable_fasciculation_record_still_asks_for_the_work_up() -> None:
    """reader._what_it_records: a Condition that cannot be read (its subject reference is a number) but whose
    code is an index symptom counts as one, so the missing work-up is shown (kills comparing with "INDEX")."""
    bad = fasciculation(subject={"reference": 42})
    result = run([patient(), bad])
    assert topics(result) == ["data-gap", "workup-incomplete"]
    assert f"- Condition recording Fasciculation (2026-09-01) could not be read: subject.reference is not text " \
        f"(Condition/{bad['id']})" in card(result, GAP)["detail"]
    assert card(result, "workup-incomplete")["summary"] == \
        "Blood tests needed before calling the twitching or cramp benign: BMP, TSH, CK missing or out of date."


def test_a_one_sided_range_of_a_test_without_a_default_range_is_read() -> None:
    """ranges.reference_range: an ankle-brachial index with only a low bound, for a test that has no default
    range in labs.yaml, is read and used (kills `default and` -> `default or`, which filled the missing bound
    from a default that does not exist)."""
    abi = observation("446841001", 1.1, "{ratio}", system="snomed", low=0.9)
    chart = [patient(), fasciculation(), *normal_workup(), abi]
    assert topics(run(chart)) == ["reassurance"]
    _, report = _report(chart)
    assert f"  Observation/{abi['id']}: latest readable abi result" in _section(report, "USED")


def test_a_pregnancy_status_result_without_an_id_is_still_listed_as_evidence() -> None:
    """labs.pregnancy_from_observations: a positive pregnancy-status Observation sent without an id is named
    "Observation" on the cramp card (kills "observation", which the card does not list as a result)."""
    from tests.cards.factories import cramp

    pregnant = observation("82810-3", None, None, effective="2026-09-01",
                           valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]})
    del pregnant["id"]
    result = run([patient(gender="female"), cramp(), *normal_workup(), pregnant])
    assert "- Pregnancy status recorded as pregnant (Observation)" in card(result, "cramp-management")["detail"]
