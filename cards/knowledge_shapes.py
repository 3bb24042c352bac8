"""The declared shape of every knowledge file (see cards/schema.py for the notation)."""
from __future__ import annotations

from cards.schema import ANY_STR, LOCALES, NUMBER, AnyOf, Enum, ListOf, Localised, MapOf, Template

CODE = {"system": str, "code": str, "display?": str, "unconfirmed?": bool, "prefix?": bool, "note?": str}
LAB_CODE = {**CODE, "units?": MapOf(NUMBER, 1)}
PRODUCT_CODE = {**CODE, "strength_mg?": NUMBER}
RANGE = {"low?": NUMBER, "high?": NUMBER, "note?": str}

SETTINGS = {
    "knowledge_version": str,
    "systems": MapOf(str, 1),
    "system_aliases": MapOf(str),
    "thresholds": {
        "adult_age_years": NUMBER,
        "lookback_default_months": NUMBER,
        "lookback_short_months": NUMBER,
        "lookback_shortening_trigger_months": NUMBER,
        "lookback_short_analytes": ListOf(str),
        "lookback_short_trigger_classes": ListOf(str),
        "steroid_high_dose_prednisone_mg_per_day": NUMBER,
        "steroid_taper_window_days": NUMBER,
        "ck_abnormal_ratio_above": NUMBER,
        "ck_red_flag_ratio_at_least": NUMBER,
        "abi_avoid_compression_below": NUMBER,
        "florid_fasciculation_min_body_sites": NUMBER,
        "persistent_symptom_months": NUMBER,
        "reassurance_repeat_window_days": NUMBER,
        "albumin_reference_g_per_l": NUMBER,
        "albumin_correction_mmol_per_g": NUMBER,
        "albumin_max_gap_days": NUMBER,
        "thyroid_pair_max_gap_days": NUMBER,
        "max_cards": NUMBER,
    },
    "recency_policies": MapOf({"months?": NUMBER, "applies_when_active?": bool}, 1),
    "prescribing": {
        "cyclobenzaprine_max_days": NUMBER,
        "teratogenic_ingredients": ListOf(str, 1),
        "provoking_classes": MapOf(ListOf(str, 1), 1),
        "low_analytes": ListOf(str, 1),
    },
}

FINDINGS = {
    "concepts": MapOf({
        "group": Enum("index", "differential", "red_flag", "diagnosis", "context"),
        "recency": str,
        "observation?": bool,
        "bulbar?": bool,
        "unless_present?": ListOf(str),
        "codes": ListOf(CODE, 1),
    }, 1),
    "severity": ListOf({**CODE, "level": Enum("mild", "moderate", "severe")}, 1),
    "tongue_body_site": {"codes": ListOf(CODE), "words": ListOf(str)},
    "negative_values": {"codes": ListOf(CODE), "words": ListOf(str)},
    "negation": {"leading": ListOf(str, 1), "fillers": ListOf(str), "trailing": ListOf(str, 1), "breakers": ListOf(str)},
    "widespread": {"codes": ListOf(CODE), "words": ListOf(str, 1)},
    "body_regions": {
        "laterality": {"codes": ListOf(CODE), "words": ListOf(str)},
        "ignore_words": ListOf(str),
        "regions": MapOf({"words": ListOf(str, 1), "codes": ListOf(CODE)}, 1),
    },
    "pregnancy_status": {
        "observation_codes": ListOf(CODE, 1),
        "positive_values": ListOf(CODE, 1),
        "max_age_days": NUMBER,
    },
    "neurology_referral_orders": ListOf(CODE, 1),
}

LABS = {
    "unit_aliases": MapOf(str),
    "analytes": MapOf({
        "canonical_unit": str,
        "decimals": int,
        "units": MapOf(NUMBER, 1),
        "default_range?": RANGE,
        "default_range_by_sex?": MapOf(RANGE),
        "unitless?": bool,
        "codes": ListOf(LAB_CODE, 1),
    }, 1),
    "orders": MapOf({
        "code": CODE,
        "components": ListOf(ListOf(str, 1), 1),
    }, 1),
    "panels": ListOf(CODE),
    "reference_range_sex": MapOf({"codes": ListOf(CODE), "words": ListOf(str)}, 1),
    "out_of_range": MapOf(MapOf({"level": Enum("warning", "note"), "source": str}, 1), 1),
    "workup": {"required_orders": ListOf(str, 1), "magnesium_when_current_class": ListOf(str),
               "order_sets": MapOf(MapOf(str, 1), 1)},
    "lab_order_category": CODE,
    "referral_order_category": CODE,
    "referral_order_code": CODE,
}

MEDICATIONS = {
    "classes": ListOf(str, 1),
    "ingredients": MapOf({
        "class": str,
        "subclass?": str,
        "synonyms?": ListOf(str),
        "prednisone_equivalent_factor?": NUMBER,
        "codes": ListOf(CODE, 1),
        "products?": ListOf(PRODUCT_CODE),
    }, 1),
    "local_corticosteroid": {"route_codes": ListOf(CODE), "atc_prefixes": ListOf(CODE), "words": ListOf(str)},
    "unit_dose_words": ListOf(str),
    "timing_codes_per_day": MapOf(NUMBER),
}

DRUG_PRODUCTS = {
    "products": ListOf({**CODE, "tty": Enum("SCD", "SBD", "GPCK", "BPCK", "SCDF", "SBDF"),
                        "ingredients": MapOf(AnyOf(NUMBER, type(None)), 1), "other_ingredients?": ListOf(str),
                        "sources?": ListOf(str, 1)}),
    # `ingredients` may be empty when the ATC name gives only a class ("lisinopril and diuretics").
    "atc_combinations": ListOf({"system": Enum("atc"), "code": str, "display": str, "ingredients": ListOf(str),
                                "classes": ListOf(str, 1), "unconfirmed?": bool, "note?": str}),
    "brand_names": MapOf(ListOf(str, 1)),
}

SUGGEST = AnyOf({"system": str, "code": str, "display?": str}, {"text": str})
ORDER_CODES = {
    "neutral_words": ListOf(str),
    "orderables": MapOf({"display": str, "locales": ListOf(Enum(*LOCALES), 1), "analytes": ListOf(str, 1),
                         "covers": ListOf(str), "note?": str, "codes": ListOf(CODE), "names": ListOf(str),
                         "suggest?": SUGGEST}, 1),
}

# ---- texts.yaml -------------------------------------------------------------------------------------
TEXT = Template()
POINTS = Localised(ListOf(str, 1))


def _topic(summary: dict, **extra: object) -> dict:
    """Fields every card topic has, plus its own text blocks."""
    return {
        "display": str,
        "source": Localised(str),
        "links?": Localised(ListOf(str, 1)),
        "override_reasons": ListOf(str, 1),
        "summary": summary,
        **extra,
    }


TOPICS = {
    "neurology-referral": _topic(
        {"warning": TEXT, "warning_no_index": TEXT, "critical": TEXT, "critical_no_index": TEXT,
         "suspected_mnd": TEXT, "myokymia": TEXT, "already_referred": TEXT, "known_mnd": TEXT},
        red_flags={
            "weakness": TEXT, "paralysis": TEXT, "wasting": TEXT, "florid_severe": TEXT, "florid_widespread": TEXT,
            "florid_sites": Template("count"), "severe_cramp_with_fasciculation": TEXT, "severe_cramp": TEXT,
            "bulbar": TEXT, "tongue_fasciculation": TEXT, "myotonia": TEXT, "myokymia_with_other": TEXT,
            "ck_red_flag": Template("threshold"), "suspected_mnd": TEXT, "known_mnd": TEXT,
        },
        advice={"warning": TEXT, "critical": TEXT, "suspected_mnd": TEXT, "myokymia": TEXT, "ck": TEXT,
                "already_referred": Template("reference"), "known_mnd": TEXT,
                "known_mnd_referred": Template("reference")},
        suggestion={"label": TEXT, "label_urgent": TEXT, "description": TEXT, "note": Template("flags"),
                    "note_no_index": Template("flags"), "note_urgent": Template("flags"), "reason_urgent": TEXT},
    ),
    "workup-incomplete": _topic(
        {"missing": Template("tests"), "missing_generic": TEXT, "unseen": Template("tests"), "pending": TEXT,
         "unreadable": TEXT},
        intro=TEXT,
        status={
            "missing": Template("test"), "unseen": Template("test"), "stale": Template("test", "date", "months"),
            "stale_abnormal": Template("test", "result", "months"), "stale_red_flag": Template("test", "result", "months"),
            "unreadable": Template("test", "date", "reason"),
            "unusable": Template("test", "date"), "preliminary": Template("test", "date"),
            "ordered": Template("test", "reference"),
        },
        parts={
            "missing": Template("names"), "unseen": Template("names"), "stale": Template("names", "months", "date"),
            "unusable": Template("names", "date"), "unreadable": Template("names", "date", "reason"),
            "preliminary": Template("names", "date"), "present": Template("results"),
        },
        panel_line=Template("test", "parts"),
        included=Template("line", "orderable"),
        short_window=Template("tests", "months", "medicine", "date"),
        magnesium_reason=Template("medicine"),
        suggestion={"label": Template("test"), "description": Template("test_long")},
    ),
    "abnormal-result": _topic(
        {"one": Template("items"), "one_note": Template("items"), "many": Template("count", "items"), "generic": TEXT},
        item_names=MapOf(TEXT, 1),
        explanations=MapOf(TEXT, 1),
    ),
    "medication-review": _topic(
        {"one_need": Template("names"), "one_dose": Template("names"), "many": Template("count", "names"),
         "generic": TEXT, "steroid_taper": TEXT},
        review=MapOf(Enum("need", "dose"), 1),
        explanations={
            "diuretic": TEXT, "stimulant": TEXT, "systemic_corticosteroid_high_dose": Template("dose"),
            "systemic_corticosteroid_taper": Template("days"), "beta2_agonist": TEXT,
            "cholinesterase_inhibitor": TEXT,
        },
    ),
    "reassurance": _topic(
        {"full": Template("symptoms"), "trivial_ck": Template("symptoms"), "repeat": Template("date", "symptoms")},
        symptoms={key: TEXT for key in ("fasciculation", "both", "cramp", "myokymia", "myokymia_cramp")},
        common={"fasciculation": TEXT, "both": TEXT}, cramp_points=POINTS, myokymia_points=POINTS,
        points=POINTS, health_anxiety_point=TEXT, health_anxiety_points=POINTS, repeat_detail=Template("date"),
        complete_workup=TEXT,
    ),
    "treatment-options": _topic(
        {"default": Template("shows"), "already_treated": Template("shows", "names"),
         "already_treated_short": Template("shows")},
        shows={"severity": Template("name", "severity"), "duration": Template("name", "months")},
        reasons={"severity": Template("name", "severity"), "duration": Template("name", "date", "months")},
        points=POINTS, cramp_point=TEXT,
        already_points=Localised(ListOf(Template("names"), 1)),
    ),
    "cyclobenzaprine-not-indicated": _topic({"default": TEXT}, points=POINTS),
    "quinine-caution": _topic({"default": TEXT}, points=POINTS),
    "compression-caution": _topic(
        {"low_abi": Template("value", "threshold"), "no_abi": TEXT, "no_abi_unseen": TEXT},
        points=Localised(ListOf(Template("threshold"), 1)),
    ),
    "cramp-management": _topic(
        {"default": TEXT, "pregnancy": TEXT, "pregnancy_possible": TEXT},
        points=POINTS, pregnancy_points=POINTS, diuretic_point=Template("medicine"), night_point=TEXT, rls_point=TEXT,
        pregnancy_possible_point=TEXT, pregnancy_result=Template("reference"),
    ),
    "data-gap": _topic({"not_fetched": TEXT, "unreadable": TEXT, "orders_only": TEXT}, points=POINTS,
                       orders_points=POINTS),
    "health-anxiety": _topic({"default": TEXT}, points=POINTS),
    "differential": _topic(
        {"myokymia": TEXT, "blepharospasm": TEXT, "hemifacial_spasm": TEXT, "restless_legs": TEXT},
        points=MapOf(POINTS, 1),
    ),
    # Prescribing (order-select, order-sign; cards/prescribing_cards.py).
    "rx-quinine": _topic(
        {"for_cramp": TEXT, "cramp_on_chart": TEXT, "reason_unknown": TEXT}, points=POINTS,
        suggestion={"label": TEXT, "description": Template("reference")},
    ),
    "rx-cyclobenzaprine": _topic(
        {"for_fasciculation": TEXT, "fasciculation_on_chart": Template("max_days"), "too_long": Template("days"),
         "duration_unknown": TEXT, "duration_unreadable": TEXT},
        points=Localised(ListOf(Template("max_days"), 1)), not_indicated_point=TEXT,
        suggestion={"label": TEXT, "description": Template("reference")},
    ),
    "rx-rule-out-first": _topic(
        {"missing": Template("medicine", "tests"), "unseen": Template("medicine", "tests"),
         "pending": Template("medicine"), "unreadable": Template("medicine"), "abnormal": Template("medicine"),
         "generic": TEXT},
        intro=TEXT, abnormal_line=Template("item", "result"), evidence_point=TEXT,
    ),
    "rx-carbamazepine-pregnancy": _topic(
        {"pregnant": TEXT, "pregnancy_possible": TEXT}, points=POINTS,
        evidence_line=Template("evidence"), possible_line=Template("evidence"),
        suggestion={"label": TEXT, "description": Template("reference")},
    ),
    "rx-provoking-medicine": _topic(
        {"symptoms": Template("medicine", "tests"), "low": Template("medicine", "analytes", "tests"),
         "both": Template("medicine", "analytes", "tests"), "generic": TEXT},
        explanations={"diuretic": TEXT, "stimulant": TEXT, "systemic_corticosteroid": TEXT, "beta2_agonist": TEXT},
        monitoring=Template("tests"), steroid_dose_unknown=Template("threshold"),
    ),
    "rx-draft-unreadable": _topic({"default": TEXT}, points=POINTS),
}

NAME_TABLE = MapOf(Localised(str), 1)

TEXTS = {
    "references": MapOf({"label": str, "url?": str}, 1),
    "override_reasons": {"system": str, "codes": MapOf(str, 1)},
    "names": {
        "analytes": NAME_TABLE, "orders": NAME_TABLE, "orders_long": NAME_TABLE, "orderables": NAME_TABLE,
        "orderables_long": NAME_TABLE, "classes": NAME_TABLE,
        "diuretic_subclasses": NAME_TABLE, "concepts": NAME_TABLE, "systems": NAME_TABLE, "severity": NAME_TABLE,
        "domains": NAME_TABLE,
        # A unit may display as nothing (a dimensionless ratio).
        "units": MapOf(ANY_STR),
    },
    "phrases": {
        "lab": Template("name", "value", "unit", "date"),
        "lab_details": Template("details"),
        "lab_converted": Template("original_value", "original_unit"),
        "lab_range": Template("low", "high"),
        "lab_range_low_only": Template("low"),
        "lab_range_high_only": Template("high"),
        "lab_range_default": Template("low", "high"),
        "lab_range_sex": Template("low", "high", "sex"),
        "lab_range_filled": Template("low", "high", "bound"),
        "bound_high": TEXT, "bound_low": TEXT, "sex_male": TEXT, "sex_female": TEXT,
        "lab_in_si": Template("original_value", "original_unit"),
        "lab_preliminary_newer": Template("date"),
        "lab_ck_trivial": Template("ratio"),
        "finding_suspected": Template("status"),
        "lab_preliminary": TEXT,
        "lab_interpretation": Template("flag"),
        "lab_ck_ratio": Template("ratio"),
        "lab_corrected_calcium": Template("albumin", "corrected"),
        "flag_low": TEXT,
        "flag_high": TEXT,
        "finding": Template("name", "code", "when"),
        "finding_code": Template("system", "code"),
        "finding_onset": Template("date"),
        "finding_recorded": Template("date"),
        "finding_undated": TEXT,
        "finding_severity": Template("severity"),
        "finding_sites": Template("sites"),
        "medication": Template("text", "status", "resource"),
        "medication_since": Template("date"),
        "medication_stopped": Template("date"),
        "medication_dose": Template("dose"),
        "medication_peak_dose": Template("dose"),
        "order": Template("name", "reference", "status"),
        "unreadable_lab": Template("name", "date", "reason", "reference"),
        "unreadable_named": Template("resource", "name", "date", "reason", "reference"),
        "unreadable_other": Template("resource", "date", "reason", "reference"),
        "gap_not_obtained": Template("what", "detail"),
        "gap_incomplete": Template("what", "detail"),
        "footer": Template("version"),
        "footer_with_sources": Template("sources", "version"),
        "unknown_date": TEXT,
        "recently": TEXT,
        "why_heading": TEXT,
        "advice_heading": TEXT,
    },
    "topics": TOPICS,
    "prescribing_phrases": {
        "draft": Template("medicine", "reference"), "draft_selected": Template("medicine", "reference"),
        "reason": Template("reason"), "no_reason": TEXT, "reason_unreadable": Template("reason"),
        "duration": Template("days", "source"), "duration_unknown": TEXT, "duration_unreadable": Template("reason"),
        "dose": Template("dose"), "unreadable": Template("reference", "reason"),
        "duration_sources": MapOf(TEXT, 1),
    },
}
