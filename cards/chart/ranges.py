"""The reference range and flag a laboratory sent with a result, read for this patient.

A report may carry several normal ranges: one per sex (`referenceRange.appliesTo`), per age band
(`referenceRange.age`), or for another population. The range for the patient is used: one for their sex
before a general one; with the sex unknown and only sex-specific ranges, the narrowest bounds of them
(the safe side: a result outside any of them is shown). A range for other people (another sex, another
age band) is never used. A range giving one bound only keeps that bound, and the other comes from the
default adult range (labs.yaml), which the card then says. Treatment or therapeutic ranges are not
normal limits and are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cards.chart.raw import codings, concept_text, element, elements, number, text
from cards.chart.units import read_bound
from cards.knowledge_model import Analyte, Knowledge, LabCode, normalise_text

_LOW_FLAGS = frozenset({"L", "LL", "LU", "<"})
_HIGH_FLAGS = frozenset({"H", "HH", "HU", ">"})
_YEARS = frozenset({"a", "yr", "yrs", "year", "years", "y"})


@dataclass(frozen=True)
class ChosenRange:
    low: float | None
    high: float | None
    source: str | None  # observation | default | None (no range at all)
    filled: str | None = None  # "low" | "high": this bound came from the default range
    sex: str | None = None  # male | female: the laboratory's range for the patient's sex was used


@dataclass(frozen=True)
class _Candidate:
    low: float | None
    high: float | None
    sexes: frozenset[str]  # empty: for everyone
    other_population: bool  # appliesTo names a population that is not a sex (race, pregnancy...)


def reference_range(part: Mapping[str, Any], lab: LabCode, unit: str, analyte: Analyte, knowledge: Knowledge,
                    sex: str | None, age: int | None) -> ChosenRange:
    """The normal range for this patient, in the analyte's canonical unit."""
    candidates = [c for c in _candidates(elements(part, "referenceRange"), lab, unit, knowledge, age)]
    chosen = _for_patient(candidates, sex)
    default = analyte.default_range_by_sex.get(sex or "") or analyte.default_range
    if chosen is None:
        return ChosenRange(*default, "default") if default else ChosenRange(None, None, None)
    low, high, range_sex = chosen
    filled = None
    if default and (low is None) != (high is None):
        if low is None and default[0] is not None:
            low, filled = default[0], "low"
        elif high is None and default[1] is not None:
            high, filled = default[1], "high"
    return ChosenRange(low, high, "observation", filled, range_sex)


def _candidates(ranges: list[Mapping[str, Any]], lab: LabCode, unit: str, knowledge: Knowledge, age: int | None):
    for entry in ranges:
        range_type = [code for _, code, _ in codings(entry.get("type"), "referenceRange.type")]
        if range_type and "normal" not in range_type:
            continue  # treatment or therapeutic ranges are not normal limits
        if not _age_applies(element(entry, "age"), age):
            continue
        low = read_bound(entry.get("low"), lab, unit, knowledge, "referenceRange.low")
        high = read_bound(entry.get("high"), lab, unit, knowledge, "referenceRange.high")
        if low is None and high is None:
            continue
        sexes, other = _applies_to(elements(entry, "appliesTo"), knowledge)
        yield _Candidate(low, high, sexes, other)


def _applies_to(concepts: list[Any], knowledge: Knowledge) -> tuple[frozenset[str], bool]:
    sexes, other = set(), False
    for concept in concepts:
        found = {knowledge.range_sex_codes.get((knowledge.system_of(s), c)) for s, c, _ in
                 codings(concept, "referenceRange.appliesTo")} - {None}
        if not found:
            label = normalise_text(concept_text(concept, "referenceRange.appliesTo") or "")
            found = {knowledge.range_sex_words[word] for word in label.split() if word in knowledge.range_sex_words}
        if found:
            sexes |= found
        else:
            other = True
    return frozenset(sexes), other


def _age_applies(age_range: Mapping[str, Any] | None, age: int | None) -> bool:
    """An age band in years: used when the patient's age is inside it (or unknown)."""
    if age_range is None or age is None:
        return True
    for bound, inside in (("low", lambda limit: age >= limit), ("high", lambda limit: age <= limit)):
        quantity = element(age_range, bound)
        if quantity is None:
            continue
        limit = number(quantity.get("value"), f"referenceRange.age.{bound}.value")
        unit = (text(quantity.get("code"), "referenceRange.age.code") or
                text(quantity.get("unit"), "referenceRange.age.unit") or "a").lower()
        if limit is not None and unit in _YEARS and not inside(limit):
            return False
    return True


def _for_patient(candidates: list[_Candidate], sex: str | None):
    """(low, high, sex of the range used or None) or None when no range applies to this patient."""
    own = [c for c in candidates if not c.other_population]
    if sex is not None:
        matching = [c for c in own if sex in c.sexes]
        if matching:
            return matching[0].low, matching[0].high, sex
        general = [c for c in own if not c.sexes]
        if general:
            return general[0].low, general[0].high, None
        return None  # only ranges for the other sex or for other populations: the default applies
    general = [c for c in own if not c.sexes]
    if general:
        return general[0].low, general[0].high, None
    if own:  # sex unknown, sex-specific ranges only: the narrowest bounds of them
        lows = [c.low for c in own if c.low is not None]
        highs = [c.high for c in own if c.high is not None]
        return (max(lows) if lows else None), (min(highs) if highs else None), None
    return None


def interpretation(part: Mapping[str, Any], knowledge: Knowledge) -> str | None:
    """low | high | normal from the laboratory's interpretation flag, else None."""
    for concept in elements(part, "interpretation"):
        for system_uri, code, _ in codings(concept, "interpretation"):
            if knowledge.system_of(system_uri) not in ("v3_interpretation", None):
                continue
            if code in _LOW_FLAGS:
                return "low"
            if code in _HIGH_FLAGS:
                return "high"
            if code == "N":
                return "normal"
    return None
