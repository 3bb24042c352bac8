"""Latest VALID result per analyte: status filter, ordering, ties, unusable results, validation failures."""
from __future__ import annotations

from cards import load_knowledge
from cards.chart import read_chart as build_view
from tests.cards.factories import NOW, PID, ck, observation, patient, potassium, tsh

K = load_knowledge()


def view(*resources, sex_patient=None):
    return build_view([sex_patient or patient(), *resources], patient_id=PID, now=NOW, knowledge=K)


def test_status_filter_ignores_entered_in_error_and_cancelled() -> None:
    v = view(potassium(2.9, status="entered-in-error", effective="2026-11-01"),
             potassium(3.0, status="cancelled", effective="2026-11-02"),
             potassium(4.2, effective="2026-10-01"))
    assert v.labs["potassium"].value == 4.2


def test_preliminary_only_when_nothing_else() -> None:
    assert view(potassium(4.0, status="preliminary", effective="2026-11-01"),
                potassium(4.2, effective="2026-10-01")).labs["potassium"].value == 4.2
    only = view(potassium(3.0, status="preliminary")).labs["potassium"]
    assert only.value == 3.0 and only.preliminary


def test_a_newer_preliminary_result_out_of_range_wins_over_an_older_final_one() -> None:
    """Issue 13 item 3: safety first; it is used (and shown as preliminary), the final one kept beside it."""
    result = view(ck(2400, status="preliminary", effective="2026-11-10"), ck(150, effective="2026-10-01")).labs["ck"]
    assert result.value == 2400 and result.preliminary and result.older_final.value == 150
    older = view(ck(2400, status="preliminary", effective="2026-09-10"), ck(150, effective="2026-10-01")).labs["ck"]
    assert older.value == 150 and not older.preliminary  # an older preliminary result never wins


def test_latest_effective_time_wins_across_precisions_and_zones() -> None:
    v = view(potassium(3.9, effective="2026-10"), potassium(4.4, effective="2026-10-02T01:00:00+02:00"),
             potassium(4.0, effective="2026-10-01T22:00:00Z"))
    assert v.labs["potassium"].value == 4.4  # 2026-10-01T23:00Z beats 22:00Z and the month-only value


def test_tie_broken_by_later_issued_then_amended_over_final() -> None:
    same = "2026-10-01T08:00:00Z"
    v = view(ck(180, effective=same, issued="2026-10-01T12:00:00Z"),
             ck(1200, status="amended", effective=same, issued="2026-10-02T12:00:00Z"))
    assert v.labs["ck"].value == 1200
    v = view(ck(180, effective=same, issued="2026-10-02T12:00:00Z"),
             ck(1200, status="corrected", effective=same, issued="2026-10-02T12:00:00Z"))
    assert v.labs["ck"].value == 1200
    v = view(ck(1200, status="amended", effective=same, issued="2026-10-01T12:00:00Z"),
             ck(180, effective=same, issued="2026-10-03T12:00:00Z"))
    assert v.labs["ck"].value == 180


def test_unusable_results_are_missing_not_normal_and_older_valid_ones_are_used() -> None:
    absent = observation("3016-3", None, None, effective="2026-11-01",
                         dataAbsentReason={"coding": [{"code": "error"}]})
    assert "tsh" not in view(absent).labs
    assert view(absent).lab_gaps["tsh"].reason == "unusable"
    unknown_unit = tsh(2.0, effective="2026-11-01")
    unknown_unit["valueQuantity"].update(unit="mmol/L", code="mmol/L")
    assert "tsh" not in view(unknown_unit).labs
    older = tsh(1.5, effective="2026-06-01")
    assert view(unknown_unit, older).labs["tsh"].value == 1.5


def test_a_newer_unreadable_result_is_kept_on_record_and_the_older_readable_one_used() -> None:
    broken = potassium(3.0, effective="2026-11-01")
    broken["subject"] = {"reference": 42}  # a used element (whose patient?) that cannot be read
    v = view(broken, potassium(4.1, effective="2026-10-01"))
    assert v.labs["potassium"].value == 4.1
    assert [(u.subject, u.date_text, u.reason) for u in v.unreadable] == [
        ("potassium", "2026-11-01", "subject.reference is not text")]
    assert v.incomplete("labs") and v.skipped_resources == 0


def test_only_candidates_that_win_are_validated() -> None:
    # Thousands of old results, one broken: the broken one is never reached, so nothing is skipped.
    old = [potassium(4.0, effective=f"2020-01-{day:02d}") for day in range(1, 29)]
    old[0]["subject"] = {"reference": 42}
    assert view(potassium(4.1, effective="2026-10-01"), *old).skipped_resources == 0


def test_reference_range_normalised_and_default_by_sex() -> None:
    magnesium = observation("19123-9", 1.5, "mg/dL", low=1.7, high=2.4)
    result = view(magnesium).labs["magnesium"]
    assert round(result.value, 2) == 0.62 and round(result.low, 2) == 0.70 and result.range_source == "observation"
    bare = observation("2157-6", 250, "U/L")
    assert view(bare, sex_patient=patient(gender="female")).labs["ck"].high == 192
    assert view(bare, sex_patient=patient(gender="male")).labs["ck"].high == 308
    assert view(bare, sex_patient=patient(gender="unknown")).labs["ck"].range_source == "default"


def test_interpretation_flags_read() -> None:
    assert view(potassium(3.6, interpretation="L")).labs["potassium"].interpretation == "low"
    assert view(potassium(5.0, interpretation="HH")).labs["potassium"].interpretation == "high"
    assert view(potassium(5.0, interpretation="N")).labs["potassium"].interpretation == "normal"


def test_range_of_another_type_is_not_a_normal_range() -> None:
    result = potassium(4.0)
    result["referenceRange"][0]["type"] = {"coding": [{"code": "treatment"}]}
    assert view(result).labs["potassium"].range_source == "default"


def test_abi_components_take_the_lower_side() -> None:
    abi = observation("446841001", None, None, system="snomed", component=[
        {"code": {"text": "right"}, "valueQuantity": {"value": 0.9, "unit": "{ratio}"}},
        {"code": {"text": "left"}, "valueQuantity": {"value": 0.55}}])
    assert view(abi).labs["abi"].value == 0.55


def test_pregnancy_status_observation() -> None:
    pregnant = observation("82810-3", None, None, effective="2026-10-01",
                           valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]})
    assert view(pregnant).pregnant
    old = dict(pregnant, id="old-preg", effectiveDateTime="2025-06-01")
    assert not view(old).pregnant


def test_results_are_walked_in_exactly_the_order_of_a_full_newest_first_sort():
    """_newest_first() finds the newest in one pass and sorts only if it is passed over: same order."""
    import random

    from cards.chart.labs import Candidate, _newest_first, _rank
    rng = random.Random(7)
    days = ["2026-10-01", "2026-10-01T08:00:00Z", "2026-10-01T08:00:00+01:00", "2026-09", None]
    issued = [None, "2026-10-02T09:00:00Z", "2026-10-01T10:00:00Z"]
    for _ in range(200):
        candidates = []
        for index in range(rng.randint(1, 8)):
            resource = {"resourceType": "Observation", "id": f"o{index}"}
            if (day := rng.choice(days)) is not None:
                resource["effectiveDateTime"] = day
            if (when := rng.choice(issued)) is not None:
                resource["issued"] = when
            candidates.append(Candidate(resource, lab=None, status=rng.choice(["final", "amended", "corrected"]),
                                        part=resource))
        walked = [id(c) for c in _newest_first(candidates, on_unreadable=None)]
        expected = sorted(candidates, key=_rank, reverse=True)
        assert walked == [id(c) for c in expected]
