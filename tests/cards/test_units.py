"""Unit normalisation: mass/molar pairs, the alias table, and unknown units counting as missing."""
from __future__ import annotations

import pytest

from cards import load_knowledge
from cards.units import normalise, normalise_bound

K = load_knowledge()


def lab(system: str, code: str):
    return K.lab_codes[(system, code)]


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
    ("2823-3", q(3.1, "meq/L"), 3.1),              # potassium: monovalent
    ("14682-9", q(80, "umol/L"), 80),
    ("2160-0", q(0.9, "mg/dL"), 79.56),            # creatinine mass -> µmol/L
    ("3094-0", q(14, "mg/dL"), 4.998),             # BUN -> urea mmol/L
    ("3091-6", q(30, "mg/dL"), 4.995),             # urea mass -> mmol/L
    ("3024-7", q(1.2, "ng/dL"), 15.444),           # free T4
    ("3016-3", q(2.0, "u[IU]/mL"), 2.0),
    ("2157-6", q(300, "[IU]/L"), 300),
])
def test_mass_and_molar_codes_normalise_to_one_unit(code, quantity, expected) -> None:
    result = normalise(quantity, lab("loinc", code), K)
    assert result is not None
    assert result.value == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("code, spelling, expected", [
    ("2823-3", "mEq/L", 3.1), ("3016-3", "mU/L", 3.1), ("3016-3", "mIU/L", 3.1), ("3016-3", "uIU/mL", 3.1),
    ("19123-9", "mg/dl", 3.1 * 0.4114), ("2157-6", "IU/L", 3.1), ("14682-9", "µmol/L", 3.1),
])
def test_non_ucum_spellings_only_through_the_alias_table(code, spelling, expected) -> None:
    for quantity in (q(3.1, spelling, ucum=False), q(3.1, spelling)):
        result = normalise(quantity, lab("loinc", code), K)
        assert result is not None and result.value == pytest.approx(expected)


@pytest.mark.parametrize("quantity", [
    q(3.1, "mmol/kg"),                  # unknown for potassium
    q(3.1, "MEQ/LITRE", ucum=False),    # not in the alias table
    q(3.1),                             # no unit at all
    {"unit": "mmol/L"},                 # no value
    q(True, "mmol/L"),                  # a boolean is not a number
    q("3.1", "mmol/L"),
    "3.1 mmol/L",
    None,
])
def test_unknown_unit_or_missing_value_is_missing(quantity) -> None:
    assert normalise(quantity, lab("loinc", "2823-3"), K) is None


def test_ucum_code_wins_over_display_unit_and_non_ucum_system_uses_unit() -> None:
    potassium = lab("loinc", "2823-3")
    assert normalise({"value": 4, "unit": "millimoles per litre", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"}, potassium, K).value == 4
    assert normalise({"value": 4, "unit": "mmol/L", "system": "http://example.org/units", "code": "MMOLL"},
                     potassium, K).value == 4


def test_unitless_ratio_accepted_only_where_declared() -> None:
    abi = lab("snomed", "446841001")
    assert normalise(q(0.5), abi, K).value == 0.5
    assert normalise(q(0.5, "{ratio}"), abi, K).value == 0.5
    assert normalise(q(0.5, "ratio", ucum=False), abi, K).value == 0.5


def test_comparator_is_kept() -> None:
    assert normalise(q(0.01, "m[IU]/L", comparator="<"), lab("loinc", "3016-3"), K).comparator == "<"


def test_reference_bounds_share_the_result_unit_when_they_have_none() -> None:
    magnesium = lab("loinc", "19123-9")
    assert normalise_bound({"value": 1.7}, magnesium, "mg/dL", K) == pytest.approx(0.699, rel=1e-3)
    assert normalise_bound({"value": 0.7, "unit": "mmol/L"}, magnesium, "mg/dL", K) == 0.7
    assert normalise_bound({"value": 0.7, "unit": "furlongs"}, magnesium, "mg/dL", K) is None
    assert normalise_bound(None, magnesium, "mg/dL", K) is None
