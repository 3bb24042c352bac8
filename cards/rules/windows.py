"""How fresh a result must be (clinical.md W3), shared by the work-up and the result rules.

A result older than its look-back window is history (issue 13 item 9): the work-up card says when it was
taken and asks for a repeat; it is never presented as today's abnormal result or red flag.
"""
from __future__ import annotations

from cards.calendar import months_before
from cards.knowledge_base import Knowledge
from cards.view import LabResult, MedicationUse, PatientView


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


def window_months(view: PatientView, knowledge: Knowledge, analyte: str) -> float:
    """The look-back window of an analyte for this patient: 3 months for U&E and magnesium after a recent
    diuretic or corticosteroid change, else 12 (settings.yaml)."""
    settings = knowledge.thresholds
    if analyte in settings.lookback_short_analytes and short_window_trigger(view, knowledge) is not None:
        return settings.lookback_short_months
    return settings.lookback_default_months


def is_fresh(view: PatientView, knowledge: Knowledge, result: LabResult) -> bool:
    if result.effective is None:
        return False  # an undated result cannot be placed in the window: asked for again, never trusted
    return result.effective >= months_before(view.now, window_months(view, knowledge, result.analyte))


def fresh(view: PatientView, knowledge: Knowledge, analyte: str) -> LabResult | None:
    """The analyte's latest result when it is inside its window, else None."""
    result = view.labs.get(analyte)
    return result if result is not None and is_fresh(view, knowledge, result) else None
