"""Quantities to each analyte's canonical unit.

The unit is read from Quantity.code when the system is UCUM (or absent), else from Quantity.unit,
trimmed. Resolution, cached per lab code and unit string:
  1. a reviewed alias table turns common non-UCUM spellings into UCUM (labs.yaml `unit_aliases`);
  2. a unit listed for the analyte converts with its listed factor (clinical knowledge: mass to
     molar, equivalents per ion);
  3. any other valid UCUM unit that measures the same property as a listed one converts through the
     UCUM library (ucumvert: 1 µkat/L = 60 U/L, mmol/dL = 10 mmol/L). Equivalents never convert
     that way, since their factor depends on the ion.
Anything else is an unknown unit: the result is unreadable, never normal. A Quantity without a unit
takes the unit of its reference range when that is unambiguous.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from cards.chart.raw import Unreadable, element, is_object, number, text
from cards.knowledge_model import Knowledge, LabCode

_COMPARATORS = frozenset({"<", "<=", ">=", ">"})
_CACHE_LIMIT = 256  # unit strings remembered per lab code (EHR data could send endless variants)
_UNKNOWN = object()


@dataclass(frozen=True)
class NormalisedQuantity:
    value: float  # in the analyte's canonical unit
    original_value: float
    original_unit: str  # the UCUM code the value was recorded in ("" when unitless)
    comparator: str | None = None


def unit_of(quantity: Mapping[str, Any], knowledge: Knowledge, name: str) -> tuple[str | None, str | None]:
    """(UCUM code or spelling, the unit text) of a Quantity; (None, None) when it names no unit."""
    code = text(quantity.get("code"), f"{name}.code")
    unit = text(quantity.get("unit"), f"{name}.unit")
    system = quantity.get("system")
    if code and (system is None or knowledge.system_of(system) == "ucum"):
        return code, unit
    return None, unit


def factor_for(lab: LabCode, unit: str, knowledge: Knowledge) -> float | None:
    """Factor from ``unit`` (any spelling) to the analyte's canonical unit; None when unknown."""
    cache = lab.conversions
    found = cache.get(unit, _UNKNOWN)
    if found is _UNKNOWN:
        found = _resolve(lab, unit, knowledge)
        if len(cache) < _CACHE_LIMIT:
            cache[unit] = found
    return found


def _resolve(lab: LabCode, unit: str, knowledge: Knowledge) -> float | None:
    ucum = knowledge.unit_aliases.get(unit, unit)
    listed = lab.units.get(ucum)
    if listed is not None:
        return listed
    if "eq" in ucum.lower():
        return None
    for target, target_factor in lab.units.items():
        ratio = ucum_ratio(ucum, target)
        if ratio is not None:
            return ratio * target_factor
    return None


def read_quantity(quantity: Any, lab: LabCode, knowledge: Knowledge, name: str,
                  fallback_unit: str | None = None) -> NormalisedQuantity | None:
    """The quantity in canonical units; None when it has no value; Unreadable when its value or unit
    cannot be read. ``fallback_unit``: the unit of the reference range, for a value sent without one."""
    read = _value_and_units(quantity, knowledge, name)
    if read is None:
        return None
    value, spellings = read
    unitless = knowledge.analytes[lab.analyte].unitless
    if not spellings and fallback_unit:
        spellings = [fallback_unit]
    if not spellings:
        if not unitless:
            raise Unreadable("the value has no unit")
        unit, factor = "", 1.0
    else:
        unit, factor = _first_known(spellings, lab, knowledge)
    comparator = text(quantity.get("comparator"), f"{name}.comparator")
    if comparator is not None and comparator not in _COMPARATORS:
        raise Unreadable(f"comparator {comparator[:10]!r} is not one of < <= >= >")
    return NormalisedQuantity(value=value * factor, original_value=value, original_unit=unit, comparator=comparator)


def _value_and_units(quantity: Any, knowledge: Knowledge, name: str) -> tuple[float, list[str]] | None:
    """(value, the unit spellings it names, UCUM code first), or None when it has no value."""
    if quantity is None:
        return None
    if not is_object(quantity):
        raise Unreadable(f"{name} is not a Quantity")
    value = number(quantity.get("value"), f"{name}.value")
    if value is None:
        return None
    return value, [spelling for spelling in unit_of(quantity, knowledge, name) if spelling]


def _first_known(spellings: list[str], lab: LabCode, knowledge: Knowledge) -> tuple[str, float]:
    for spelling in spellings:
        factor = factor_for(lab, spelling, knowledge)
        if factor is not None:
            return knowledge.unit_aliases.get(spelling, spelling), factor
    raise Unreadable(f"unit {spellings[0][:30]!r} is not known for this test")


def range_unit(ranges: list[Mapping[str, Any]], knowledge: Knowledge) -> str | None:
    """The one unit a result's reference ranges are given in, when they agree; else None."""
    units = set()
    for entry in ranges:
        for bound in ("low", "high"):
            quantity = element(entry, bound)
            if quantity is not None:
                code, unit_text = unit_of(quantity, knowledge, f"referenceRange.{bound}")
                if code or unit_text:
                    units.add(code or unit_text)
    return units.pop() if len(units) == 1 else None


def read_bound(bound: Any, lab: LabCode, result_unit: str, knowledge: Knowledge, name: str) -> float | None:
    """A referenceRange low/high in canonical units. A bound without a unit shares the result's unit
    (labs commonly omit it); a bound in an unknown unit makes the result unreadable."""
    read = _value_and_units(bound, knowledge, name)
    if read is None:
        return None
    value, spellings = read
    if not spellings:
        if result_unit == "":
            return value
        spellings = [result_unit]
    return value * _first_known(spellings, lab, knowledge)[1]


# ---- the UCUM library ------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _registry():
    """The UCUM registry (ucumvert on pint). Built once per process: cards/__init__ warms it at load, so
    no request pays for it."""
    from ucumvert import PintUcumRegistry
    return PintUcumRegistry()


@lru_cache(maxsize=1024)
def ucum_ratio(unit: str, target: str) -> float | None:
    """How many ``target`` one ``unit`` is, when both are UCUM units of the same dimension; else None."""
    registry = _registry()
    try:
        converted = _ucum_quantity(registry, unit).to(_ucum_quantity(registry, target))
    except Exception:  # noqa: BLE001 - an invalid or incommensurable unit is simply not convertible
        return None
    magnitude = float(converted.magnitude)
    return magnitude if magnitude > 0 else None


def _ucum_quantity(registry, unit: str):
    if unit.startswith("{") and unit.endswith("}"):
        unit = "1"  # an annotation alone ({ratio}) is dimensionless
    return registry.from_ucum(unit)


def warm() -> None:
    _registry()
