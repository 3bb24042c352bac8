"""Work-up completeness (clinical.md W1-W5): U&E/BMP, calcium, TSH and CK, plus magnesium on a diuretic.

Each required order is checked component by component, and each component's status is kept, so the
card names exactly what is missing beside what is on file ("urea and creatinine missing; potassium 3.1
on file", issue 13 item 13); the worst component decides the order's status. A result older than the
look-back window (history: its value is shown and a repeat asked for, issue 13 item 9), without a value,
only preliminary, or one that could not be read leaves the work-up incomplete. "No result" is said only
when the results could all be obtained and read; otherwise the component is "not seen".
"""
from __future__ import annotations

from dataclasses import dataclass

from cards.calendar import months_before
from cards.findings import Evidence, Finding
from cards.knowledge_base import Knowledge, Order
from cards.rules.base import Emit
from cards.rules.windows import short_window_trigger, window_months
from cards.view import LABS, LabResult, MedicationUse, PatientView

# Worst first: the order's status is the first of these any component has.
STATUS_SEVERITY = ("missing", "unseen", "unreadable", "unusable", "stale", "preliminary")


@dataclass(frozen=True)
class Component:
    """One component of a work-up order (e.g. the urea of a BMP) and where it stands."""

    analytes: tuple[str, ...]  # alternatives: any one of them completes the component
    status: str | None  # one of STATUS_SEVERITY, or None when a fresh final result is on file
    item: Evidence | None  # the result, gap or unreadable record behind the status
    months: float  # the component's look-back window


def required_tests(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _check_orders(view, knowledge, emit, knowledge.required_orders)


def magnesium_on_diuretic(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    diuretics = [m for drug_class in sorted(knowledge.magnesium_classes) for m in view.current_in_class(drug_class)]
    if not diuretics:
        return []
    return _check_orders(view, knowledge, emit, ("magnesium",), reason_medicine=diuretics[0])


def _check_orders(view: PatientView, knowledge: Knowledge, emit: Emit, order_keys,
                  reason_medicine: MedicationUse | None = None) -> list[Finding]:
    trigger = short_window_trigger(view, knowledge)
    findings = []
    for key in order_keys:
        components = order_components(knowledge.orders[key], view, knowledge)
        statuses = [c.status for c in components if c.status is not None]
        if not statuses:
            continue
        status = min(statuses, key=STATUS_SEVERITY.index)
        evidence = tuple(c.item for c in components if c.status is not None and c.item is not None)
        already = view.active_order_covering(key)
        if already is not None and status not in ("preliminary", "unreadable"):
            status, evidence = "ordered", (*evidence, already)
        months = min(c.months for c in components)
        params = {"order": key, "status": status, "months": months, "components": components}
        if trigger is not None and months < knowledge.thresholds.lookback_default_months and \
                any(c.status == "stale" for c in components):
            params["short_window_medicine"] = trigger
        if reason_medicine is not None:
            params["reason_medicine"] = reason_medicine
        findings.append(emit(status, *evidence, **params))
    return findings


def order_components(order: Order, view: PatientView, knowledge: Knowledge) -> tuple[Component, ...]:
    components = []
    for alternatives in order.components:
        months = min(window_months(view, knowledge, name) for name in alternatives)
        status, item = _component_status(alternatives, view, months_before(view.now, months))
        components.append(Component(alternatives, status, item, months))
    return tuple(components)


def _component_status(alternatives: tuple[str, ...], view: PatientView, oldest_allowed):
    unreadable = view.unreadable_of(*alternatives)
    if unreadable:  # a result that is newer than any readable one, and cannot be read
        return "unreadable", unreadable[0]
    results = [view.labs[name] for name in alternatives if name in view.labs]
    if not results:
        gap = next((view.lab_gaps[name] for name in alternatives if name in view.lab_gaps), None)
        if gap:
            return "unusable", gap
        return ("unseen", None) if view.incomplete(LABS) else ("missing", None)
    latest = max(results, key=lambda result: result.effective.timestamp() if result.effective else 0)
    if latest.effective is None or latest.effective < oldest_allowed:
        return "stale", latest
    if latest.preliminary:
        return "preliminary", latest
    return None, latest


def checked_analytes(view: PatientView, knowledge: Knowledge) -> frozenset[str]:
    """The analytes whose results the work-up cards report on (an unreadable one is shown there)."""
    keys = list(knowledge.required_orders)
    if any(view.current_in_class(drug_class) for drug_class in knowledge.magnesium_classes):
        keys.append("magnesium")
    return frozenset(name for key in keys for alternatives in knowledge.orders[key].components for name in alternatives)


def complete_results(view: PatientView, knowledge: Knowledge) -> tuple[LabResult, ...]:
    """The results that make up a complete work-up, for the reassurance card's "why" list."""
    results = []
    for key in knowledge.required_orders:
        for alternatives in knowledge.orders[key].components:
            found = [view.labs[name] for name in alternatives if name in view.labs]
            if found:
                results.append(max(found, key=lambda r: r.effective.timestamp() if r.effective else 0))
    return tuple(results)
