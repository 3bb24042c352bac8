"""Medicines that provoke twitching or cramp (clinical.md §1.5), and the medicine-specific cautions."""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.view import PatientView

STEROID = "systemic_corticosteroid"


def _current_class(drug_class: str):
    def rule(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
        return [emit(drug_class, medication) for medication in view.current_in_class(drug_class)]

    rule.__name__ = f"current_{drug_class}"
    rule.__doc__ = f"Every current medicine of class {drug_class!r}."
    return rule


diuretics = _current_class("diuretic")
stimulants = _current_class("stimulant")
beta2_agonists = _current_class("beta2_agonist")
cholinesterase_inhibitors = _current_class("cholinesterase_inhibitor")
quinine = _current_class("quinine")
cyclobenzaprine = _current_class("cyclobenzaprine")


def corticosteroids(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """High-dose systemic corticosteroid, or one tapered or stopped within the taper window (S0, E5)."""
    settings = knowledge.thresholds
    findings = [emit("systemic_corticosteroid_taper", medication, days=settings.steroid_taper_window_days)
                for medication in view.steroid_taper_or_stop]
    for medication in view.current_in_class(STEROID):
        if medication not in view.steroid_taper_or_stop and \
                (medication.prednisone_equivalent_mg or 0) >= settings.steroid_high_dose_prednisone_mg_per_day:
            findings.append(emit("systemic_corticosteroid_high_dose", medication,
                                 dose=round(medication.prednisone_equivalent_mg)))
    return findings
