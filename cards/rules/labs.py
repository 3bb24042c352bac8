"""Abnormal results (clinical.md W6-W8; issue 13 item 1): every work-up result outside its range.

Each result is judged against its range for this patient: the laboratory's interpretation flag, then the
Observation's reference range (for the patient's sex when the laboratory gives one per sex), then the
default range in labs.yaml. Only results inside their look-back window count (rules/windows.py); older
ones are history, shown on the work-up card with a request to repeat them. How each abnormality is
shown (warning or note) is data: labs.yaml `out_of_range`. A CK at 3x the upper limit or more is a red
flag (RF8) and is shown on the referral card only, never on two warning cards (issue 13 item 14).
"""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.knowledge_labs import CALCIUM_ANALYTES, analyte_group
from cards.rules.base import Emit
from cards.rules.windows import fresh
from cards.view import LabResult, PatientView

OUT = ("low", "high")


def direction(result: LabResult | None) -> str | None:
    """low | high | normal, or None when nothing says."""
    return None if result is None else result.direction


def ck_ratio(ck: LabResult | None) -> float | None:
    """CK as a multiple of the upper limit of normal; None when unknown or flagged normal."""
    if ck is None or not ck.high or ck.interpretation == "normal":
        return None
    return round(ck.value / ck.high, 1)


def _out_of_range(view: PatientView, knowledge: Knowledge, emit: Emit, analyte: str) -> list[Finding]:
    result = fresh(view, knowledge, analyte)
    side = direction(result)
    level = knowledge.out_of_range.get((analyte_group(analyte), side)) if side in OUT else None
    return [emit(f"{side}_{analyte}", result, level=level)] if level else []


def potassium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _out_of_range(view, knowledge, emit, "potassium")


def magnesium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _out_of_range(view, knowledge, emit, "magnesium")


def sodium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _out_of_range(view, knowledge, emit, "sodium")


def renal_function(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """Urea, creatinine and (when reported) eGFR: renal impairment is a metabolic cause of cramp (S4, E9)."""
    return [found for analyte in ("urea", "creatinine", "egfr") for found in _out_of_range(view, knowledge, emit, analyte)]


def latest_calcium(view: PatientView, knowledge: Knowledge) -> LabResult | None:
    candidates = [result for name in CALCIUM_ANALYTES if (result := fresh(view, knowledge, name)) is not None]
    if not candidates:
        return None
    # max() keeps the first of equals, so the preference order (ionised, corrected, total) breaks date ties.
    return max(candidates, key=lambda result: result.effective.timestamp() if result.effective else 0)


def calcium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """The latest calcium of any kind; a total calcium with an albumin drawn within 7 days is corrected
    first, and the corrected value is compared with the range (the lab's flag describes the uncorrected)."""
    result = latest_calcium(view, knowledge)
    if result is None:
        return []
    albumin = _albumin_near(view, result, knowledge) if result.analyte == "calcium_total" else None
    params = {}
    if albumin is None:
        side = direction(result)
    else:
        settings = knowledge.thresholds
        corrected = result.value + settings.albumin_correction_mmol_per_g * (
            settings.albumin_reference_g_per_l - albumin.value)
        side = result.compare(corrected)
        params = {"corrected": round(corrected, 2), "albumin": round(albumin.value)}
    level = knowledge.out_of_range.get(("calcium", side)) if side in OUT else None
    if not level:
        return []
    data = (result, albumin) if albumin is not None else (result,)
    return [emit(f"{side}_calcium", *data, level=level, **params)]


def _albumin_near(view: PatientView, calcium_result: LabResult, knowledge: Knowledge) -> LabResult | None:
    albumin = view.labs.get("albumin")
    if albumin is None or albumin.effective is None or calcium_result.effective is None:
        return None
    gap_days = abs((albumin.effective - calcium_result.effective).total_seconds()) / 86400
    return albumin if gap_days <= knowledge.thresholds.albumin_max_gap_days else None


def thyroid(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """TSH either way, read with a free T4 drawn within 30 days; a free T4 out of range beside a normal (or
    no) TSH is a note of its own (issue 13 item 1: TSH and free T4 either way)."""
    tsh = fresh(view, knowledge, "tsh")
    free_t4 = _paired_free_t4(view, tsh, knowledge)
    tsh_side, t4_side = direction(tsh), direction(free_t4)
    if tsh_side not in OUT and free_t4 is None:  # a free T4 drawn apart from the TSH still counts on its own
        free_t4 = fresh(view, knowledge, "free_t4")
        t4_side = direction(free_t4)
    if tsh_side in OUT:
        if tsh_side == "low":
            kind = {"high": "low_tsh_overt", None: "low_tsh_unpaired"}.get(t4_side, "low_tsh_subclinical")
        else:
            kind = "high_tsh_overt" if t4_side == "low" else "high_tsh"
        data = (tsh, free_t4) if free_t4 is not None else (tsh,)
        return [emit(kind, *data, level=knowledge.out_of_range[("tsh", tsh_side)])]
    if t4_side in OUT and ("free_t4", t4_side) in knowledge.out_of_range:
        data = (free_t4, tsh) if tsh is not None else (free_t4,)
        return [emit(f"{t4_side}_free_t4", *data, level=knowledge.out_of_range[("free_t4", t4_side)])]
    return []


def _paired_free_t4(view: PatientView, tsh: LabResult | None, knowledge: Knowledge) -> LabResult | None:
    free_t4 = fresh(view, knowledge, "free_t4")
    if free_t4 is None or tsh is None:
        return free_t4
    if free_t4.effective is None or tsh.effective is None:
        return None
    gap_days = abs((free_t4.effective - tsh.effective).total_seconds()) / 86400
    return free_t4 if gap_days <= knowledge.thresholds.thyroid_pair_max_gap_days else None


def ck(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    """CK above 1.5x ULN and below the red-flag multiple (E11); a low CK as a note. Up to 1.5x is a trivial
    rise (S4) and blocks nothing: the reassurance card names it as such. At 3x or more: RF8 only."""
    result = fresh(view, knowledge, "ck")
    side = direction(result)
    if side == "low":
        return [emit("low_ck", result, level=knowledge.out_of_range[("ck", "low")])]
    ratio = ck_ratio(result)
    if side != "high" or ratio is None:
        return []
    settings = knowledge.thresholds
    if not settings.ck_abnormal_ratio_above * result.high < result.value < settings.ck_red_flag_ratio_at_least * result.high:
        return []
    return [emit("raised_ck", result, ratio=ratio, level=knowledge.out_of_range[("ck", "high")])]
