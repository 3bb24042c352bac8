"""Red flags (clinical.md §1.2): features that need a neurology opinion rather than reassurance."""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.rules.labs import ck_ratio
from cards.view import PatientView



def bulbar_concepts(knowledge: Knowledge) -> tuple[str, ...]:
    """Concepts flagged `bulbar: true` in findings.yaml (swallowing, speech, breathing)."""
    return tuple(key for key, concept in knowledge.concepts.items() if concept.bulbar)


def weakness(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("weakness")
    return [emit("weakness", *found)] if found else []


def wasting(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("wasting")
    return [emit("wasting", *found)] if found else []


def florid_fasciculation(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    fasciculations = view.findings_of("fasciculation")
    severe = [finding for finding in fasciculations if finding.severity == "severe"]
    if severe:
        return [emit("florid_severe", *severe)]
    sites = {site for finding in fasciculations for site in finding.body_sites}
    if len(sites) >= knowledge.thresholds.florid_fasciculation_min_body_sites:
        return [emit("florid_sites", *fasciculations, count=len(sites))]
    return []


def severe_cramp(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    severe = [finding for finding in view.findings_of("muscle_cramp") if finding.severity == "severe"]
    if not severe:
        return []
    fasciculations = view.findings_of("fasciculation")
    if fasciculations:
        return [emit("severe_cramp_with_fasciculation", *severe, *fasciculations)]
    return [emit("severe_cramp", *severe)]


def bulbar_or_respiratory(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    results = []
    for concept in bulbar_concepts(knowledge):
        exceptions = knowledge.concepts[concept].unless_present
        found = view.findings_of(concept)
        if found and not any(view.has(other) for other in exceptions):
            results.append(emit("bulbar", *found, critical=True))
    tongue = [finding for finding in view.findings_of("fasciculation") if finding.tongue]
    if tongue:
        results.append(emit("tongue_fasciculation", *tongue, critical=True))
    return results


def myotonia(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("myotonia")
    return [emit("myotonia", *found)] if found else []


def myokymia_with_other_symptoms(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    myokymia = view.findings_of("myokymia")
    others = view.findings_of("other_neurological_symptom", "weakness", "wasting", "myotonia",
                              *bulbar_concepts(knowledge))
    return [emit("myokymia_with_other", *myokymia, *others)] if myokymia and others else []


def ck_red_flag(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    ck = view.labs.get("ck")
    ratio = ck_ratio(ck)
    if ratio is None or ck.value < knowledge.thresholds.ck_red_flag_ratio_at_least * ck.high:
        return []
    return [emit("ck_red_flag", ck, ratio=ratio)]


def known_motor_neuron_disease(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("motor_neuron_disease")
    return [emit("known_mnd", *found)] if found else []
