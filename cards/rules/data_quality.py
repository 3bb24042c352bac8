"""Data the review could not see (issue: read real EHR data faithfully).

A relevant resource that could not be read, or data the service could not obtain, is never taken
for absent: it is listed on one card, so the clinician knows what to check in the chart, and it
blocks reassurance (cards/precedence.py). Unreadable work-up results are shown on the work-up card
instead, beside the test they belong to.
"""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.rules.workup import checked_analytes
from cards.view import ORDERS, PatientView


def data_gaps(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    shown_on_workup = checked_analytes(view, knowledge) if view.has_index_symptom else frozenset()
    unreadable = [item for item in view.unreadable if not (item.kind == "lab" and item.subject in shown_on_workup)]
    if not view.gaps and not unreadable:
        return []
    if all(item.domain == ORDERS for item in (*view.gaps, *unreadable)):
        kind = "orders_only"  # reassurance does not depend on them: only a suggestion may repeat an order
    else:
        kind = "not_fetched" if view.gaps else "unreadable"
    return [emit(kind, *view.gaps, *unreadable)]
