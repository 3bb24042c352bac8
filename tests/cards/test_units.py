"""Unit normalisation: mass/molar pairs, the reviewed alias table, the UCUM library for the rest, and
unknown units making a result unreadable (never normal)."""
from __future__ import annotations

import pytest

from cards import load_knowledge
from cards.chart.raw import Unreadable
from cards.chart.units import read_bound, read_quantity, ucum_ratio

K = load_knowledge()


def lab(system: str, code: str):
    return K.lab_codes[(system, code)]


def normalise(quantity, lab_code, fallback_unit=None):
    return read_quantity(quantity, lab_code, K, "valueQuantity", fallback_unit)


def q(value, unit=None, *, ucum=True, **extra):
    quantity = {"value": value, **extra}
    if unit is not None:
        quantity["unit"] = unit
        if ucum:
            quantity.update(system="http://unitsofmeasure.org", code=unit)
    return quantity


@pytest.mark.parametrize("code, quantity, expected", [
    ("19123-9", q(1.5, "mg/dL"), 0.6171),          # magnesium, mass code
    ("2601-3", q(0.62, "mmol/L"), 0.62),           # magnesium, molar code
    ("2601-3", q(1.4, "meq/L"), 0.70),             # divalent: 2 mEq per mmol
    ("17861-6", q(8.0, "mg/dL"), 1.996),           # calcium
    ("49765-1", q(8.0, "mg/dL"), 1.996),           # calcium in blood (Synthea)
    ("2823-3", q(3.1, "meq/L"), 3.1),              # potassium: monovalent
    ("14682-9", q(80, "umol/L"), 80),
    ("2160-0", q(0.9, "mg/dL"), 79.56),            # creatinine mass -> µmol/L
    ("3094-0", q(14, "mg/dL"), 4.998),             # BUN -> urea mmol/L
    ("6299-2", q(14, "mg/dL"), 4.998),             # BUN in blood (Synthea)
    ("3091-6", q(30, "mg/dL"), 4.995),             # urea mass -> mmol/L
    ("3024-7", q(1.2, "ng/dL"), 15.444),           # free T4
    ("3016-3", q(2.0, "u[IU]/mL"), 2.0),
    ("2157-6", q(300, "[IU]/L"), 300),
])
def test_mass_and_molar_codes_normalise_to_one_unit(code, quantity, expected) -> None:
    result = normalise(quantity, lab("loinc", code))
    assert result is not None
    assert result.value == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("code, spelling, expected", [
    ("2823-3", "mEq/L", 3.1), ("3016-3", "mU/L", 3.1), ("3016-3", "mIU/L", 3.1), ("3016-3", "uIU/mL", 3.1),
    ("19123-9", "mg/dl", 3.1 * 0.4114), ("2157-6", "IU/L", 3.1), ("14682-9", "µmol/L", 3.1),
    # Defect pinned (issue 12): these spellings made a CK of 1,200 or a TSH "missing".
    ("2157-6", "units/L", 3.1), ("2157-6", "Units/L", 3.1), ("2157-6", "unit/L", 3.1), ("2157-6", "U/L ", 3.1),
    ("3016-3", "mcIU/mL", 3.1), ("3016-3", "microIU/mL", 3.1),
])
def test_non_ucum_spellings_through_the_alias_table(code, spelling, expected) -> None:
    for quantity in (q(3.1, spelling, ucum=False), q(3.1, spelling)):
        result = normalise(quantity, lab("loinc", code))
        assert result is not None and result.value == pytest.approx(expected)


@pytest.mark.parametrize("code, unit, expected", [
    ("2157-6", "ukat/L", 60 * 20),      # CK in µkat/L (European labs): 1 µkat/L = 60 U/L
    ("2157-6", "µkat/L", 60 * 20),
    ("2823-3", "mmol/dL", 200),         # any UCUM unit of the same property converts
    ("2157-6", "kU/L", 20_000),
])
def test_other_ucum_units_convert_through_the_ucum_library(code, unit, expected) -> None:
    assert normalise(q(20, unit), lab("loinc", code)).value == pytest.approx(expected)


def test_equivalents_never_convert_through_the_library() -> None:
    assert ucum_ratio("meq/L", "mmol/L") == 1.0  # what UCUM says: so equivalents are listed per ion
    with pytest.raises(Unreadable):
        normalise(q(2, "meq/dL"), lab("loinc", "2601-3"))


@pytest.mark.parametrize("quantity, reason", [
    (q(3.1, "mmol/kg"), "unit 'mmol/kg' is not known"),
    (q(3.1, "xyz"), "unit 'xyz' is not known"),
    (q(3.1, "MEQ/LITRE", ucum=False), "not known"),
    (q(3.1), "no unit"),
    (q(True, "mmol/L"), "not a number"),
    (q("3.1", "mmol/L"), "not a number"),
    ("3.1 mmol/L", "not a Quantity"),
    (q(3.1, "mmol/L", comparator="about"), "comparator"),
])
def test_unknown_unit_or_malformed_value_is_unreadable_with_a_reason(quantity, reason) -> None:
    with pytest.raises(Unreadable, match=reason):
        normalise(quantity, lab("loinc", "2823-3"))


def test_no_value_is_not_a_result_and_absent_quantity_is_nothing() -> None:
    assert normalise({"unit": "mmol/L"}, lab("loinc", "2823-3")) is None
    assert normalise(None, lab("loinc", "2823-3")) is None


def test_a_value_without_unit_takes_the_unit_of_its_reference_range() -> None:
    assert normalise(q(2.9), lab("loinc", "2823-3"), fallback_unit="mmol/L").value == 2.9
    assert normalise(q(1200), lab("loinc", "2157-6"), fallback_unit="U/L").value == 1200


def test_ucum_code_wins_over_display_unit_and_non_ucum_system_uses_unit() -> None:
    potassium = lab("loinc", "2823-3")
    assert normalise({"value": 4, "unit": "millimoles per litre", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"}, potassium).value == 4
    assert normalise({"value": 4, "unit": "mmol/L", "system": "http://example.org/units", "code": "MMOLL"},
                     potassium).value == 4


def test_unitless_ratio_accepted_only_where_declared() -> None:
    abi = lab("snomed", "446841001")
    assert normalise(q(0.5), abi).value == 0.5
    assert normalise(q(0.5, "{ratio}"), abi).value == 0.5
    assert normalise(q(0.5, "ratio", ucum=False), abi).value == 0.5


def test_comparator_is_kept() -> None:
    assert normalise(q(0.01, "m[IU]/L", comparator="<"), lab("loinc", "3016-3")).comparator == "<"


def test_reference_bounds_share_the_result_unit_when_they_have_none() -> None:
    magnesium = lab("loinc", "19123-9")
    assert read_bound({"value": 1.7}, magnesium, "mg/dL", K, "low") == pytest.approx(0.699, rel=1e-3)
    assert read_bound({"value": 0.7, "unit": "mmol/L"}, magnesium, "mg/dL", K, "low") == 0.7
    assert read_bound(None, magnesium, "mg/dL", K, "low") is None
    with pytest.raises(Unreadable, match="furlongs"):
        read_bound({"value": 0.7, "unit": "furlongs"}, magnesium, "mg/dL", K, "low")


def test_every_listed_factor_agrees_with_the_ucum_library_where_ucum_can_convert() -> None:
    """The hand-typed factors in labs.yaml, checked against UCUM for every pair of commensurable units."""
    checked = 0
    for lab_code in K.lab_codes.values():
        for unit, factor in lab_code.units.items():
            for other, other_factor in lab_code.units.items():
                ratio = ucum_ratio(unit, other) if unit != other and "eq" not in unit + other else None
                if ratio is not None:
                    assert factor == pytest.approx(ratio * other_factor, rel=2e-3), (lab_code.code, unit, other)
                    checked += 1
    assert checked >= 8
