"""Card precedence, merges and the alert budget (clinical.md §1.9; issue 13 items 8 and 15).

1. A red flag (any neurology-referral finding, including a known MND diagnosis) suppresses what would
   contradict it: reassurance, treatment options, cramp self-care with its drug options ("hold back
   symptomatic treatment"), the health-anxiety card ("explain why it is benign") and the myokymia card
   ("explain and reassure").
2. An abnormal result or an incomplete work-up suppresses reassurance: secondary causes come first.
   (Data that could not be fetched or read withholds it in the reassurance rule itself.)
3. Treatment options appear only beside reassurance: drugs are for benign fasciculation once it is
   established, never while the work-up is open.
4. Merges: restless legs goes onto the cramp card when there is one; health anxiety onto the
   reassurance card when there is one (one explicit explanation, one card).
5. The budget: at most `max_cards` (settings.yaml) cards. Only informational advice without suggestions
   is ever left out to stay within it, least important first; red flags, results, data gaps, the
   work-up, medicines and the quinine warning always stay (at most six of them can coexist).
"""
from __future__ import annotations

from dataclasses import replace

from cards.findings import (ABNORMAL_RESULT, COMPRESSION, CRAMP_MANAGEMENT, CYCLOBENZAPRINE, DIFFERENTIAL,
                            HEALTH_ANXIETY, NEUROLOGY_REFERRAL, REASSURANCE, TREATMENT_OPTIONS, WORKUP_INCOMPLETE,
                            Finding)

SUPPRESSES: dict[str, frozenset[str]] = {
    NEUROLOGY_REFERRAL: frozenset({REASSURANCE, TREATMENT_OPTIONS, CRAMP_MANAGEMENT, HEALTH_ANXIETY}),
    ABNORMAL_RESULT: frozenset({REASSURANCE}),
    WORKUP_INCOMPLETE: frozenset({REASSURANCE}),
}
# Left out first when over budget (then the next): never a card that asks for an action or shows a result.
BUDGET_ORDER = (DIFFERENTIAL, CRAMP_MANAGEMENT, HEALTH_ANXIETY, TREATMENT_OPTIONS, CYCLOBENZAPRINE, COMPRESSION)


def apply_precedence(findings: list[Finding], max_cards: int | None = None) -> list[Finding]:
    present = {finding.topic for finding in findings}
    suppressed = frozenset().union(*(SUPPRESSES.get(topic, frozenset()) for topic in present))
    kept = [f for f in findings if f.topic not in suppressed]
    if NEUROLOGY_REFERRAL in present:
        kept = [f for f in kept if not (f.topic == DIFFERENTIAL and f.kind == "myokymia")]
    if REASSURANCE not in {f.topic for f in kept}:
        kept = [f for f in kept if f.topic != TREATMENT_OPTIONS]
    kept = _merge(kept, DIFFERENTIAL, "restless_legs", CRAMP_MANAGEMENT, "restless_legs")
    kept = _merge(kept, HEALTH_ANXIETY, "health_anxiety", REASSURANCE, "health_anxiety_findings")
    return kept if max_cards is None else within_budget(kept, max_cards)


def _merge(findings: list[Finding], topic: str, kind: str, into: str, param: str) -> list[Finding]:
    """Move the findings of (topic, kind) onto the card of ``into`` when that card is shown."""
    moving = [f for f in findings if f.topic == topic and f.kind == kind]
    target = next((f for f in findings if f.topic == into), None)
    if not moving or target is None:
        return findings
    merged = replace(target, params={**target.params, param: tuple(moving)})
    return [merged if f is target else f for f in findings if f not in moving]


def card_count(findings: list[Finding]) -> int:
    """Cards these findings make: one per topic, one per differential."""
    return len({f.topic for f in findings if f.topic != DIFFERENTIAL}) + sum(f.topic == DIFFERENTIAL for f in findings)


def within_budget(findings: list[Finding], max_cards: int) -> list[Finding]:
    kept = list(findings)
    for topic in BUDGET_ORDER:
        while card_count(kept) > max_cards and any(f.topic == topic for f in kept):
            last = max(i for i, f in enumerate(kept) if f.topic == topic)
            kept = [f for i, f in enumerate(kept) if i != last] if topic == DIFFERENTIAL else \
                [f for f in kept if f.topic != topic]
    return kept
