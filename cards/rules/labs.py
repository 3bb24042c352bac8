"""Abnormal results (clinical.md W6-W8): secondary causes to treat before calling twitching benign.

Threshold precedence (W8): the laboratory's interpretation flag, then the Observation's reference
range (normalised to the canonical unit), then the default range in labs.yaml.
"""
from __future__ import annotations

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.rules.base import Emit
from cards.view import LabResult, PatientView

CALCIUM_ANALYTES = ("calcium_ionised", "calcium_corrected", "calcium_total")  # preference on equal dates


def direction(result: LabResult | None) -> str | None:
    """low | high | normal, or None when nothing says."""
    if result is None:
        return None
    if result.interpretation is not None:
        return result.interpretation
    return compare_to_range(result.value, result)


def compare_to_range(value: float, result: LabResult) -> str | None:
    if result.low is None and result.high is None:
        return None
    if result.low is not None and value < result.low:
        return "low"
    if result.high is not None and value > result.high:
        return "high"
    return "normal"


def ck_ratio(ck: LabResult | None) -> float | None:
    """CK as a multiple of the upper limit of normal; None when unknown or flagged normal."""
    if ck is None or not ck.high or ck.interpretation == "normal":
        return None
    return round(ck.value / ck.high, 1)


def _low(view: PatientView, analyte: str, kind: str, emit: Emit) -> list[Finding]:
    result = view.labs.get(analyte)
    return [emit(kind, result)] if direction(result) == "low" else []


def low_potassium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _low(view, "potassium", "low_potassium", emit)


def low_magnesium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _low(view, "magnesium", "low_magnesium", emit)


def low_sodium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    return _low(view, "sodium", "low_sodium", emit)


def latest_calcium(view: PatientView) -> LabResult | None:
    candidates = [view.labs[name] for name in CALCIUM_ANALYTES if name in view.labs]
    if not candidates:
        return None
    # max() keeps the first of equals, so the preference order above breaks date ties.
    return max(candidates, key=lambda result: result.effective.timestamp() if result.effective else 0)


def low_calcium(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    calcium = latest_calcium(view)
    if calcium is None:
        return []
    if calcium.analyte != "calcium_total":
        return [emit("low_calcium", calcium)] if direction(calcium) == "low" else []
    albumin = _albumin_near(view, calcium, knowledge)
    if albumin is None:
        return [emit("low_calcium", calcium)] if direction(calcium) == "low" else []
    # The laboratory's flag describes the uncorrected total, so the corrected value is compared
    # with the range instead.
    settings = knowledge.thresholds
    corrected = calcium.value + settings.albumin_correction_mmol_per_g * (settings.albumin_reference_g_per_l - albumin.value)
    if compare_to_range(corrected, calcium) == "low":
        return [emit("low_calcium", calcium, albumin, corrected=round(corrected, 2), albumin=round(albumin.value))]
    return []


def _albumin_near(view: PatientView, calcium: LabResult, knowledge: Knowledge) -> LabResult | None:
    albumin = view.labs.get("albumin")
    if albumin is None or albumin.effective is None or calcium.effective is None:
        return None
    gap_days = abs((albumin.effective - calcium.effective).total_seconds()) / 86400
    return albumin if gap_days <= knowledge.thresholds.albumin_max_gap_days else None


def thyroid(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    tsh = view.labs.get("tsh")
    tsh_direction = direction(tsh)
    if tsh_direction not in ("low", "high"):
        return []
    free_t4 = _paired_free_t4(view, tsh, knowledge)
    t4_direction = direction(free_t4)
    if tsh_direction == "low":
        kind = {"high": "low_tsh_overt", None: "low_tsh_unpaired"}.get(t4_direction, "low_tsh_subclinical")
    else:
        kind = "high_tsh_overt" if t4_direction == "low" else "high_tsh"
    data = (tsh, free_t4) if free_t4 is not None else (tsh,)
    return [emit(kind, *data)]


def _paired_free_t4(view: PatientView, tsh: LabResult, knowledge: Knowledge) -> LabResult | None:
    free_t4 = view.labs.get("free_t4")
    if free_t4 is None or free_t4.effective is None or tsh.effective is None:
        return None
    gap_days = abs((free_t4.effective - tsh.effective).total_seconds()) / 86400
    return free_t4 if gap_days <= knowledge.thresholds.thyroid_pair_max_gap_days else None


def raised_ck(view: PatientView, knowledge: Knowledge, emit: Emit) -> list[Finding]:
    ck = view.labs.get("ck")
    ratio = ck_ratio(ck)
    if ratio is None or not ck.value > knowledge.thresholds.ck_abnormal_ratio_above * ck.high:
        return []
    red_flag = ck.value >= knowledge.thresholds.ck_red_flag_ratio_at_least * ck.high
    return [emit("raised_ck", ck, ratio=ratio, red_flag=red_flag)]
