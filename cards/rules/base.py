"""The rule contract: a pure function of the patient view that returns findings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from cards.findings import Evidence, Finding, finding
from cards.knowledge_base import Knowledge
from cards.view import PatientView


class Emit(Protocol):
    def __call__(self, kind: str, *data: Evidence, critical: bool = False, **params: Any) -> Finding: ...


RuleFunction = Callable[[PatientView, Knowledge, Emit], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """A rule with its id, the card topic it feeds and the source it implements.

    ``needs_index_symptom``: only run when an index symptom (fasciculation, cramp, myokymia) is
    present; the others also run for differential-only patients (blepharospasm, myotonia...).
    """

    rule_id: str
    topic: str
    source: str
    evaluate: RuleFunction
    needs_index_symptom: bool = True

    def run(self, view: PatientView, knowledge: Knowledge) -> list[Finding]:
        def emit(kind: str, *data: Evidence, critical: bool = False, **params: Any) -> Finding:
            return finding(self.rule_id, self.topic, kind, self.source, *data, critical=critical, **params)

        return self.evaluate(view, knowledge, emit)
