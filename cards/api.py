"""The public entry point: raw FHIR resources in, CDS Hooks cards out."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping

from cards.card_assembly import CardContext
from cards.card_builders import build_cards
from cards.knowledge_base import load_knowledge
from cards.precedence import apply_precedence
from cards.render import DataPointRenderer, Texts
from cards.rules import run_rules
from cards.view import PatientView
from cards.view_builder import build_view


@dataclass(frozen=True)
class ReviewOptions:
    locale: str = "US"  # "US" | "UK": regulatory wording (quinine) and test names (BMP vs U&E)
    reassurance_given_on: date | None = None  # when recent, reassurance becomes a short reminder


@dataclass(frozen=True)
class Review:
    cards: list[dict[str, Any]]
    topics: tuple[str, ...]
    skipped_resources: int
    view: PatientView


def review(resources: Iterable[Mapping[str, Any]], *, patient_id: str, now: datetime,
           options: ReviewOptions = ReviewOptions()) -> Review:
    """Review one patient's chart. Never raises on bad resource data: such resources are skipped and counted."""
    knowledge = load_knowledge()
    options = options or ReviewOptions()
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # callers should pass aware datetimes; assume UTC
    view = build_view(resources, patient_id=patient_id, now=now.astimezone(timezone.utc), knowledge=knowledge)
    if view.age_years is not None and view.age_years < knowledge.thresholds.adult_age_years:
        return Review(cards=[], topics=(), skipped_resources=view.skipped_resources, view=view)
    findings = apply_precedence(run_rules(view, knowledge))
    texts = Texts(knowledge, options.locale)
    ctx = CardContext(view=view, knowledge=knowledge, texts=texts, renderer=DataPointRenderer(texts),
                      options=options, topics_present=frozenset(f.topic for f in findings))
    cards = build_cards(findings, ctx)
    topics = tuple(dict.fromkeys(card["source"]["topic"]["code"] for card in cards))
    return Review(cards=cards, topics=topics, skipped_resources=view.skipped_resources, view=view)
