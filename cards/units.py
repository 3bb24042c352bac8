"""Quantities to each analyte's canonical unit.

The unit is read from Quantity.code when the system is UCUM, else from Quantity.unit; non-UCUM
spellings are accepted only through the alias table in labs.yaml. Anything else is an unknown unit,
and a result in an unknown unit is MISSING: it must never pass as normal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cards.fhir_raw import as_dict, as_number, as_str
from cards.knowledge_base import Knowledge, LabCode

_COMPARATORS = frozenset({"<", "<=", ">=", ">"})


@dataclass(frozen=True)
class NormalisedQuantity:
    value: float  # in the analyte's canonical unit
    original_value: float
    original_unit: str  # the UCUM code the value was recorded in ("" when unitless)
    comparator: str | None = None


def ucum_code(quantity: Mapping[str, Any], knowledge: Knowledge) -> str | None:
    """The UCUM code a Quantity is expressed in, or None when it cannot be determined."""
    code = as_str(quantity.get("code"))
    system = quantity.get("system")
    if code and (system is None or knowledge.system_of(system) == "ucum"):
        unit = code
    else:
        unit = as_str(quantity.get("unit"))
    if unit is None:
        return None
    return knowledge.unit_aliases.get(unit, unit)


def normalise(quantity: Any, lab: LabCode, knowledge: Knowledge) -> NormalisedQuantity | None:
    """The quantity in canonical units, or None when its value or unit is missing or unknown."""
    quantity = as_dict(quantity)
    if quantity is None:
        return None
    value = as_number(quantity.get("value"))
    if value is None:
        return None
    unit = ucum_code(quantity, knowledge)
    if unit is None:
        if not knowledge.analytes[lab.analyte].unitless:
            return None
        unit, factor = "", 1.0
    else:
        factor = lab.units.get(unit)
        if factor is None:
            return None
    comparator = quantity.get("comparator")
    return NormalisedQuantity(value=value * factor, original_value=value, original_unit=unit,
                              comparator=comparator if comparator in _COMPARATORS else None)


def normalise_bound(bound: Any, lab: LabCode, fallback_unit: str, knowledge: Knowledge) -> float | None:
    """A referenceRange low/high in canonical units. A bound without a unit is taken to share the
    result's unit (labs commonly omit it); a bound in an unknown unit is dropped."""
    bound = as_dict(bound)
    if bound is None:
        return None
    value = as_number(bound.get("value"))
    if value is None:
        return None
    unit = ucum_code(bound, knowledge) or fallback_unit
    factor = 1.0 if unit == "" and knowledge.analytes[lab.analyte].unitless else lab.units.get(unit)
    return None if factor is None else value * factor
