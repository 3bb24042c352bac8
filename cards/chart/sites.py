"""Body sites of a finding, as regions, and the words that make a finding "widespread" (issue 13 items 3, 6).

The "3 or more sites" proxy for widespread fasciculation (RF3) counts body regions, not codings: "Left
calf", "Right calf" and "Calf of leg" are one region. A site is a region when one of its codes is a
region code, else when its words (laterality and filler words removed) name one or more regions; a site
naming no known region counts by its remaining words, or its code. A site that is only a laterality
("Left") is not a site. A single whole-body site, or "generalised"/"widespread" in the text (not preceded
by "not", "non" or "no"), marks the finding as widespread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.chart.raw import codings, concept_text
from cards.knowledge_model import Knowledge, normalise_text

_NEGATORS = frozenset({"not", "non", "no"})


@dataclass(frozen=True)
class Sites:
    regions: tuple[str, ...]  # one key per distinct region
    labels: tuple[str, ...]  # the recorded names, one per region
    tongue: bool
    widespread: bool


def read_sites(concepts: list[Any], knowledge: Knowledge) -> Sites:
    cues = knowledge.text_cues
    regions: dict[str, str] = {}
    tongue = widespread = False
    for concept in concepts:
        keys = [(knowledge.system_of(system), code) for system, code, _ in codings(concept, "bodySite") if code]
        label = concept_text(concept, "bodySite") or ""
        words = normalise_text(label)
        tongue = tongue or any(key in knowledge.tongue_codes for key in keys) or \
            bool(knowledge.tongue_words.search(words))
        widespread = widespread or any(key in cues.widespread_codes for key in keys) or says_widespread(words, knowledge)
        shown = label or next((code for _, code in keys), "")
        for region in _regions(keys, words, knowledge):
            regions.setdefault(region, shown or region)
    return Sites(tuple(regions), tuple(regions.values()), tongue, widespread)


def _regions(keys: list[tuple[str | None, str]], words: str, knowledge: Knowledge) -> list[str]:
    cues = knowledge.text_cues
    coded = [cues.region_by_code[key] for key in keys if key in cues.region_by_code]
    if coded:
        return coded[:1]
    remaining = " ".join(word for word in words.split() if word not in cues.dropped_site_words)
    named = [cues.region_by_words[match.group(0)] for match in cues.region_pattern.finditer(remaining)]
    if named:
        return list(dict.fromkeys(named))
    if remaining:
        return [remaining]
    other = [f"{system or 'unknown system'}|{code}" for system, code in keys if (system, code) not in cues.laterality_codes]
    return other[:1]  # nothing but a laterality: not a site


def says_widespread(words: str, knowledge: Knowledge) -> bool:
    """Normalised text calls the finding generalised or widespread, not negated ("not widespread")."""
    for match in knowledge.text_cues.widespread_words.finditer(words):
        before = words[:match.start()].split()
        if not before or before[-1] not in _NEGATORS:
            return True
    return False
