"""The reading layer: raw FHIR resources in, PatientView out. Nothing else in the project reads raw
FHIR JSON; rules, card builders and hooks see only the view.

    read_chart(resources, patient_id=..., now=..., knowledge=..., gaps=...) -> PatientView
    may_trigger(resources, knowledge)            the cheap screen for charts without a symptom
    medication_references_needed(resources)      Medication/{id} the data refer to but do not hold
    explain(resources, patient_id=..., now=...)  every resource: used, ignored (why), unreadable (why)
"""
from __future__ import annotations

from typing import Any, Iterable

from cards.chart.medications import medication_references_needed as _references_needed
from cards.chart.reader import ChartPass, collect, may_trigger, read_chart, unread
from cards.chart.raw import is_object


def medication_references_needed(resources: Iterable[Any]) -> list[str]:
    """`Medication/{id}` references of current or recently stopped medicines whose Medication is
    neither contained nor among the resources (an `include` entry): the ones worth fetching."""
    chart = list(resources)
    from cards.knowledge_base import load_knowledge
    if not may_trigger(chart, load_knowledge()):
        return []  # a chart without a symptom gets no card: nothing is worth fetching
    medicines = {resource["id"]: resource for resource in chart
                 if is_object(resource) and resource.get("resourceType") == "Medication"
                 and isinstance(resource.get("id"), str)}
    return _references_needed(chart, medicines)


__all__ = ["ChartPass", "collect", "may_trigger", "read_chart", "unread", "medication_references_needed"]
