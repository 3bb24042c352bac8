"""The prescribing entry point (order-select, order-sign): raw FHIR chart and draft orders in, cards out.

Same engine as the chart review (cards/api.py): the same reading layer, the same patient view, the
patient-view work-up and result rules reused. The drafts are read first, and cheaply: a prescription
of a medicine no prescribing rule looks at (the common case) gets no card without the chart being read.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from cards.card_assembly import CardContext
from cards.chart import collect
from cards.chart.draft_orders import conditions_by_id, read_draft_orders
from cards.knowledge_base import Knowledge, load_knowledge
from cards.options import ReviewOptions
from cards.prescribing_cards import build_prescribing_cards, unreadable_drafts_card
from cards.render import DataPointRenderer, Texts
from cards.rules.prescribing import DRAFT_CLASSES, run_prescribing_rules
from cards.view import DataGap, DraftMedication

@dataclass(frozen=True)
class OrderReview:
    cards: list[dict[str, Any]]
    topics: tuple[str, ...]
    rules: tuple[str, ...]
    skipped_resources: int
    # Whether any draft is one the rules look at: when none is, the chart was not needed (and not read).
    relevant: bool


def watched(draft: DraftMedication, knowledge: Knowledge) -> bool:
    return draft.selected and (any(draft.has_class(c) for c in DRAFT_CLASSES)
                               or any(draft.has_class(c) for c in knowledge.prescribing.provoking_classes)
                               or bool(knowledge.prescribing.teratogenic_ingredients.intersection(draft.ingredients)))


def review_orders(resources: Iterable[Mapping[str, Any]], draft_orders: Any, *, patient_id: str, now: datetime,
                  selections: Iterable[str] | None = None, options: ReviewOptions = ReviewOptions(),
                  gaps: Iterable[DataGap] = ()) -> OrderReview:
    """Check the draft orders (all of them, or order-select's ``selections``) against this patient's
    chart. Never raises on bad data: a draft that cannot be read is reported on a card."""
    knowledge = load_knowledge()
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    now = now.astimezone(timezone.utc)
    chart = list(resources)
    drafts, unreadable = read_draft_orders(draft_orders, knowledge, now, selections=selections,
                                           conditions=conditions_by_id(chart))
    drafts = tuple(d for d in drafts if watched(d, knowledge))
    if not drafts and not unreadable:
        return OrderReview(cards=[], topics=(), rules=(), skipped_resources=0, relevant=False)
    state = collect(chart, patient_id=patient_id, now=now, knowledge=knowledge)
    view = state.complete(tuple(gaps))
    if view.age_years is not None and view.age_years < knowledge.thresholds.adult_age_years:
        return OrderReview(cards=[], topics=(), rules=(), skipped_resources=view.skipped_resources, relevant=True)
    findings = run_prescribing_rules(view, drafts, knowledge)
    texts = Texts(knowledge, options.locale)
    ctx = CardContext(view=view, knowledge=knowledge, texts=texts, renderer=DataPointRenderer(texts),
                      options=options, topics_present=frozenset(f.topic for f in findings))
    cards = build_prescribing_cards(findings, ctx)
    # A draft that could not be read is reported where the checks matter: a patient with twitching or cramp.
    if unreadable and view.has_index_symptom:
        cards.append(unreadable_drafts_card(unreadable, ctx))
    topics = tuple(dict.fromkeys(card["source"]["topic"]["code"] for card in cards))
    return OrderReview(cards=cards, topics=topics, rules=tuple(dict.fromkeys(f.rule_id for f in findings)),
                       skipped_resources=view.skipped_resources, relevant=True)
