"""The public entry point: raw FHIR resources in, CDS Hooks cards out."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from cards.card_assembly import CardContext
from cards.card_builders import build_cards
from cards.chart import collect, may_trigger, unread
from cards.findings import ABNORMAL_RESULT, NEUROLOGY_REFERRAL
from cards.knowledge_base import load_knowledge
from cards.options import ReviewOptions
from cards.precedence import apply_precedence
from cards.render import DataPointRenderer, Texts
from cards.rules import run_rules
from cards.view import DataGap, PatientView

# Topics whose cards are worth showing even when part of the chart could not be obtained: a red flag
# or an abnormal result found in what was read (CDS Hooks would otherwise answer 412 and show nothing).
URGENT_TOPICS = frozenset({NEUROLOGY_REFERRAL, ABNORMAL_RESULT})


@dataclass(frozen=True)
class Review:
    cards: list[dict[str, Any]]
    topics: tuple[str, ...]
    skipped_resources: int  # resources the review reached and could not use (not JSON objects)
    view: PatientView  # for a chart without a trigger symptom, its findings only: nothing else is read
    rules: tuple[str, ...] = ()  # ids of the rules behind the cards (for the logs: never on a card)

    @property
    def urgent(self) -> bool:
        """A red flag or an abnormal result is among the cards."""
        return not URGENT_TOPICS.isdisjoint(self.topics)

    @property
    def complete(self) -> bool:
        """Nothing the review depends on was missing or unreadable."""
        return not self.view.incomplete()


def _listed(resources: Any) -> list[Any] | None:
    try:
        return list(resources)
    except TypeError:
        return None  # not iterable: collect() counts it as skipped


def review(resources: Iterable[Mapping[str, Any]], *, patient_id: str, now: datetime,
           options: ReviewOptions = ReviewOptions(), gaps: Iterable[DataGap] = ()) -> Review:
    """Review one patient's chart. Never raises on bad resource data: a relevant resource that cannot
    be read is recorded in the view and shown. ``gaps``: data the caller could not obtain."""
    knowledge = load_knowledge()
    options = options or ReviewOptions()
    gaps = tuple(gaps)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # callers should pass aware datetimes; assume UTC
    now = now.astimezone(timezone.utc)
    chart = resources if isinstance(resources, (list, tuple)) else _listed(resources)
    if chart is not None and not may_trigger(chart, knowledge):
        state = unread(chart, patient_id=patient_id, now=now, knowledge=knowledge)
    else:
        state = collect(resources if chart is None else chart, patient_id=patient_id, now=now, knowledge=knowledge)
    if not state.has_trigger:
        # No index symptom and no differential: no rule runs (rules.run_rules), so no card. Most chart
        # openings end here, without reading medicines and orders or a single result.
        return Review(cards=[], topics=(), skipped_resources=state.skipped, view=state.findings_only(gaps))
    view = state.complete(gaps)
    if view.age_years is not None and view.age_years < knowledge.thresholds.adult_age_years:
        return Review(cards=[], topics=(), skipped_resources=view.skipped_resources, view=view)
    findings = apply_precedence(run_rules(view, knowledge), knowledge.thresholds.max_cards)
    texts = Texts(knowledge, options.locale)
    ctx = CardContext(view=view, knowledge=knowledge, texts=texts, renderer=DataPointRenderer(texts),
                      options=options, topics_present=frozenset(f.topic for f in findings))
    cards = build_cards(findings, ctx)
    topics = tuple(dict.fromkeys(card["source"]["topic"]["code"] for card in cards))
    return Review(cards=cards, topics=topics, skipped_resources=view.skipped_resources, view=view,
                  rules=tuple(dict.fromkeys(finding.rule_id for finding in findings)))
