"""Findings -> CDS Hooks 2.0 card dicts, one builder per topic.

Builders only arrange text from texts.yaml around the findings; they make no clinical decisions
beyond choosing the wording variant. Optional card fields are omitted, never sent empty.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from cards.advice_cards import compression, cramp_management, data_gap, differential, reassurance, treatment_options
from cards.card_assembly import CardContext, assemble, suggestion, why_lines
from cards.findings import (ABNORMAL_RESULT, COMPRESSION, CRAMP_MANAGEMENT, CYCLOBENZAPRINE, DATA_GAP, DIFFERENTIAL,
                            HEALTH_ANXIETY, MEDICATION_REVIEW, NEUROLOGY_REFERRAL, QUININE, REASSURANCE,
                            TOPIC_ORDER, TREATMENT_OPTIONS, WORKUP_INCOMPLETE, Finding)
from cards.render import number, safe

Card = dict[str, Any]
SUGGESTED_STATUSES = ("missing", "unseen", "stale", "unusable")


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
def neurology_referral(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, NEUROLOGY_REFERRAL
    known_mnd = any(f.kind == "known_mnd" for f in findings)
    critical = any(f.critical for f in findings)
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
        indicator, summary = "critical", t.topic(topic, "summary", "critical")
        advice.append(t.topic(topic, "advice", "critical"))
    else:
        indicator = "warning"
        summary = t.topic(topic, "summary", "already_referred" if referral else "warning")
        advice.append(t.topic(topic, "advice", "warning"))
    if any(f.kind == "ck_red_flag" for f in findings):
        advice.append(t.topic(topic, "advice", "ck"))
    suggestions = None
    if referral is not None and not known_mnd:
        advice.append(t.topic(topic, "advice", "already_referred").format(reference=safe(referral.evidence or "")))
    elif not known_mnd:
        suggestions = [_referral_suggestion(ctx, findings, flags)]
    return [assemble(ctx, topic, summary, indicator, why, advice, findings,
                     suggestions=suggestions, selection="at-most-one")]


def _red_flag_label(ctx: CardContext, finding: Finding) -> str:
    label = ctx.texts.topic(NEUROLOGY_REFERRAL, "red_flags", finding.kind)
    return label.format(**{k: number(v) if isinstance(v, float) else v for k, v in finding.params.items()})


def _referral_suggestion(ctx: CardContext, findings: list[Finding], flags: list[str]) -> dict[str, Any]:
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
    if references:
        resource["reasonReference"] = [{"reference": ref} for ref in dict.fromkeys(references)]
    resource["note"] = [{"text": t.topic(NEUROLOGY_REFERRAL, "suggestion", "note").format(flags="; ".join(flags))}]
    return suggestion(t.topic(NEUROLOGY_REFERRAL, "suggestion", "label"),
                      t.topic(NEUROLOGY_REFERRAL, "suggestion", "description"), resource, recommended=True)


# ---- work-up ----------------------------------------------------------------------------------------
def workup_incomplete(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, WORKUP_INCOMPLETE
    why, suggestions, to_order = [], [], []
    for finding in findings:
        key, status = finding.params["order"], finding.params["status"]
        test = t.name("orders", key)
        why.append(_status_line(ctx, finding, test))
        if status in SUGGESTED_STATUSES:
            to_order.append(test)
            suggestions.append(_lab_suggestion(ctx, key, test))
    notes = _workup_notes(ctx, findings)
    statuses = {finding.params["status"] for finding in findings}
    if suggestions:
        variant = "unseen" if "unseen" in statuses else "missing"
        summary = _bounded(t.topic(topic, "summary", variant).format(tests=", ".join(to_order)),
                           t.topic(topic, "summary", "missing_generic"))
    else:
        summary = t.topic(topic, "summary", "unreadable" if "unreadable" in statuses else "pending")
    advice = [t.topic(topic, "intro"), *notes]
    return [assemble(ctx, topic, summary, "info", why, advice, findings,
                     suggestions=suggestions or None, selection="any")]


def _status_line(ctx: CardContext, finding: Finding, test: str) -> str:
    status = finding.params["status"]
    template = ctx.texts.topic(WORKUP_INCOMPLETE, "status", status)
    item = finding.data[0] if finding.data else None
    when = getattr(item, "effective_text", None) or getattr(item, "date_text", None) or \
        ctx.texts.get("phrases", "unknown_date")
    order = finding.data[-1] if status == "ordered" else None
    line = template.format(test=test, date=when, months=number(finding.params["months"]),
                           reference=safe(getattr(order, "evidence", None) or "ServiceRequest"),
                           reason=safe(getattr(item, "reason", "")))
    return line[:1].upper() + line[1:]


def _workup_notes(ctx: CardContext, findings: list[Finding]) -> list[str]:
    t, notes = ctx.texts, []
    shortened = [f for f in findings if "short_window_medicine" in f.params]
    if shortened:
        medicine = shortened[0].params["short_window_medicine"]
        moment = medicine.started_text if medicine.current else (medicine.ended_text or medicine.started_text)
        notes.append(t.topic(WORKUP_INCOMPLETE, "short_window").format(
            tests=", ".join(t.name("orders", f.params["order"]) for f in shortened),
            months=number(shortened[0].params["months"]), medicine=safe(medicine.text),
            date=moment or t.get("phrases", "recently")))
    for finding in findings:
        if "reason_medicine" in finding.params:
            notes.append(t.topic(WORKUP_INCOMPLETE, "magnesium_reason").format(
                medicine=safe(finding.params["reason_medicine"].text)))
    return notes


def _lab_suggestion(ctx: CardContext, order_key: str, test: str) -> dict[str, Any]:
    t, knowledge = ctx.texts, ctx.knowledge
    resource = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [dict(knowledge.lab_order_category)]}],
        "code": {"coding": [dict(knowledge.orders[order_key].coding)]},
        "subject": {"reference": f"Patient/{ctx.view.patient_id}"},
    }
    return suggestion(t.topic(WORKUP_INCOMPLETE, "suggestion", "label").format(test=test),
                      t.topic(WORKUP_INCOMPLETE, "suggestion", "description").format(
                          test_long=t.name("orders_long", order_key)), resource)


# ---- abnormal results ----------------------------------------------------------------------------
_ITEM_OF_KIND = {"low_tsh_overt": "low_tsh", "low_tsh_subclinical": "low_tsh", "low_tsh_unpaired": "low_tsh",
                 "high_tsh_overt": "high_tsh"}


def abnormal_result(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, ABNORMAL_RESULT
    items = [t.topic(topic, "item_names", _ITEM_OF_KIND.get(f.kind, f.kind)) for f in findings]
    if len(findings) == 1:
        summary = t.topic(topic, "summary", "one").format(items=items[0])
    else:
        summary = t.topic(topic, "summary", "many").format(count=len(findings), items=", ".join(items))
    summary = _bounded(summary, t.topic(topic, "summary", "generic"))
    advice = []
    for finding in findings:
        advice.append(t.topic(topic, "explanations", finding.kind))
        if finding.params.get("red_flag"):
            advice.append(t.topic(topic, "explanations", "ck_red_flag"))
    return [assemble(ctx, topic, summary, "warning", why_lines(ctx, findings), advice, findings)]


# ---- medicines ------------------------------------------------------------------------------------
def medication_review(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, MEDICATION_REVIEW
    # A medicine known only by its class (a combination ATC code) is named by its own text.
    names = list(dict.fromkeys(name for f in findings for m in f.data for name in (m.ingredients or (m.text,))))
    if all(f.kind == "systemic_corticosteroid_taper" for f in findings):
        summary = t.topic(topic, "summary", "steroid_taper")
    elif len(names) == 1:
        summary = t.topic(topic, "summary", "one").format(names=names[0])
    else:
        summary = t.topic(topic, "summary", "many").format(count=len(names), names=", ".join(names))
    summary = _bounded(summary, t.topic(topic, "summary", "generic"))
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
    kinds = {f.kind for f in findings}
    sources = {t.topic(topic, "source_when_only").get(kind) for kind in kinds}
    source = sources.pop() if len(sources) == 1 else None
    return [assemble(ctx, topic, summary, "info", why, advice, findings, source_override=source)]


def _static_card(topic: str, indicator: str) -> Callable[[list[Finding], CardContext], list[Card]]:
    """A card whose text is fixed: the findings only supply the "why" list."""
    def build(findings: list[Finding], ctx: CardContext) -> list[Card]:
        t = ctx.texts
        return [assemble(ctx, topic, t.topic(topic, "summary", "default"), indicator, why_lines(ctx, findings),
                         list(t.topic(topic, "points")), findings)]
    return build


def _bounded(summary: str, fallback: str) -> str:
    return summary if len(summary) <= 139 else fallback


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
