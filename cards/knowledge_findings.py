"""Compiles the text cues of findings.yaml: negation, "widespread" and body regions (issue 13 items 3, 5, 6).

Everything is matched on normalised text (knowledge_model.normalise_text: lower case, accents and
punctuation gone), so the patterns here are built from normalised words once, at load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from cards.knowledge_model import Checks, CodeKey, normalise_text


@dataclass(frozen=True)
class TextCues:
    negation_leading: re.Pattern[str]  # "no [focal] <finding>" as the whole text
    negation_trailing: re.Pattern[str]  # "<finding> absent" as the whole text
    negation_breakers: re.Pattern[str]  # "no change in weakness": not a plain negation
    widespread_codes: frozenset[CodeKey]
    widespread_words: re.Pattern[str]
    laterality_codes: frozenset[CodeKey]
    dropped_site_words: frozenset[str]  # laterality and filler words removed before regions are compared
    region_by_code: Mapping[CodeKey, str]
    region_by_words: Mapping[str, str]  # normalised phrase -> region key
    region_pattern: re.Pattern[str]  # any region phrase as whole words, longest first


def compile_text_cues(checks: Checks, findings: Mapping[str, Any]) -> TextCues:
    negation = findings["negation"]
    leading = _alternatives(negation["leading"])
    fillers = _alternatives(negation["fillers"]) if negation["fillers"] else None
    filler_part = rf"(?: (?:{fillers}))*" if fillers else ""
    widespread, regions = findings["widespread"], findings["body_regions"]
    region_by_code: dict[CodeKey, str] = {}
    region_by_words: dict[str, str] = {}
    for region, entry in regions["regions"].items():
        for index, code in enumerate(entry["codes"]):
            key = checks.key("findings", f"body_regions.regions.{region}.codes[{index}]", code)
            checks.require(key not in region_by_code, "findings", f"body_regions.regions.{region}",
                           f"code {code['code']} belongs to two regions")
            region_by_code[key] = region
        for word in entry["words"]:
            phrase = normalise_text(word)
            checks.require(region_by_words.get(phrase, region) == region, "findings",
                           f"body_regions.regions.{region}.words", f"{word!r} belongs to two regions")
            region_by_words[phrase] = region
    laterality = regions["laterality"]
    return TextCues(
        # The text opens with a negation, then at most three content words: "no focal weakness",
        # "no tongue fasciculation seen". Anything longer is a sentence, not a plain "absent".
        negation_leading=re.compile(rf"^(?:{leading}){filler_part}(?: [a-z0-9]+){{1,3}}"
                                    rf"(?: (?:seen|noted|observed|detected|present|found|elicited|today))?$"),
        negation_trailing=re.compile(rf"^(?:[a-z0-9]+ ){{1,3}}(?:{_alternatives(negation['trailing'])})$"),
        negation_breakers=_word_pattern(negation["breakers"]),
        widespread_codes=frozenset(checks.key("findings", "widespread.codes", c) for c in widespread["codes"]),
        widespread_words=_word_pattern(widespread["words"]),
        laterality_codes=frozenset(checks.key("findings", "body_regions.laterality.codes", c)
                                   for c in laterality["codes"]),
        dropped_site_words=frozenset(normalise_text(w) for w in (*laterality["words"], *regions["ignore_words"])),
        region_by_code=MappingProxyType(region_by_code),
        region_by_words=MappingProxyType(region_by_words),
        region_pattern=_word_pattern(list(region_by_words)),
    )


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(normalise_text(word)) for word in sorted(words, key=len, reverse=True))


def _word_pattern(words: list[str]) -> re.Pattern[str]:
    if not words:
        return re.compile(r"(?!x)x")
    return re.compile(rf"(?<![a-z0-9])(?:{_alternatives(words)})(?![a-z0-9])")
