"""The public entry point: raw FHIR resources in, CDS Hooks cards out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from cards.card_assembly import CardContext
from cards.card_builders import build_cards
from cards.knowledge_base import load_knowledge
from cards.precedence import apply_precedence
from cards.render import DataPointRenderer, Texts
from cards.rules import run_rules
from cards.view import PatientView
from cards.view_builder import collect, may_trigger, unread


@dataclass(frozen=True)
class ReviewOptions:
    locale: str = "US"  # "US" | "UK": regulatory wording (quinine) and test names (BMP vs U&E)
    reassurance_given_on: date | None = None  # when recent, reassurance becomes a short reminder
    # Or a function giving that date, called only if a reassurance card is being written (the hook
    # reads the patient's card history from the service's store: most reviews never need it).
    reassurance_lookup: Callable[[], date | None] | None = field(default=None, compare=False, repr=False)

    def reassurance_date(self) -> date | None:
        if self.reassurance_given_on is None and self.reassurance_lookup is not None:
            return self.reassurance_lookup()
        return self.reassurance_given_on


@dataclass(frozen=True)
class Review:
    cards: list[dict[str, Any]]
    topics: tuple[str, ...]
    skipped_resources: int  # resources the review reached and could not use (invalid, or not JSON objects)
    view: PatientView  # for a chart without a trigger symptom, its findings only: nothing else is read


def _listed(resources: Any) -> list[Any] | None:
    try:
        return list(resources)
    except TypeError:
        return None  # not iterable: collect() counts it as skipped


def review(resources: Iterable[Mapping[str, Any]], *, patient_id: str, now: datetime,
           options: ReviewOptions = ReviewOptions()) -> Review:
    """Review one patient's chart. Never raises on bad resource data: such resources are skipped and counted."""
    knowledge = load_knowledge()
    options = options or ReviewOptions()
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
        # openings end here, without reading medicines and orders or validating a single result.
        return Review(cards=[], topics=(), skipped_resources=state.skipped, view=state.findings_only())
    view = state.complete()
    if view.age_years is not None and view.age_years < knowledge.thresholds.adult_age_years:
        return Review(cards=[], topics=(), skipped_resources=view.skipped_resources, view=view)
    findings = apply_precedence(run_rules(view, knowledge))
    texts = Texts(knowledge, options.locale)
    ctx = CardContext(view=view, knowledge=knowledge, texts=texts, renderer=DataPointRenderer(texts),
                      options=options, topics_present=frozenset(f.topic for f in findings))
    cards = build_cards(findings, ctx)
    topics = tuple(dict.fromkeys(card["source"]["topic"]["code"] for card in cards))
    return Review(cards=cards, topics=topics, skipped_resources=view.skipped_resources, view=view)
