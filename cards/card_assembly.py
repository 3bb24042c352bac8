"""The parts every card shares: source, topic, links, override reasons, the markdown detail layout."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from cards.findings import Finding
from cards.knowledge_base import Knowledge
from cards.options import ReviewOptions
from cards.render import DataPointRenderer, Texts
from cards.view import ClinicalFinding, PatientView

TOPIC_SYSTEM = "urn:fasciculation-cds:card-topic"
SUMMARY_LIMIT = 139


def bounded_summary(summary: str, fallback: str) -> str:
    """The summary, or its shorter fallback when it would pass the CDS Hooks limit."""
    return summary if len(summary) <= SUMMARY_LIMIT else fallback


_REFERENCE_ID = re.compile(r"\b(?:[ES]\d+|DQ)\b")  # reference ids as rule sources cite them (E11, S4, DQ)


@dataclass(frozen=True)
class CardContext:
    view: PatientView
    knowledge: Knowledge
    texts: Texts
    renderer: DataPointRenderer
    options: ReviewOptions
    topics_present: frozenset[str]


def assemble(ctx: CardContext, topic: str, summary: str, indicator: str, why: list[str], advice: list[str],
             findings: list[Finding], *, suggestions: list[dict[str, Any]] | None = None,
             selection: str | None = None, source_override: str | None = None,
             references: list[str] | None = None) -> dict[str, Any]:
    """A card. Its source is the reference behind what it says, shown once: `source` (with its link), then
    `links` for the other cited references that have one, then the rest named at the foot of the detail.
    Rule ids never appear on the card (issue 13 item 11): they are in the review table and the logs.
    `references` replaces the rules' citations when a builder chose wording that rests on fewer sources."""
    t = ctx.texts
    cited = cited_references(ctx, findings, topic) if references is None else references
    source_id = source_override or _primary(ctx, t.topic(topic, "source"), cited)
    source_ref = t.reference(source_id)
    source: dict[str, Any] = {"label": source_ref["label"]}
    if source_ref.get("url"):
        source["url"] = source_ref["url"]
    source["topic"] = {"system": TOPIC_SYSTEM, "code": topic, "display": t.topic(topic, "display")}
    linked = [ref for ref in cited if ref != source_id and t.reference(ref).get("url")]
    unlinked = [ref for ref in cited if ref != source_id and not t.reference(ref).get("url")]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "detail": _detail(ctx, why, advice, unlinked),
        "indicator": indicator,
        "source": source,
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = selection or "any"
    card["overrideReasons"] = _override_reasons(ctx, topic)
    if linked:
        card["links"] = [{"label": t.reference(ref)["label"], "url": t.reference(ref)["url"], "type": "absolute"}
                         for ref in linked]
    return card


def cited_references(ctx: CardContext, findings: list[Finding], topic: str | None = None) -> list[str]:
    """The references the fired rules cite, in order (the rule sources name them: "E13 NICE NG42 ...").
    A topic may list the references it shows (`links`, per locale: a UK quinine card never cites the FDA)."""
    known = ctx.knowledge.texts["references"]
    allowed = ctx.texts.topic(topic, "links") if topic and "links" in ctx.knowledge.texts["topics"][topic] else None
    found = [ref for f in findings for ref in _REFERENCE_ID.findall(f.source)
             if ref in known and (allowed is None or ref in allowed)]
    return list(dict.fromkeys(found))


def _primary(ctx: CardContext, topic_source: str, cited: list[str]) -> str:
    """The topic's own reference when the rules cite it, else the first cited one with a link, else the
    first cited: a card cites only what supports it (a stimulant card never cites a diuretic study)."""
    if topic_source in cited or not cited:
        return topic_source
    return next((ref for ref in cited if ctx.texts.reference(ref).get("url")), cited[0])


def why_lines(ctx: CardContext, findings: list[Finding]) -> list[str]:
    """The "why this card" list: each data point the findings used, once. A symptom recorded at several
    visits is listed once: a record line that only lacks the details (sites, severity) another line of the
    same record gives is left out."""
    lines, records = [], []
    for finding in findings:
        for item in finding.data:
            line = ctx.renderer.render(item, finding.params)
            if line not in lines:
                lines.append(line)
                if isinstance(item, ClinicalFinding):
                    records.append(line)
    return [line for line in lines
            if line not in records or not any(other.startswith(line + ", ") for other in records)]


def suggestion(label: str, description: str, resource: dict[str, Any], *, recommended: bool = False) -> dict[str, Any]:
    built: dict[str, Any] = {"label": label, "uuid": str(uuid.uuid4())}
    if recommended:
        built["isRecommended"] = True
    built["actions"] = [{"type": "create", "description": description, "resource": resource}]
    return built


def _detail(ctx: CardContext, why: list[str], advice: list[str], unlinked: list[str]) -> str:
    t = ctx.texts
    sections = []
    if why:
        sections.append("\n".join([t.get("phrases", "why_heading"), *(f"- {line}" for line in why)]))
    if advice:
        sections.append("\n".join([t.get("phrases", "advice_heading"), *(f"- {line}" for line in advice)]))
    version = ctx.knowledge.version
    if unlinked:
        names = "; ".join(t.reference(ref)["label"] for ref in unlinked)
        sections.append(t.fill("phrases", "footer_with_sources", sources=names, version=version))
    else:
        sections.append(t.fill("phrases", "footer", version=version))
    return "\n\n".join(sections)


def _override_reasons(ctx: CardContext, topic: str) -> list[dict[str, str]]:
    reasons = ctx.knowledge.texts["override_reasons"]
    return [{"system": reasons["system"], "code": code, "display": reasons["codes"][code]}
            for code in ctx.texts.topic(topic, "override_reasons")]
