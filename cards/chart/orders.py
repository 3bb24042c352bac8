"""Active ServiceRequests -> ActiveOrder: orders already placed, so no card suggests them again.

An order is recognised by its codes (LOINC, CPT, SNOMED CT: order_codes.yaml, and the neurology
referral codes of findings.yaml) or, for a local code system with only text (Oracle Health code set
200), by its text or coding displays: test names and neutral words only (covered_by_name), so an
order for another test that shares a word ("Urine calcium", "CK-MB") never counts.
"""
from __future__ import annotations

from typing import Any, Mapping

from cards.chart.raw import codings, element, reference_to, text
from cards.knowledge_base import Knowledge, normalise_text
from cards.view import ActiveOrder

ACTIVE = "active"


def select_order(resource: Mapping[str, Any], knowledge: Knowledge) -> ActiveOrder | str:
    """The order, or why it does not count."""
    status = text(resource.get("status"), "status")
    if (status or "").lower() != ACTIVE:
        return f"status {status or 'missing'}"
    concept = element(resource, "code")
    coded = codings(concept)
    evidence = reference_to(resource)
    for system_uri, code, display in coded:
        key = (knowledge.system_of(system_uri), code)
        covers = knowledge.order_covers_by_code.get(key)
        if covers is not None or key in knowledge.referral_order_codes:
            return ActiveOrder(system=key[0], code=code, display=display, evidence=evidence, status=ACTIVE,
                               covers=covers or frozenset())
    names = [text((concept or {}).get("text"), "code.text")] + [display for _, _, display in coded]
    covers = frozenset()
    for name in names:
        if name:
            covers |= covered_by_name(name, knowledge)
    if not covers:
        return "not an order the cards would suggest"
    system_uri, code, display = coded[0] if coded else (None, None, None)
    return ActiveOrder(system=knowledge.system_of(system_uri), code=code, display=next(n for n in names if n),
                       evidence=evidence, status=ACTIVE, covers=covers)


def covered_by_name(name: str, knowledge: Knowledge) -> frozenset[str]:
    """The work-up orders an order named ``name`` provides: empty unless the text is only test names and
    neutral words ("Calcium, serum" counts; "Urine calcium", "Calcium score CT", "CK-MB" do not)."""
    words = normalise_text(name)
    matches = list(knowledge.order_names.finditer(words))
    if not matches:
        return frozenset()
    rest = words
    for match in reversed(matches):
        rest = rest[:match.start()] + " " + rest[match.end():]
    if any(word not in knowledge.order_neutral_words and not word.isdigit() and len(word) > 1 for word in rest.split()):
        return frozenset()  # another test, or another specimen: not the serum test of the work-up
    covers: frozenset[str] = frozenset()
    for match in matches:
        covers |= knowledge.order_covers_by_name[match.group(0)]
    return covers
