"""The compiled, read-only shape of the clinical knowledge that rules and builders consult."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

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
    max_cards: int


@dataclass(frozen=True)
class Prescribing:
    """settings.yaml `prescribing`: what the order-select / order-sign rules read (cards/rules/prescribing.py)."""

    cyclobenzaprine_max_days: int
    teratogenic_ingredients: frozenset[str]
    provoking_classes: Mapping[str, tuple[str, ...]]  # medicine class -> work-up orders that monitor it
    low_analytes: tuple[str, ...]


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
    # unit spelling met in data -> factor (None: unknown), filled by chart.units as spellings are met
    conversions: dict[str, float | None] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Order:
    key: str
    coding: Mapping[str, str]  # FHIR Coding JSON for the ServiceRequest
    components: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Ingredient:
    key: str
    drug_class: str
    subclass: str | None
    prednisone_factor: float | None


@dataclass(frozen=True)
class ClassOnlyCode:
    """A combination ATC code whose name gives a class, not an ingredient ("lisinopril and diuretics")."""

    classes: tuple[str, ...]
    display: str


@dataclass(frozen=True)
class Knowledge:
    version: str
    thresholds: Thresholds
    system_by_uri: Mapping[str, str]
    uri_by_system: Mapping[str, str]
    # findings
    concepts: Mapping[str, Concept]
    concept_by_code: Mapping[CodeKey, str]  # ICD-10 "and below" entries expanded (icd_descendants.json)
    severity_by_code: Mapping[CodeKey, str]
    tongue_codes: frozenset[CodeKey]
    tongue_words: re.Pattern[str]
    negative_codes: frozenset[CodeKey]
    negative_words: re.Pattern[str]
    pregnancy_observation_codes: frozenset[CodeKey]
    pregnancy_positive_codes: frozenset[CodeKey]
    pregnancy_max_age_days: int
    referral_order_codes: frozenset[CodeKey]
    text_cues: Any  # knowledge_findings.TextCues: negation, "widespread", body regions
    # labs
    analytes: Mapping[str, Analyte]
    lab_codes: Mapping[CodeKey, LabCode]
    panel_codes: frozenset[CodeKey]
    unit_aliases: Mapping[str, str]
    orders: Mapping[str, Order]
    # order_codes.yaml: what an active order covers, by code and by whole-word name
    order_covers_by_code: Mapping[CodeKey, frozenset[str]]
    order_names: re.Pattern[str]
    order_covers_by_name: Mapping[str, frozenset[str]]
    required_orders: tuple[str, ...]
    order_neutral_words: frozenset[str]  # words an order's text may hold besides a test name
    order_sets: Mapping[str, Mapping[str, str]]  # locale -> work-up order -> orderable suggested for it
    orderable_covers: Mapping[str, frozenset[str]]  # orderable -> work-up orders it provides
    orderable_suggestions: Mapping[str, Mapping[str, Any]]  # orderable -> ServiceRequest.code JSON
    range_sex_codes: Mapping[CodeKey, str]  # referenceRange.appliesTo code -> male | female
    range_sex_words: Mapping[str, str]
    out_of_range: Mapping[tuple[str, str], str]  # (analyte group, low | high) -> warning | note
    magnesium_classes: frozenset[str]
    lab_order_category: Mapping[str, str]
    referral_order_category: Mapping[str, str]
    referral_order_code: Mapping[str, str]
    # medications
    ingredients: Mapping[str, Ingredient]
    ingredients_by_rxnorm: Mapping[str, tuple[str, ...]]  # ingredient, clinical and branded drug codes
    ingredients_by_atc: Mapping[str, tuple[str, ...]]  # single-ingredient and combination ATC codes
    classes_by_atc: Mapping[str, ClassOnlyCode]  # combination ATC codes that name only a class
    product_strength_mg: Mapping[str, Mapping[str, float]]  # RxNorm product -> ingredient -> mg per unit dose
    medicine_names: re.Pattern[str]
    ingredients_by_name: Mapping[str, tuple[str, ...]]  # generic names, synonyms and brand names
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
    # differentials. A chart none of whose codes is among them gets no card (chart.reader.may_trigger).
    trigger_codes: frozenset[str]
    prescribing: Prescribing

    def system_of(self, uri: Any) -> str | None:
        """The short name of a code-system URI, matched by meaning (case, http/https, trailing slash)."""
        if type(uri) is not str:
            return None
        found = self.system_by_uri.get(uri)
        if found is None and uri:
            found = self.system_by_uri.get(normalise_uri(uri))
        return found


def normalise_uri(uri: str) -> str:
    """A code-system URI compared by meaning: no surrounding space, case, scheme variant or final slash."""
    text = uri.strip().lower()
    if text.startswith("https://"):
        text = "http://" + text[8:]
    return text.rstrip("/")


TRIGGER_GROUPS = frozenset({"index", "differential"})  # without a finding of these groups no rule runs


def bare_code(code: str) -> str:
    """A code compared without case, surrounding space or dots (ICD-10 is written both ways)."""
    return code.strip().upper().replace(".", "")


ICD_SYSTEMS = frozenset({"icd10cm", "icd10"})


def dotted_icd(code: str) -> str:
    """An ICD-10 code as the code lists write it: upper case, dot after the category (R253 -> R25.3)."""
    code = code.strip().upper()
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and "." not in code else code


class Checks(Protocol):
    """What the per-file compilers need from the knowledge compiler: its checks."""

    def require(self, condition: bool, file: str, path: str, message: str) -> None: ...

    def key(self, file: str, path: str, entry: Mapping[str, Any]) -> CodeKey: ...


class KnowledgeError(RuntimeError):
    """The knowledge files are missing or inconsistent; the message names the file and key."""


def normalise_text(text: str) -> str:
    """Lower case, accents stripped, every run of non-alphanumerics a single space."""
    if text.isascii():  # NFKD leaves ASCII as it is and no ASCII character is combining: nothing to strip
        plain = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        plain = "".join(char for char in decomposed if not unicodedata.combining(char)).lower()
    return " ".join(re.findall(r"[a-z0-9{}]+", plain))
