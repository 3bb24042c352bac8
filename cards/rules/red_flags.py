"""Red flags (clinical.md §1.2): features that need a neurology opinion rather than reassurance."""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.rules.labs import ck_ratio
from cards.rules.windows import fresh
from cards.view import PatientView


def bulbar_concepts(knowledge: Knowledge) -> tuple[str, ...]:
    """Concepts flagged `bulbar: true` in findings.yaml (swallowing, speech, breathing)."""
    return tuple(key for key, concept in knowledge.concepts.items() if concept.bulbar)


def weakness(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Muscle weakness, focal (foot or wrist drop, paresis) included, and a hemiplegia or monoplegia recorded
    within the last 12 months (findings.yaml `paralysis`: a new deficit; older ones are established)."""
    found = [emit("weakness", *view.findings_of("weakness"))] if view.has("weakness") else []
    if view.has("paralysis"):
        found.append(emit("paralysis", *view.findings_of("paralysis")))
    return found


def wasting(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("wasting")
    return [emit("wasting", *found)] if found else []


def florid_fasciculation(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    fasciculations = view.findings_of("fasciculation")
    severe = [finding for finding in fasciculations if finding.severity == "severe"]
    if severe:
        return [emit("florid_severe", *severe)]
    said = [finding for finding in fasciculations if finding.widespread]
    if said:  # "generalised", "widespread" in the record, or a single whole-body site
        return [emit("florid_widespread", *said)]
    # Regions, not codings: left, right and "calf of leg" are one region (chart/sites.py).
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
        # Only a confirmed diagnosis explains a breathlessness away; a suspected one does not.
        if found and not any(view.confirmed_of(other) for other in exceptions):
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
    others = view.findings_of("other_neurological_symptom", "weakness", "paralysis", "wasting", "myotonia",
                              *bulbar_concepts(knowledge))
    return [emit("myokymia_with_other", *myokymia, *others)] if myokymia and others else []


def ck_red_flag(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """CK at or above 3x the upper limit (E11), inside its look-back window: an older one is history, shown on
    the work-up card with a request to repeat it (issue 13 item 9)."""
    ck = fresh(view, knowledge, "ck")
    ratio = ck_ratio(ck)
    threshold = knowledge.thresholds.ck_red_flag_ratio_at_least
    if ratio is None or ck.value < threshold * ck.high:
        return []
    return [emit("ck_red_flag", ck, ratio=ratio, threshold=threshold)]


def known_motor_neuron_disease(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """A confirmed MND/ALS: the specialist is involved. A suspected one (provisional, differential,
    unconfirmed) is a red flag: refer without delay (E13), never "already diagnosed" (issue 13 item 2)."""
    confirmed = view.confirmed_of("motor_neuron_disease")
    if confirmed:
        return [emit("known_mnd", *confirmed)]
    suspected = view.findings_of("motor_neuron_disease")
    return [emit("suspected_mnd", *suspected, critical=True)] if suspected else []
