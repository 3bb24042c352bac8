"""Advice cards: reassurance, treatment options, cramp care, compression, health anxiety, differentials.

The reassurance rule fires whenever an index symptom is present; precedence (cards/precedence.py)
removes it when a red flag, an abnormal result or an incomplete work-up is also found.

Suspected is never diagnosed (issue 13 item 2): a suspected pregnancy withholds every drug option as a
pregnancy would, but is called "possible"; a suspected health anxiety changes no advice.
"""
from __future__ import annotations

from cards.calendar import months_before
from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.rules.windows import fresh
from cards.rules.workup import complete_results
from cards.view import CONDITIONS, FINDINGS, LABS, MEDICATIONS, PATIENT, PatientView

DIFFERENTIAL_CARDS = ("myokymia", "blepharospasm", "hemifacial_spasm", "restless_legs")
TREATMENTS = "fasciculation_treatment"
# What reassurance says is normal or absent: no red flag (problem list, findings), a normal work-up
# (results; the medicines decide which results and how fresh), and an adult (the patient).
REASSURANCE_DEPENDS_ON = (PATIENT, CONDITIONS, FINDINGS, LABS, MEDICATIONS)


def reassurance(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Fires for an index symptom on complete data; precedence removes it beside a red flag, an
    abnormal result, an incomplete work-up or a data gap. A CK up to 1.5x the upper limit is a trivial
    rise (S4, E11): reassurance stands, and the card names it rather than calling the work-up normal."""
    if view.incomplete(*REASSURANCE_DEPENDS_ON):
        return []  # never reassure on data that could not be seen (the data-gap card says what)
    symptoms = view.findings_in("index")
    ck = fresh(view, knowledge, "ck")
    trivial_ck = ck is not None and ck.direction == "high"
    return [emit("reassurance", *symptoms, *complete_results(view, knowledge),
                 health_anxiety=bool(view.confirmed_of("health_anxiety")), trivial_ck=trivial_ck)]


def treatment_options(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Persistent, bothersome fasciculation (moderate/severe, or older than the persistence window)."""
    if view.pregnant or view.pregnancy_possible:
        return []  # clinical.md §1.6: no gabapentin/carbamazepine text when pregnancy is possible
    fasciculations = view.findings_of("fasciculation")
    if not fasciculations:
        return []
    cramps = view.findings_of("muscle_cramp")
    months = knowledge.thresholds.persistent_symptom_months
    persistent_before = months_before(view.now, months)
    qualifying = []
    for symptom in (*fasciculations, *cramps):
        if symptom.severity in ("moderate", "severe"):
            qualifying.append((symptom, "severity"))
        elif symptom.started is not None and symptom.started < persistent_before:
            qualifying.append((symptom, "duration"))
    if not qualifying:
        return []
    # Already on one of the options (issue 13 item 10): never offered as new; its benefit is reviewed.
    current = view.current_in_class(TREATMENTS)
    return [emit("already_treated" if current else "persistent", *(symptom for symptom, _ in qualifying), *current,
                 reasons=tuple(reason for _, reason in qualifying), months=months, cramps=bool(cramps),
                 current=tuple(dict.fromkeys(name for m in current for name in m.ingredients)))]


def cramp_management(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Cramp care outside pregnancy: stretches, less diuretic or caffeine, modest drug options (S4, E6)."""
    cramps = view.findings_of("muscle_cramp")
    if not cramps or view.pregnant or view.pregnancy_possible:
        return []
    return [emit("default", *cramps, *view.current_in_class("diuretic"))]


def cramp_in_pregnancy(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Cramp with a pregnancy on file, current or recent (or only suspected): no quinine or diltiazem, no
    drug options at all; magnesium, calcium or non-drug measures (E16)."""
    cramps = view.findings_of("muscle_cramp")
    if not cramps or not (view.pregnant or view.pregnancy_possible):
        return []
    # The card lists the pregnancy evidence it relies on: the records (confirmed ones, or the suspected ones
    # when nothing confirms it) and a pregnancy-status result known only by its reference.
    records = view.confirmed_of("pregnancy") if view.pregnant else view.findings_of("pregnancy")
    shown = {record.evidence for record in records}
    results = tuple(ref for ref in view.pregnancy_evidence if ref not in shown and ref.startswith("Observation"))
    return [emit("pregnancy" if view.pregnant else "pregnancy_possible", *cramps, *records,
                 *view.current_in_class("diuretic"), pregnancy_results=results)]


def compression(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    abi = view.abi
    threshold = knowledge.thresholds.abi_avoid_compression_below
    if abi is not None:
        return [emit("low_abi", abi, threshold=threshold)] if abi.value < threshold else []
    arterial = view.findings_of("peripheral_arterial_disease")  # suspected counts: compression is the risk
    if not arterial:
        return []
    # "No ABI on file" is only true when the findings and results could all be read.
    kind = "no_abi_unseen" if view.incomplete(FINDINGS, LABS) else "no_abi"
    return [emit(kind, *arterial, threshold=threshold)]


def health_anxiety(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.confirmed_of("health_anxiety")  # a suspected label changes no advice
    return [emit("health_anxiety", *found)] if found else []


def differentials(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return [emit(concept, *view.findings_of(concept)) for concept in DIFFERENTIAL_CARDS if view.has(concept)]
