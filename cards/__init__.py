"""Clinical knowledge and rules of the fasciculation / cramp CDS service.

Clinical facts -> findings -> cards. Nothing here knows about HTTP: the hooks layer hands over raw
FHIR resources and receives CDS Hooks card dicts.
"""
from __future__ import annotations

from typing import Any

from cards.api import Review, review
from cards.chart import medication_references_needed
from cards.chart.units import warm as _warm_units
from cards.knowledge_base import KnowledgeError, load_knowledge
from cards.options import ReviewOptions
from cards.view import DOMAINS, DataGap

_warm_units()  # the UCUM registry, built once here rather than in the first call that needs it

# Loaded on first use, not at import: `python -m cards.knowledge_icd` must run (and repair
# icd_descendants.json) while the knowledge does not load. The hooks read these at import, so a
# broken knowledge file still stops the service at start, loudly.
_KNOWLEDGE_ATTRIBUTES = {"KNOWLEDGE_VERSION": "version", "LAB_LOINC_CODES": "lab_loinc_codes",
                         "FINDING_CODES": "finding_codes"}
KNOWLEDGE_VERSION: str
LAB_LOINC_CODES: tuple[str, ...]
FINDING_CODES: tuple[str, ...]


def __getattr__(name: str) -> Any:
    if name in _KNOWLEDGE_ATTRIBUTES:
        return getattr(load_knowledge(), _KNOWLEDGE_ATTRIBUTES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["review", "ReviewOptions", "Review", "KNOWLEDGE_VERSION", "load_knowledge", "KnowledgeError",
           "LAB_LOINC_CODES", "FINDING_CODES", "DataGap", "DOMAINS", "medication_references_needed"]
