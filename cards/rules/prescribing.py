"""Prescribing rules (order-select, order-sign): small pure functions of the patient view and the draft
medicines, each naming its source. docs/clinical-rules.md ("Prescribing rules") mirrors this table.

Only selected drafts are checked (order-select: the selections; order-sign: every draft). Most
prescriptions have nothing to do with cramp or twitching and get no finding at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cards.findings import Finding, finding
from cards.knowledge_base import Knowledge
from cards.rules import RULES
from cards.rules.windows import fresh
from cards.view import DraftMedication, PatientView

# Card topics of the prescribing services (source.topic.code).
RX_QUININE = "rx-quinine"
RX_CYCLOBENZAPRINE = "rx-cyclobenzaprine"
RX_RULE_OUT_FIRST = "rx-rule-out-first"
RX_CARBAMAZEPINE_PREGNANCY = "rx-carbamazepine-pregnancy"
RX_PROVOKING_MEDICINE = "rx-provoking-medicine"
RX_TOPICS = (RX_CARBAMAZEPINE_PREGNANCY, RX_QUININE, RX_CYCLOBENZAPRINE, RX_RULE_OUT_FIRST, RX_PROVOKING_MEDICINE)

CRAMP = "muscle_cramp"
FASCICULATION = "fasciculation"
QUININE = "quinine"
CYCLOBENZAPRINE = "cyclobenzaprine"
TREATMENT = "fasciculation_treatment"
# The medicine classes RX1-RX3 look for in a draft. With the provoking classes and the teratogenic
# ingredients of settings.yaml, they decide whether a draft is worth reading the chart for (cards/prescribing.py).
DRAFT_CLASSES = (QUININE, CYCLOBENZAPRINE, TREATMENT)
STEROID = "systemic_corticosteroid"
# The patient-view rules that tell whether the work-up is complete and normal (reused, not copied).
WORKUP_RULES = ("W1", "W2")
RESULT_RULES = ("L1", "L2", "L3", "L4", "L5", "L6", "L7")

PrescribingFunction = Callable[[PatientView, tuple[DraftMedication, ...], Knowledge, Any], list[Finding]]


@dataclass(frozen=True)
class PrescribingRule:
    rule_id: str
    topic: str
    source: str
    evaluate: PrescribingFunction

    def run(self, view: PatientView, drafts: tuple[DraftMedication, ...], knowledge: Knowledge) -> list[Finding]:
        def emit(kind: str, *data: Any, **params: Any) -> Finding:
            return finding(self.rule_id, self.topic, kind, self.source, *data, **params)

        return self.evaluate(view, tuple(d for d in drafts if d.selected), knowledge, emit)


def _index_symptoms(view: PatientView):
    return view.findings_in("index")


def _for_index_symptom(draft: DraftMedication, view: PatientView, knowledge: Knowledge) -> bool:
    """The order is for twitching or cramp: its reason names an index symptom, or it states no reason
    and the chart has one."""
    if any(knowledge.concepts[c].group == "index" for c in draft.reason_concepts if c in knowledge.concepts):
        return True
    return not draft.reason_stated and bool(_index_symptoms(view))


def quinine(view: PatientView, drafts, knowledge: Knowledge, emit) -> list[Finding]:
    """Quinine for cramp (E7 US, E8/E9 UK, E6): a warning, and the draft's removal offered. A quinine
    order whose stated reason is something else (malaria) gets no card."""
    found = []
    for draft in drafts:
        if not draft.has_class(QUININE):
            continue
        cramps = view.findings_of(CRAMP)
        if CRAMP in draft.reason_concepts:
            kind = "for_cramp"
        elif not draft.reason_stated and cramps:
            kind = "cramp_on_chart"
        elif not draft.reason_stated or draft.reason_unreadable:
            kind = "reason_unknown"
        else:
            continue
        found.append(emit(kind, draft, *cramps))
    return found


def cyclobenzaprine(view: PatientView, drafts, knowledge: Knowledge, emit) -> list[Finding]:
    """S0 Muscle Relaxants: not indicated for fasciculation; for any indication 2-3 weeks at most, checked
    against the duration the order states (unknown is said to be unknown)."""
    limit = knowledge.prescribing.cyclobenzaprine_max_days
    found = []
    for draft in drafts:
        if not draft.has_class(CYCLOBENZAPRINE):
            continue
        fasciculations = view.findings_of(FASCICULATION)
        if FASCICULATION in draft.reason_concepts:
            found.append(emit("for_fasciculation", draft, max_days=limit))
        elif not draft.reason_stated and fasciculations:
            found.append(emit("fasciculation_on_chart", draft, *fasciculations, max_days=limit))
        elif draft.duration_days is not None:
            if draft.duration_days > limit:
                found.append(emit("too_long", draft, max_days=limit))
        else:
            found.append(emit("duration_unreadable" if draft.duration_unreadable else "duration_unknown", draft,
                              max_days=limit))
    return found


def rule_out_first(view: PatientView, drafts, knowledge: Knowledge, emit) -> list[Finding]:
    """Gabapentin or carbamazepine (and pregabalin, its relative) for twitching or cramp while the
    work-up is incomplete or abnormal (S0 Screen for Secondary Causes; S4 tests): the open work-up
    items and the out-of-range results, from the patient-view rules themselves."""
    chosen = [d for d in drafts if d.has_class(TREATMENT) and _for_index_symptom(d, view, knowledge)]
    if not chosen:
        return []
    workup = [f for rule in RULES if rule.rule_id in WORKUP_RULES for f in rule.run(view, knowledge)]
    abnormal = [f for rule in RULES if rule.rule_id in RESULT_RULES for f in rule.run(view, knowledge)]
    if not workup and not abnormal:
        return []  # complete and normal: the treatment may go ahead (the chart card covers the rest)
    return [emit("workup_open", *chosen, workup=tuple(workup), abnormal=tuple(abnormal))]


def carbamazepine_in_pregnancy(view: PatientView, drafts, knowledge: Knowledge, emit) -> list[Finding]:
    """A teratogenic ingredient (carbamazepine) ordered when the chart records a pregnancy, or a
    suspected one (E20; clinical.md §1.6 pregnancy row). Whatever the order is for."""
    if not (view.pregnant or view.pregnancy_possible):
        return []
    teratogens = knowledge.prescribing.teratogenic_ingredients
    chosen = [d for d in drafts if teratogens.intersection(d.ingredients)]
    return [emit("pregnant" if view.pregnant else "pregnancy_possible", draft, evidence=view.pregnancy_evidence)
            for draft in chosen]


def provoking(drug_class: str) -> PrescribingFunction:
    """Starting a medicine of ``drug_class`` that provokes cramp or twitching in a patient who has cramp or
    twitching, or a low potassium or magnesium: a note, with the monitoring the class calls for
    (settings.yaml prescribing.provoking_classes). A class already current on the chart is not being
    started (the chart card reviews it); a corticosteroid counts at a high dose, or when its dose is unknown."""

    def rule(view: PatientView, drafts, knowledge: Knowledge, emit) -> list[Finding]:
        if drug_class not in knowledge.prescribing.provoking_classes or view.current_in_class(drug_class):
            return []
        chosen = [d for d in drafts if d.has_class(drug_class)]
        if drug_class == STEROID:
            high = knowledge.thresholds.steroid_high_dose_prednisone_mg_per_day
            chosen = [d for d in chosen if d.prednisone_equivalent_mg is None or d.prednisone_equivalent_mg >= high]
        if not chosen:
            return []
        symptoms = _index_symptoms(view)
        low = tuple(result for analyte in knowledge.prescribing.low_analytes
                    if (result := fresh(view, knowledge, analyte)) is not None and result.direction == "low")
        if not symptoms and not low:
            return []
        return [emit(drug_class, draft, *symptoms, *low, symptoms=bool(symptoms),
                     low=tuple(result.analyte for result in low)) for draft in chosen]

    rule.__name__ = f"starting_{drug_class}"
    return rule


PRESCRIBING_RULES: tuple[PrescribingRule, ...] = (
    PrescribingRule("RX1", RX_QUININE, "E7 FDA 2010 (US); E8 MHRA 2014/2017 and E9 NICE CKS (UK); E6 AAN 2010",
                    quinine),
    PrescribingRule("RX2", RX_CYCLOBENZAPRINE, "S0 Muscle Relaxants: Limited Role", cyclobenzaprine),
    PrescribingRule("RX3", RX_RULE_OUT_FIRST, "S0 Screen for Secondary Causes; S4 What tests should I do?; E3; E2",
                    rule_out_first),
    PrescribingRule("RX4", RX_CARBAMAZEPINE_PREGNANCY, "E20 carbamazepine label (pregnancy); E16; clinical.md 1.6",
                    carbamazepine_in_pregnancy),
    PrescribingRule("RX5", RX_PROVOKING_MEDICINE, "S4 What questions should I ask? (diuretics); E10; E9",
                    provoking("diuretic")),
    PrescribingRule("RX6", RX_PROVOKING_MEDICINE, "S4 What questions should I ask? (methylphenidate); E15",
                    provoking("stimulant")),
    PrescribingRule("RX7", RX_PROVOKING_MEDICINE, "S0 Screen for Secondary Causes (high-dose corticosteroids); E5",
                    provoking(STEROID)),
    PrescribingRule("RX8", RX_PROVOKING_MEDICINE, "E9 NICE CKS (salbutamol); E10 (long-acting beta-2 agonists); E15",
                    provoking("beta2_agonist")),
)


def run_prescribing_rules(view: PatientView, drafts: tuple[DraftMedication, ...], knowledge: Knowledge,
                          rules: tuple[PrescribingRule, ...] = PRESCRIBING_RULES) -> list[Finding]:
    return [found for rule in rules for found in rule.run(view, drafts, knowledge)]
