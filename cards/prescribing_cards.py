"""Prescribing findings -> CDS Hooks cards (order-select, order-sign), one builder per topic.

Like cards/card_builders.py, builders only arrange texts.yaml around the findings. A card about a draft
order names it ("Draft order: quinine sulfate 324 MG Oral Capsule (MedicationRequest/request-123)");
removing the draft is offered as a `delete` action whose resourceId is the draft's own reference.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping

from cards.card_assembly import CardContext, assemble, bounded_summary
from cards.findings import Finding
from cards.render import join_names, number, safe
from cards.rules.prescribing import (RX_CARBAMAZEPINE_PREGNANCY, RX_CYCLOBENZAPRINE, RX_PROVOKING_MEDICINE, RX_QUININE,
                                     RX_RULE_OUT_FIRST, RX_TOPICS)
from cards.view import DraftMedication, LabResult, UnreadableDraft
from cards.workup_card import SUGGESTED_STATUSES, lab_suggestion, status_line, suggested_orderables

Card = dict[str, Any]
RX_DRAFT_UNREADABLE = "rx-draft-unreadable"


def build_prescribing_cards(findings: list[Finding], ctx: CardContext) -> list[Card]:
    by_topic: dict[str, list[Finding]] = {}
    for found in findings:
        by_topic.setdefault(found.topic, []).append(found)
    return [card for topic in RX_TOPICS if topic in by_topic for card in BUILDERS[topic](by_topic[topic], ctx)]


def unreadable_drafts_card(drafts: tuple[UnreadableDraft, ...], ctx: CardContext) -> Card:
    t = ctx.texts
    why = [_phrase(ctx, "unreadable", reference=safe(d.evidence or "MedicationRequest"), reason=safe(d.reason))
           for d in drafts]
    return assemble(ctx, RX_DRAFT_UNREADABLE, t.topic(RX_DRAFT_UNREADABLE, "summary", "default"), "info", why,
                    list(t.topic(RX_DRAFT_UNREADABLE, "points")), [])


# ---- lines shared by the builders -------------------------------------------------------------------
def _phrase(ctx: CardContext, key: str, **values: Any) -> str:
    return ctx.texts.get("prescribing_phrases", key).format(**values)


def draft_lines(ctx: CardContext, draft: DraftMedication, *, duration: bool = False, dose: bool = False) -> list[str]:
    """What the card read on the draft: the order, its stated reason, and its duration or dose if used."""
    lines = [_phrase(ctx, "draft", medicine=safe(draft.text), reference=safe(draft.evidence or "MedicationRequest"))]
    if draft.reason_unreadable:
        lines.append(_phrase(ctx, "reason_unreadable", reason=safe(draft.reason_unreadable)))
    elif draft.reason_texts:
        lines.append(_phrase(ctx, "reason", reason=safe("; ".join(draft.reason_texts))))
    elif draft.reason_concepts:  # coded, with neither text nor display: the concept's own name
        names = [ctx.texts.name("concepts", concept) for concept in draft.reason_concepts]
        lines.append(_phrase(ctx, "reason", reason="; ".join(names)))
    else:
        lines.append(_phrase(ctx, "no_reason"))
    if duration:
        lines.append(duration_line(ctx, draft))
    if dose and draft.prednisone_equivalent_mg is not None:
        lines.append(_phrase(ctx, "dose", dose=number(round(draft.prednisone_equivalent_mg))))
    return lines


def duration_line(ctx: CardContext, draft: DraftMedication) -> str:
    if draft.duration_unreadable:
        return _phrase(ctx, "duration_unreadable", reason=safe(draft.duration_unreadable))
    if draft.duration_days is None:
        return _phrase(ctx, "duration_unknown")
    source = ctx.texts.get("prescribing_phrases", "duration_sources", draft.duration_source)
    return _phrase(ctx, "duration", days=number(round(draft.duration_days)), source=source)


def _chart_lines(ctx: CardContext, found: Finding) -> list[str]:
    """The chart data behind a finding (symptoms, results): everything but the drafts."""
    return [ctx.renderer.render(item, found.params) for item in found.data if not isinstance(item, DraftMedication)]


def _drafts(found: Finding) -> list[DraftMedication]:
    return [item for item in found.data if isinstance(item, DraftMedication)]


def delete_suggestion(ctx: CardContext, topic: str, draft: DraftMedication) -> dict[str, Any] | None:
    """Remove the draft: a CDS Hooks 2.0 `delete` action naming it by relative reference (resourceId)."""
    if not draft.evidence:
        return None  # a draft without an id cannot be referred to
    t = ctx.texts
    return {"label": t.topic(topic, "suggestion", "label"), "uuid": str(uuid.uuid4()),
            "actions": [{"type": "delete",
                         "description": t.topic(topic, "suggestion", "description").format(
                             reference=safe(draft.evidence)),
                         "resourceId": draft.evidence}]}


def _name(draft: DraftMedication) -> str:
    """The medicine as a summary names it: its ingredient(s), else its own text."""
    return " and ".join(draft.ingredients) if draft.ingredients else safe(draft.text)


# ---- builders -----------------------------------------------------------------------------------------
def quinine(findings: list[Finding], ctx: CardContext) -> list[Card]:
    topic, cards = RX_QUININE, []
    for found in findings:
        [draft] = _drafts(found)
        why = [*draft_lines(ctx, draft), *_chart_lines(ctx, found)]
        cards.append(_warning_to_remove(ctx, topic, found, draft, why))
    return cards


def cyclobenzaprine(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic, cards = ctx.texts, RX_CYCLOBENZAPRINE, []
    for found in findings:
        [draft] = _drafts(found)
        limit = found.params["max_days"]
        days = number(round(draft.duration_days)) if draft.duration_days is not None else ""
        summary = t.topic(topic, "summary", found.kind).format(max_days=limit, days=days)
        why = [*draft_lines(ctx, draft, duration=True), *_chart_lines(ctx, found)]
        advice = [point.format(max_days=limit) for point in t.topic(topic, "points")]
        not_indicated = found.kind in ("for_fasciculation", "fasciculation_on_chart")
        if not_indicated:
            advice.append(t.topic(topic, "not_indicated_point"))
        remove = delete_suggestion(ctx, topic, draft) if found.kind == "for_fasciculation" else None
        cards.append(assemble(ctx, topic, summary, "warning" if found.kind == "for_fasciculation" else "info", why,
                              advice, [found], suggestions=[remove] if remove else None, selection="at-most-one"))
    return cards


def rule_out_first(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, RX_RULE_OUT_FIRST
    [found] = findings
    drafts = _drafts(found)
    medicine = " and ".join(dict.fromkeys(_name(d) for d in drafts))
    workup, abnormal = found.params["workup"], found.params["abnormal"]
    wanted = [w.params["order"] for w in workup if w.params["status"] in SUGGESTED_STATUSES]
    chosen = suggested_orderables(ctx, wanted)
    statuses = {w.params["status"] for w in workup}
    if chosen:
        tests = ", ".join(t.name("orderables", orderable) for orderable in chosen)
        variant = "unseen" if "unseen" in statuses else "missing"
        summary = t.topic(topic, "summary", variant).format(medicine=medicine, tests=tests)
    elif abnormal:
        summary = t.topic(topic, "summary", "abnormal").format(medicine=medicine)
    else:
        variant = "unreadable" if "unreadable" in statuses else "pending"
        summary = t.topic(topic, "summary", variant).format(medicine=medicine)
    summary = bounded_summary(summary, t.topic(topic, "summary", "generic"))
    why = [line for draft in drafts for line in draft_lines(ctx, draft)]
    why += [status_line(ctx, w) for w in workup]
    for result in abnormal:
        item = t.topic("abnormal-result", "item_names", _item_kind(result.kind))
        for data in result.data:
            if isinstance(data, LabResult):
                why.append(t.topic(topic, "abnormal_line").format(item=item, result=ctx.renderer.render(data, result.params)))
    advice = [t.topic(topic, "intro"), t.topic(topic, "evidence_point")]
    suggestions = [lab_suggestion(ctx, orderable) for orderable in chosen]
    return [assemble(ctx, topic, summary, "warning" if abnormal else "info", why, advice,
                     [found, *workup, *abnormal], suggestions=suggestions or None, selection="any")]


_ITEM_OF_KIND = {"low_tsh_overt": "low_tsh", "low_tsh_subclinical": "low_tsh", "low_tsh_unpaired": "low_tsh",
                 "high_tsh_overt": "high_tsh"}


def _item_kind(kind: str) -> str:
    return _ITEM_OF_KIND.get(kind, kind)


def carbamazepine_in_pregnancy(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic, cards = ctx.texts, RX_CARBAMAZEPINE_PREGNANCY, []
    for found in findings:
        [draft] = _drafts(found)
        line = "evidence_line" if found.kind == "pregnant" else "possible_line"
        why = [*draft_lines(ctx, draft),
               t.topic(topic, line).format(evidence=safe(", ".join(found.params["evidence"]) or "the chart"))]
        cards.append(_warning_to_remove(ctx, topic, found, draft, why))
    return cards


def _warning_to_remove(ctx: CardContext, topic: str, found: Finding, draft: DraftMedication,
                       why: list[str]) -> Card:
    """A warning whose one suggestion removes the draft order (a delete action naming it), when it can."""
    remove = delete_suggestion(ctx, topic, draft)
    return assemble(ctx, topic, ctx.texts.topic(topic, "summary", found.kind), "warning", why,
                    list(ctx.texts.topic(topic, "points")), [found],
                    suggestions=[remove] if remove else None, selection="at-most-one")


def provoking_medicine(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic, knowledge, cards = ctx.texts, RX_PROVOKING_MEDICINE, ctx.knowledge, []
    for found in findings:
        [draft] = _drafts(found)
        monitoring = knowledge.prescribing.provoking_classes[found.kind]
        wanted = [order for order in monitoring if ctx.view.active_order_covering(order) is None]
        chosen = suggested_orderables(ctx, wanted)
        tests = join_names([t.name("orders", order) for order in monitoring])
        analytes = " and ".join(t.name("analytes", analyte).lower() for analyte in found.params["low"])
        variant = "both" if found.params["symptoms"] and analytes else "symptoms" if found.params["symptoms"] else "low"
        summary = bounded_summary(t.topic(topic, "summary", variant).format(
            medicine=_name(draft).capitalize(), analytes=analytes, tests=tests), t.topic(topic, "summary", "generic"))
        why = [*draft_lines(ctx, draft, dose=found.kind == "systemic_corticosteroid"), *_chart_lines(ctx, found)]
        advice = [t.topic(topic, "explanations", found.kind), t.topic(topic, "monitoring").format(tests=tests)]
        if found.kind == "systemic_corticosteroid" and draft.prednisone_equivalent_mg is None:
            advice.append(t.topic(topic, "steroid_dose_unknown").format(
                threshold=number(knowledge.thresholds.steroid_high_dose_prednisone_mg_per_day)))
        suggestions = [lab_suggestion(ctx, orderable) for orderable in chosen]
        cards.append(assemble(ctx, topic, summary, "info", why, advice, [found],
                              suggestions=suggestions or None, selection="any"))
    return cards


BUILDERS: Mapping[str, Callable[[list[Finding], CardContext], list[Card]]] = {
    RX_QUININE: quinine,
    RX_CYCLOBENZAPRINE: cyclobenzaprine,
    RX_RULE_OUT_FIRST: rule_out_first,
    RX_CARBAMAZEPINE_PREGNANCY: carbamazepine_in_pregnancy,
    RX_PROVOKING_MEDICINE: provoking_medicine,
}
