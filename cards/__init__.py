"""Clinical knowledge and rules of the fasciculation / cramp CDS service.

Clinical facts -> findings -> cards. Nothing here knows about HTTP: the hooks layer hands over raw
FHIR resources and receives CDS Hooks card dicts.
"""
from __future__ import annotations

from cards.api import Review, review
from cards.chart import medication_references_needed
from cards.chart.units import warm as _warm_units
from cards.knowledge_base import KnowledgeError, load_knowledge
from cards.options import ReviewOptions
from cards.view import DOMAINS, DataGap

_KNOWLEDGE = load_knowledge()  # fail at import, loudly, if the knowledge files are broken
_warm_units()  # the UCUM registry, built once here rather than in the first call that needs it

KNOWLEDGE_VERSION: str = _KNOWLEDGE.version
LAB_LOINC_CODES: tuple[str, ...] = _KNOWLEDGE.lab_loinc_codes
FINDING_CODES: tuple[str, ...] = _KNOWLEDGE.finding_codes

__all__ = ["review", "ReviewOptions", "Review", "KNOWLEDGE_VERSION", "load_knowledge", "KnowledgeError",
           "LAB_LOINC_CODES", "FINDING_CODES", "DataGap", "DOMAINS", "medication_references_needed"]
