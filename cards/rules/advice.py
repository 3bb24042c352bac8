"""Advice cards: reassurance, treatment options, cramp care, compression, health anxiety, differentials.

The reassurance rule fires whenever an index symptom is present; precedence (cards/precedence.py)
removes it when a red flag, an abnormal result or an incomplete work-up is also found.
"""
from __future__ import annotations

from cards.calendar import months_before
from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.rules.workup import complete_results
from cards.view import CONDITIONS, FINDINGS, LABS, MEDICATIONS, PATIENT, PatientView

DIFFERENTIAL_CARDS = ("myokymia", "blepharospasm", "hemifacial_spasm", "restless_legs")
# What reassurance says is normal or absent: no red flag (problem list, findings), a normal work-up
# (results; the medicines decide which results and how fresh), and an adult (the patient).
REASSURANCE_DEPENDS_ON = (PATIENT, CONDITIONS, FINDINGS, LABS, MEDICATIONS)


def reassurance(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Fires for an index symptom on complete data; precedence removes it beside a red flag, an
    abnormal result, an incomplete work-up or a data gap."""
    if view.incomplete(*REASSURANCE_DEPENDS_ON):
        return []  # never reassure on data that could not be seen (the data-gap card says what)
    symptoms = view.findings_in("index")
    return [emit("reassurance", *symptoms, *complete_results(view, knowledge),
                 health_anxiety=view.has("health_anxiety"))]


def treatment_options(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Persistent, bothersome fasciculation (moderate/severe, or older than the persistence window)."""
    if view.pregnant:
        return []  # clinical.md §1.6: no gabapentin/carbamazepine text in pregnancy
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
    return [emit("persistent", *(symptom for symptom, _ in qualifying),
                 reasons=tuple(reason for _, reason in qualifying), months=months, cramps=bool(cramps))]


def cramp_management(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    cramps = view.findings_of("muscle_cramp")
    if not cramps:
        return []
    diuretics = view.current_in_class("diuretic")
    return [emit("pregnancy" if view.pregnant else "default", *cramps, *diuretics)]


def compression(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    abi = view.abi
    threshold = knowledge.thresholds.abi_avoid_compression_below
    if abi is not None:
        return [emit("low_abi", abi, threshold=threshold)] if abi.value < threshold else []
    arterial = view.findings_of("peripheral_arterial_disease")
    if not arterial:
        return []
    # "No ABI on file" is only true when the findings and results could all be read.
    kind = "no_abi_unseen" if view.incomplete(FINDINGS, LABS) else "no_abi"
    return [emit(kind, *arterial, threshold=threshold)]


def health_anxiety(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    found = view.findings_of("health_anxiety")
    return [emit("health_anxiety", *found)] if found else []


def differentials(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return [emit(concept, *view.findings_of(concept)) for concept in DIFFERENTIAL_CARDS if view.has(concept)]
