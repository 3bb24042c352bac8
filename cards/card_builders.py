"""Findings -> CDS Hooks 2.0 card dicts, one builder per topic.

Builders only arrange text from texts.yaml around the findings; they make no clinical decisions
beyond choosing the wording variant. Optional card fields are omitted, never sent empty.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from cards.advice_cards import compression, cramp_management, data_gap, differential, reassurance, treatment_options
from cards.card_assembly import CardContext, assemble, bounded_summary, suggestion, why_lines
from cards.workup_card import workup_incomplete
from cards.findings import (ABNORMAL_RESULT, COMPRESSION, CRAMP_MANAGEMENT, CYCLOBENZAPRINE, DATA_GAP, DIFFERENTIAL,
                            HEALTH_ANXIETY, MEDICATION_REVIEW, NEUROLOGY_REFERRAL, QUININE, REASSURANCE,
                            TOPIC_ORDER, TREATMENT_OPTIONS, WORKUP_INCOMPLETE, Finding)
from cards.render import number, safe
from cards.view import ClinicalFinding

Card = dict[str, Any]


def build_cards(findings: list[Finding], ctx: CardContext) -> list[Card]:
    by_topic: dict[str, list[Finding]] = {}
    for finding in findings:
        by_topic.setdefault(finding.topic, []).append(finding)
    cards: list[Card] = []
    for topic in TOPIC_ORDER:
        if topic in by_topic:
            cards.extend(BUILDERS[topic](by_topic[topic], ctx))
    return cards


# ---- neurology referral ---------------------------------------------------------------------------
MYOKYMIA_FLAG = "myokymia_with_other"


def neurology_referral(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, NEUROLOGY_REFERRAL
    kinds = {f.kind for f in findings}
    known_mnd = "known_mnd" in kinds
    critical = any(f.critical for f in findings)  # bulbar features, tongue fasciculation, suspected MND
    bulbar = bool(kinds & {"bulbar", "tongue_fasciculation"})
    index = ctx.view.has_index_symptom
    referral = ctx.view.has_active_order(ctx.knowledge.referral_order_codes)
    flags = [_red_flag_label(ctx, f) for f in findings]
    why = [f"{flag}: {'; '.join(ctx.renderer.render(item, f.params) for item in f.data)}" if f.data else flag
           for flag, f in zip(flags, findings)]
    advice = []
    if known_mnd:
        others = [f for f in findings if f.kind != "known_mnd"]
        indicator, summary = ("warning" if others else "info"), t.topic(topic, "summary", "known_mnd")
        advice.append(t.topic(topic, "advice", "known_mnd"))
    elif critical:
        indicator = "critical"
        variant = ("critical" if index else "critical_no_index") if bulbar else "suspected_mnd"
        summary = t.topic(topic, "summary", variant)
        if bulbar:
            advice.append(t.topic(topic, "advice", "critical"))
        if "suspected_mnd" in kinds:
            advice.append(t.topic(topic, "advice", "suspected_mnd"))
    else:
        indicator = "warning"
        # Myokymia with another neurological symptom is a red flag for a neurological cause, not for
        # neuromuscular disease: its own wording, never the neuromuscular one (S4 myokymia row).
        only_myokymia = kinds == {MYOKYMIA_FLAG}
        summary = t.topic(topic, "summary", "already_referred" if referral else "myokymia" if only_myokymia else
                          "warning" if index else "warning_no_index")
        if not only_myokymia:
            advice.append(t.topic(topic, "advice", "warning"))
    if MYOKYMIA_FLAG in kinds and not known_mnd:
        advice.append(t.topic(topic, "advice", "myokymia"))
    if "ck_red_flag" in kinds:
        advice.append(t.topic(topic, "advice", "ck"))
    suggestions = None
    if referral is not None and known_mnd:
        advice.append(t.topic(topic, "advice", "known_mnd_referred").format(reference=safe(referral.evidence or "")))
    elif referral is not None:
        advice.append(t.topic(topic, "advice", "already_referred").format(reference=safe(referral.evidence or "")))
    elif not known_mnd:
        suggestions = [_referral_suggestion(ctx, findings, flags, urgent=critical)]
    # Myokymia alone: the fact sheet decides the referral (its source); the brainstem study is a link.
    source = "S4" if kinds == {MYOKYMIA_FLAG} else None
    return [assemble(ctx, topic, summary, indicator, why, advice, findings,
                     suggestions=suggestions, selection="at-most-one", source_override=source)]


def _red_flag_label(ctx: CardContext, finding: Finding) -> str:
    label = ctx.texts.topic(NEUROLOGY_REFERRAL, "red_flags", finding.kind)
    return label.format(**{k: number(v) if isinstance(v, float) else v for k, v in finding.params.items()})


def _referral_suggestion(ctx: CardContext, findings: list[Finding], flags: list[str], *, urgent: bool) -> dict[str, Any]:
    """The draft referral. When MND may be the cause (bulbar features, tongue fasciculation, a suspected
    MND on file), NICE NG42 asks for referral without delay naming the suspicion: priority urgent, the
    suspicion in reasonCode and in the note (issue 13 item 7)."""
    t, knowledge = ctx.texts, ctx.knowledge
    references = [ref for f in findings for ref in f.evidence_references]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [dict(knowledge.referral_order_category)]}],
        "code": {"coding": [dict(knowledge.referral_order_code)]},
        "subject": {"reference": f"Patient/{ctx.view.patient_id}"},
    }
    if urgent:
        resource["priority"] = "urgent"
        resource["reasonCode"] = [{"text": t.topic(NEUROLOGY_REFERRAL, "suggestion", "reason_urgent")}]
    if references:
        resource["reasonReference"] = [{"reference": ref} for ref in dict.fromkeys(references)]
    note = "note_urgent" if urgent else "note" if ctx.view.has_index_symptom else "note_no_index"
    named = [_with_findings(ctx, flag, f) for flag, f in zip(flags, findings)]
    resource["note"] = [{"text": t.topic(NEUROLOGY_REFERRAL, "suggestion", note).format(flags="; ".join(named))}]
    label = t.topic(NEUROLOGY_REFERRAL, "suggestion", "label_urgent" if urgent else "label")
    return suggestion(label, t.topic(NEUROLOGY_REFERRAL, "suggestion", "description"), resource, recommended=True)


def _with_findings(ctx: CardContext, flag: str, finding: Finding) -> str:
    """A red flag as the referral note states it: the flag and what was recorded ("Bulbar or respiratory
    feature (Dysphagia)")."""
    names = [safe(item.display) if item.display else ctx.texts.name("concepts", item.concept)
             for item in finding.data if isinstance(item, ClinicalFinding)]
    return f"{flag} ({', '.join(dict.fromkeys(names))})" if names else flag


# ---- abnormal results ----------------------------------------------------------------------------
_ITEM_OF_KIND = {"low_tsh_overt": "low_tsh", "low_tsh_subclinical": "low_tsh", "low_tsh_unpaired": "low_tsh",
                 "high_tsh_overt": "high_tsh"}


def abnormal_result(findings: list[Finding], ctx: CardContext) -> list[Card]:
    """Every result outside its range, with what it may mean. A warning when any is a cause of twitching or
    cramp or needs prompt action; otherwise (notes only) informational. Either way reassurance waits."""
    t, topic = ctx.texts, ABNORMAL_RESULT
    items = [t.topic(topic, "item_names", _ITEM_OF_KIND.get(f.kind, f.kind)) for f in findings]
    warning = any(f.params.get("level", "warning") == "warning" for f in findings)
    if len(findings) == 1:
        summary = t.topic(topic, "summary", "one" if warning else "one_note").format(items=items[0])
    else:
        summary = t.topic(topic, "summary", "many").format(count=len(findings), items=", ".join(items))
    summary = bounded_summary(summary, t.topic(topic, "summary", "generic"))
    advice = list(dict.fromkeys(t.topic(topic, "explanations", finding.kind) for finding in findings))
    return [assemble(ctx, topic, summary, "warning" if warning else "info", why_lines(ctx, findings), advice,
                     findings)]


# ---- medicines ------------------------------------------------------------------------------------
def medication_review(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, MEDICATION_REVIEW
    # A medicine known only by its class (a combination ATC code) is named by its own text.
    names = list(dict.fromkeys(name for f in findings for m in f.data for name in (m.ingredients or (m.text,))))
    reviews = {t.topic(topic, "review")[f.kind] for f in findings}
    if all(f.kind == "systemic_corticosteroid_taper" for f in findings):
        summary = t.topic(topic, "summary", "steroid_taper")
    elif len(names) == 1:
        summary = t.topic(topic, "summary", "one_dose" if reviews == {"dose"} else "one_need").format(names=names[0])
    else:
        summary = t.topic(topic, "summary", "many").format(count=len(names), names=", ".join(names))
    summary = bounded_summary(summary, t.topic(topic, "summary", "generic"))
    why, advice = [], []
    for finding in findings:
        for medication in finding.data:
            label = t.name("classes", finding.kind.split("_high_dose")[0].split("_taper")[0])
            ingredient = ctx.knowledge.ingredients[medication.ingredients[0]] if medication.ingredients else None
            if ingredient and ingredient.subclass:
                label = t.name("diuretic_subclasses", ingredient.subclass)
            why.append(f"{ctx.renderer.render(medication, finding.params)} ({label})")
        text = t.topic(topic, "explanations", finding.kind).format(
            **{k: number(v) for k, v in finding.params.items() if isinstance(v, (int, float))})
        if text not in advice:
            advice.append(text)
    return [assemble(ctx, topic, summary, "info", why, advice, findings)]


def _static_card(topic: str, indicator: str) -> Callable[[list[Finding], CardContext], list[Card]]:
    """A card whose text is fixed: the findings only supply the "why" list."""
    def build(findings: list[Finding], ctx: CardContext) -> list[Card]:
        t = ctx.texts
        return [assemble(ctx, topic, t.topic(topic, "summary", "default"), indicator, why_lines(ctx, findings),
                         list(t.topic(topic, "points")), findings)]
    return build


BUILDERS: Mapping[str, Callable[[list[Finding], CardContext], list[Card]]] = {
    NEUROLOGY_REFERRAL: neurology_referral,
    WORKUP_INCOMPLETE: workup_incomplete,
    ABNORMAL_RESULT: abnormal_result,
    DATA_GAP: data_gap,
    MEDICATION_REVIEW: medication_review,
    REASSURANCE: reassurance,
    TREATMENT_OPTIONS: treatment_options,
    CYCLOBENZAPRINE: _static_card(CYCLOBENZAPRINE, "info"),
    QUININE: _static_card(QUININE, "warning"),
    COMPRESSION: compression,
    CRAMP_MANAGEMENT: cramp_management,
    HEALTH_ANXIETY: _static_card(HEALTH_ANXIETY, "info"),
    DIFFERENTIAL: differential,
}
