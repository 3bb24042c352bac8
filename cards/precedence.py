"""Card precedence (clinical.md §1.9).

1. A red flag (any neurology-referral finding, including a known MND diagnosis) suppresses
   reassurance and treatment options: neither is safe until neurology has been involved.
2. An abnormal result or an incomplete work-up suppresses reassurance: secondary causes come first.
   (Data that could not be fetched or read withholds it in the reassurance rule itself, for the
   domains reassurance depends on: a gap in the orders alone does not.)
3. Everything else is additive.
"""
from __future__ import annotations

from cards.findings import ABNORMAL_RESULT, NEUROLOGY_REFERRAL, REASSURANCE, TREATMENT_OPTIONS, WORKUP_INCOMPLETE, Finding

SUPPRESSES: dict[str, frozenset[str]] = {
    NEUROLOGY_REFERRAL: frozenset({REASSURANCE, TREATMENT_OPTIONS}),
    ABNORMAL_RESULT: frozenset({REASSURANCE}),
    WORKUP_INCOMPLETE: frozenset({REASSURANCE}),
}


def apply_precedence(findings: list[Finding]) -> list[Finding]:
    present = {finding.topic for finding in findings}
    suppressed = frozenset().union(*(SUPPRESSES.get(topic, frozenset()) for topic in present))
    return [finding for finding in findings if finding.topic not in suppressed]
