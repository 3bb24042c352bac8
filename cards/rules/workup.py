"""Work-up completeness (clinical.md W1-W5): U&E/BMP, calcium, TSH and CK, plus magnesium on a diuretic.

Each required order is checked component by component; the worst component decides the order's
status. A result older than the lookback window, without a value, only preliminary, or one that could
not be read leaves the work-up incomplete. "No result" is said only when the results could all be
obtained and read; otherwise the component is "not seen".
"""
from __future__ import annotations

from datetime import datetime

from cards.calendar import months_before
from cards.findings import Finding
from cards.knowledge_base import Knowledge, Order
from cards.rules.base import Emit
from cards.view import LABS, LabResult, MedicationUse, PatientView

# Worst first: the order's status is the first of these any component has.
STATUS_SEVERITY = ("missing", "unseen", "unreadable", "unusable", "stale", "preliminary")


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
        order = knowledge.orders[key]
        status, evidence, window, shortened = _order_status(order, view, knowledge, trigger)
        if status is None:
            continue
        already = view.active_order_covering(key)
        if already is not None and status not in ("preliminary", "unreadable"):
            status, evidence = "ordered", (*evidence, already)
        params = {"order": key, "status": status, "months": window}
        if shortened and trigger is not None:
            params["short_window_medicine"] = trigger
        if reason_medicine is not None:
            params["reason_medicine"] = reason_medicine
        findings.append(emit(status, *evidence, **params))
    return findings


def _order_status(order: Order, view: PatientView, knowledge: Knowledge, trigger: MedicationUse | None):
    """(worst status or None when complete, evidence, window in months, whether shortened)."""
    settings = knowledge.thresholds
    worst, evidence, windows, shortened = None, [], [], False
    for alternatives in order.components:
        short = trigger is not None and any(name in settings.lookback_short_analytes for name in alternatives)
        months = settings.lookback_short_months if short else settings.lookback_default_months
        windows.append(months)
        status, item = _component_status(alternatives, view, months_before(view.now, months))
        if status is None:
            continue
        shortened = shortened or (short and status == "stale")
        if item is not None:
            evidence.append(item)
        if worst is None or STATUS_SEVERITY.index(status) < STATUS_SEVERITY.index(worst):
            worst = status
    return worst, tuple(evidence), min(windows), shortened


def _component_status(alternatives: tuple[str, ...], view: PatientView, oldest_allowed: datetime):
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


def short_window_trigger(view: PatientView, knowledge: Knowledge) -> MedicationUse | None:
    """The most recent diuretic/corticosteroid start, change or stop inside the trigger window (W3)."""
    settings = knowledge.thresholds
    since = months_before(view.now, settings.lookback_shortening_trigger_months)
    events = []
    for medication in view.medications:
        if not any(medication.has_class(c) for c in settings.lookback_short_trigger_classes):
            continue
        ended = medication.ended if medication.ended and medication.ended <= view.now else None
        moment = medication.started if medication.current else (ended or medication.started)
        if moment is not None and since <= moment <= view.now:
            events.append((moment, medication))
    return max(events, key=lambda event: event[0])[1] if events else None


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
