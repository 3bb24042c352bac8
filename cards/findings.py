"""What a rule concludes: a Finding with the data points it used, ready for a card builder."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Union

from cards.view import ActiveOrder, ClinicalFinding, DataGap, LabGap, LabResult, MedicationUse, Unreadable

Evidence = Union[ClinicalFinding, LabResult, LabGap, MedicationUse, ActiveOrder, Unreadable, DataGap]

# Card topics (public contract: source.topic.code).
NEUROLOGY_REFERRAL = "neurology-referral"
WORKUP_INCOMPLETE = "workup-incomplete"
ABNORMAL_RESULT = "abnormal-result"
DATA_GAP = "data-gap"
MEDICATION_REVIEW = "medication-review"
REASSURANCE = "reassurance"
TREATMENT_OPTIONS = "treatment-options"
CYCLOBENZAPRINE = "cyclobenzaprine-not-indicated"
QUININE = "quinine-caution"
COMPRESSION = "compression-caution"
CRAMP_MANAGEMENT = "cramp-management"
HEALTH_ANXIETY = "health-anxiety"
DIFFERENTIAL = "differential"

# Display order of cards: the most urgent first, reassurance (and its treatment options) last.
# Treatment options appear only beside reassurance, and read after it: reassure first, drugs second.
TOPIC_ORDER = (NEUROLOGY_REFERRAL, ABNORMAL_RESULT, DATA_GAP, WORKUP_INCOMPLETE, MEDICATION_REVIEW, QUININE, COMPRESSION,
               CYCLOBENZAPRINE, HEALTH_ANXIETY, CRAMP_MANAGEMENT, DIFFERENTIAL, REASSURANCE, TREATMENT_OPTIONS)


@dataclass(frozen=True)
class Finding:
    """One rule's conclusion about the patient.

    ``kind`` selects the wording (e.g. "weakness", "low_potassium", "missing"); ``data`` holds the
    view items the rule read, rendered as the card's "why" list; ``params`` carries computed values
    (ratios, order keys) the card text needs.
    """

    rule_id: str
    topic: str
    kind: str
    source: str
    data: tuple[Evidence, ...] = ()
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    critical: bool = False

    @property
    def evidence_references(self) -> tuple[str, ...]:
        refs = [item.evidence for item in self.data if getattr(item, "evidence", None)]
        return tuple(dict.fromkeys(refs))


def finding(rule_id: str, topic: str, kind: str, source: str, *data: Evidence, critical: bool = False,
            **params: Any) -> Finding:
    return Finding(rule_id=rule_id, topic=topic, kind=kind, source=source, data=tuple(data),
                   params=MappingProxyType(params), critical=critical)
