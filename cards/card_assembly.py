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
from cards.view import PatientView

TOPIC_SYSTEM = "urn:fasciculation-cds:card-topic"
SUMMARY_LIMIT = 139


_REFERENCE_ID = re.compile(r"\b[ES]\d+\b")  # reference ids as rule sources cite them (E11, S4)


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
             selection: str | None = None, source_override: str | None = None) -> dict[str, Any]:
    t = ctx.texts
    source_id = source_override or t.topic(topic, "source")
    source_ref = t.reference(source_id)
    source: dict[str, Any] = {"label": source_ref["label"]}
    if source_ref.get("url"):
        source["url"] = source_ref["url"]
    source["topic"] = {"system": TOPIC_SYSTEM, "code": topic, "display": t.topic(topic, "display")}
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "detail": _detail(ctx, why, advice, findings),
        "indicator": indicator,
        "source": source,
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = selection or "any"
    card["overrideReasons"] = _override_reasons(ctx, topic)
    links = _links(ctx, topic, source_id, findings)
    if links:
        card["links"] = links
    return card


def why_lines(ctx: CardContext, findings: list[Finding]) -> list[str]:
    """The "why this card" list: each data point the findings used, once."""
    lines = []
    for finding in findings:
        for item in finding.data:
            line = ctx.renderer.render(item, finding.params)
            if line not in lines:
                lines.append(line)
    return lines


def suggestion(label: str, description: str, resource: dict[str, Any], *, recommended: bool = False) -> dict[str, Any]:
    built: dict[str, Any] = {"label": label, "uuid": str(uuid.uuid4())}
    if recommended:
        built["isRecommended"] = True
    built["actions"] = [{"type": "create", "description": description, "resource": resource}]
    return built


def _detail(ctx: CardContext, why: list[str], advice: list[str], findings: list[Finding]) -> str:
    t = ctx.texts
    sections = []
    if why:
        sections.append("\n".join([t.get("phrases", "why_heading"), *(f"- {line}" for line in why)]))
    if advice:
        sections.append("\n".join([t.get("phrases", "advice_heading"), *(f"- {line}" for line in advice)]))
    rules = dict.fromkeys((f.rule_id, f.source) for f in findings)
    lines = [f"- {t.fill('phrases', 'rule_line', rule_id=rule_id, source=source)}" for rule_id, source in rules]
    sections.append("\n".join([t.get("phrases", "sources_heading"), *lines]))
    sections.append(t.fill("phrases", "knowledge_line", version=ctx.knowledge.version))
    return "\n\n".join(sections)


def _override_reasons(ctx: CardContext, topic: str) -> list[dict[str, str]]:
    reasons = ctx.knowledge.texts["override_reasons"]
    return [{"system": reasons["system"], "code": code, "display": reasons["codes"][code]}
            for code in ctx.texts.topic(topic, "override_reasons")]


def _links(ctx: CardContext, topic: str, source_id: str, findings: list[Finding]) -> list[dict[str, str]]:
    """The card's source, then those of the topic's reviewed links that the fired rules cite.

    A potassium card should not point at the CK guideline just because both are abnormal results.
    """
    topic_links = ctx.texts.topic(topic, "links") if "links" in ctx.knowledge.texts["topics"][topic] else []
    cited = {ref_id for f in findings for ref_id in _REFERENCE_ID.findall(f.source)}
    ids = [source_id, *(ref_id for ref_id in topic_links if ref_id in cited)]
    links = []
    for ref_id in dict.fromkeys(ids):
        ref = ctx.texts.reference(ref_id)
        if ref.get("url"):
            links.append({"label": ref["label"], "url": ref["url"], "type": "absolute"})
    return links
