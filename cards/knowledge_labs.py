"""Compiles the interpretation parts of labs.yaml: sex-specific reference ranges and what an out-of-range
result means for the cards (issue 13 items 1 and 3)."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from cards.knowledge_model import Checks, CodeKey, normalise_text

# The analyte groups of `out_of_range`: the three calcium analytes are judged as one result.
CALCIUM_ANALYTES = ("calcium_ionised", "calcium_corrected", "calcium_total")


def compile_range_sexes(checks: Checks, labs: Mapping[str, Any]):
    """(appliesTo code -> sex, appliesTo word -> sex)."""
    codes: dict[CodeKey, str] = {}
    words: dict[str, str] = {}
    for sex, entry in labs["reference_range_sex"].items():
        checks.require(sex in ("male", "female"), "labs", f"reference_range_sex.{sex}", "must be male or female")
        for index, code in enumerate(entry["codes"]):
            codes[checks.key("labs", f"reference_range_sex.{sex}.codes[{index}]", code)] = sex
        for word in entry["words"]:
            words[normalise_text(word)] = sex
    return MappingProxyType(codes), MappingProxyType(words)


def compile_out_of_range(checks: Checks, labs: Mapping[str, Any], analytes: Mapping[str, Any]):
    levels: dict[tuple[str, str], str] = {}
    for group, directions in labs["out_of_range"].items():
        checks.require(group in analytes or group == "calcium", "labs", f"out_of_range.{group}", "unknown analyte")
        for direction, entry in directions.items():
            checks.require(direction in ("low", "high"), "labs", f"out_of_range.{group}.{direction}",
                           "must be low or high")
            levels[(group, direction)] = entry["level"]
    return MappingProxyType(levels)


def analyte_group(analyte: str) -> str:
    return "calcium" if analyte in CALCIUM_ANALYTES else analyte
