"""The compiled, read-only shape of the clinical knowledge that rules and builders consult."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

CodeKey = tuple[str, str]  # (short system name, code), e.g. ("loinc", "2823-3")


@dataclass(frozen=True)
class Thresholds:
    adult_age_years: int
    lookback_default_months: int
    lookback_short_months: int
    lookback_shortening_trigger_months: int
    lookback_short_analytes: frozenset[str]
    lookback_short_trigger_classes: frozenset[str]
    steroid_high_dose_prednisone_mg_per_day: float
    steroid_taper_window_days: int
    ck_abnormal_ratio_above: float
    ck_red_flag_ratio_at_least: float
    abi_avoid_compression_below: float
    florid_fasciculation_min_body_sites: int
    persistent_symptom_months: int
    reassurance_repeat_window_days: int
    albumin_reference_g_per_l: float
    albumin_correction_mmol_per_g: float
    albumin_max_gap_days: int
    thyroid_pair_max_gap_days: int


@dataclass(frozen=True)
class Concept:
    key: str
    group: str
    recency_months: float | None
    recency_applies_when_active: bool
    observation: bool
    bulbar: bool
    unless_present: tuple[str, ...]


@dataclass(frozen=True)
class Analyte:
    key: str
    canonical_unit: str
    decimals: int
    default_range: tuple[float | None, float | None] | None
    default_range_by_sex: Mapping[str, tuple[float | None, float | None]]
    unitless: bool


@dataclass(frozen=True)
class LabCode:
    analyte: str
    code: str
    units: Mapping[str, float]  # UCUM code -> factor to the analyte's canonical unit


@dataclass(frozen=True)
class Order:
    key: str
    coding: Mapping[str, str]  # FHIR Coding JSON for the ServiceRequest
    components: tuple[tuple[str, ...], ...]
    covered_by: frozenset[CodeKey]  # this order's own code plus orders that include it


@dataclass(frozen=True)
class Ingredient:
    key: str
    drug_class: str
    subclass: str | None
    prednisone_factor: float | None


@dataclass(frozen=True)
class Knowledge:
    version: str
    thresholds: Thresholds
    system_by_uri: Mapping[str, str]
    uri_by_system: Mapping[str, str]
    # findings
    concepts: Mapping[str, Concept]
    concept_by_code: Mapping[CodeKey, str]
    concept_prefixes: Mapping[str, tuple[tuple[str, str], ...]]
    severity_by_code: Mapping[CodeKey, str]
    tongue_codes: frozenset[CodeKey]
    tongue_words: re.Pattern[str]
    negative_codes: frozenset[CodeKey]
    negative_words: re.Pattern[str]
    pregnancy_observation_codes: frozenset[CodeKey]
    pregnancy_positive_codes: frozenset[CodeKey]
    pregnancy_max_age_days: int
    referral_order_codes: frozenset[CodeKey]
    # labs
    analytes: Mapping[str, Analyte]
    lab_codes: Mapping[CodeKey, LabCode]
    unit_aliases: Mapping[str, str]
    orders: Mapping[str, Order]
    required_orders: tuple[str, ...]
    magnesium_classes: frozenset[str]
    lab_order_category: Mapping[str, str]
    referral_order_category: Mapping[str, str]
    referral_order_code: Mapping[str, str]
    # medications
    ingredients: Mapping[str, Ingredient]
    ingredients_by_rxnorm: Mapping[str, tuple[str, ...]]
    ingredients_by_atc: Mapping[str, tuple[str, ...]]
    product_strength_mg: Mapping[str, float]
    medicine_names: re.Pattern[str]
    ingredient_by_name: Mapping[str, str]
    local_route_codes: frozenset[CodeKey]
    local_atc_prefixes: tuple[str, ...]
    local_words: re.Pattern[str]
    unit_dose_words: frozenset[str]
    timing_per_day: Mapping[str, float]
    # texts and the prefetch code lists
    texts: Mapping[str, Any]
    lab_loinc_codes: tuple[str, ...]
    finding_codes: tuple[str, ...]
    # Codes (upper case, dots removed, any system) of the trigger concepts: the index symptoms and the
    # differentials. A chart none of whose codes is among them gets no card (view_builder.may_trigger).
    trigger_codes: frozenset[str]
    trigger_code_prefixes: tuple[str, ...]

    def system_of(self, uri: Any) -> str | None:
        return self.system_by_uri.get(uri) if isinstance(uri, str) else None


TRIGGER_GROUPS = frozenset({"index", "differential"})  # without a finding of these groups no rule runs


def bare_code(code: str) -> str:
    """A code compared without case, surrounding space or dots (ICD-10 is written both ways)."""
    return code.strip().upper().replace(".", "")


class KnowledgeError(RuntimeError):
    """The knowledge files are missing or inconsistent; the message names the file and key."""


def normalise_text(text: str) -> str:
    """Lower case, accents stripped, every run of non-alphanumerics a single space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).lower()
    return " ".join(re.findall(r"[a-z0-9{}]+", plain))
