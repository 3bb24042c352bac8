"""Findings -> CDS Hooks 2.0 card dicts, one builder per topic.

Builders only arrange text from texts.yaml around the findings; they make no clinical decisions
beyond choosing the wording variant. Optional card fields are omitted, never sent empty.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, Mapping

from cards.card_assembly import CardContext, assemble, suggestion
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


def _why(ctx: CardContext, findings: list[Finding]) -> list[str]:
    lines = []
    for finding in findings:
        for item in finding.data:
            line = ctx.renderer.render(item, finding.params)
            if line not in lines:
                lines.append(line)
    return lines


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
    return [assemble(ctx, topic, summary, "warning", _why(ctx, findings), advice, findings)]


# ---- medicines ------------------------------------------------------------------------------------
def medication_review(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, MEDICATION_REVIEW
    names = list(dict.fromkeys(ingredient for f in findings for m in f.data for ingredient in m.ingredients))
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
            ingredient = ctx.knowledge.ingredients[medication.ingredients[0]]
            if ingredient.subclass:
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
        return [assemble(ctx, topic, t.topic(topic, "summary", "default"), indicator, _why(ctx, findings),
                         list(t.topic(topic, "points")), findings)]
    return build


# ---- reassurance and advice -------------------------------------------------------------------------
def reassurance(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, REASSURANCE
    given_on = ctx.options.reassurance_date()
    if _recent_reassurance(given_on, ctx):
        day = given_on.isoformat()
        return [assemble(ctx, topic, t.topic(topic, "summary", "repeat").format(date=day), "info",
                         [], [t.topic(topic, "repeat_detail").format(date=day)], findings)]
    advice = list(t.topic(topic, "points"))
    if any(f.params.get("health_anxiety") for f in findings):
        advice.insert(0, t.topic(topic, "health_anxiety_point"))
    return [assemble(ctx, topic, t.topic(topic, "summary", "full"), "info", _why(ctx, findings), advice, findings)]


def _recent_reassurance(given_on: date | None, ctx: CardContext) -> bool:
    if given_on is None:
        return False
    days = (ctx.view.now.date() - given_on).days
    return 0 <= days <= ctx.knowledge.thresholds.reassurance_repeat_window_days


def treatment_options(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, TREATMENT_OPTIONS
    why = []
    for finding in findings:
        for symptom, reason in zip(finding.data, finding.params["reasons"]):
            name = safe(symptom.display) if symptom.display else t.name("concepts", symptom.concept)
            started = symptom.onset_text or symptom.recorded_text or t.get("phrases", "unknown_date")
            line = t.topic(topic, "reasons", reason).format(
                name=name, severity=t.name("severity", symptom.severity or "moderate"), date=started,
                months=number(finding.params["months"]))
            if line not in why:  # the same symptom is often recorded at several visits
                why.append(line)
    advice = list(t.topic(topic, "points"))
    if any(f.params.get("cramps") for f in findings):
        advice.append(t.topic(topic, "cramp_point"))
    if ctx.topics_present & {WORKUP_INCOMPLETE, ABNORMAL_RESULT}:
        advice.insert(0, t.topic(topic, "pending_workup_point"))
    return [assemble(ctx, topic, t.topic(topic, "summary", "default"), "info", why, advice, findings)]


def cramp_management(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, CRAMP_MANAGEMENT
    pregnant = any(f.kind == "pregnancy" for f in findings)
    advice = list(t.topic(topic, "pregnancy_points" if pregnant else "points"))
    diuretics = [m for f in findings for m in f.data if getattr(m, "classes", None)]
    for medication in diuretics:
        advice.append(t.topic(topic, "diuretic_point").format(medicine=safe(medication.text)))
    source = t.topic(topic, "source_pregnancy") if pregnant else None
    return [assemble(ctx, topic, t.topic(topic, "summary", "pregnancy" if pregnant else "default"), "info",
                     _why(ctx, findings), advice, findings, source_override=source)]


def compression(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, COMPRESSION
    finding = findings[0]
    threshold = number(finding.params["threshold"])
    if finding.kind == "low_abi":
        abi = finding.data[0]
        summary, indicator = t.topic(topic, "summary", "low_abi").format(
            value=number(abi.value, 2), threshold=threshold), "info"
    else:
        summary, indicator = t.topic(topic, "summary", finding.kind), "info"
    advice = [point.format(threshold=threshold) for point in t.topic(topic, "points")]
    return [assemble(ctx, topic, summary, indicator, _why(ctx, findings), advice, findings)]


def data_gap(findings: list[Finding], ctx: CardContext) -> list[Card]:
    """What could not be fetched or read: never taken for normal or absent (the data-quality policy)."""
    t, topic = ctx.texts, DATA_GAP
    kind = findings[0].kind  # one data-gap finding per review (rules/data_quality.py)
    indicator = "info" if kind == "orders_only" else "warning"
    return [assemble(ctx, topic, t.topic(topic, "summary", kind), indicator, _why(ctx, findings),
                     list(t.topic(topic, "points" if kind != "orders_only" else "orders_points")), findings)]


def differential(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, DIFFERENTIAL
    return [assemble(ctx, topic, t.topic(topic, "summary", f.kind), "info", _why(ctx, [f]),
                     list(t.localise(t.topic(topic, "points")[f.kind])), [f]) for f in findings]


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
