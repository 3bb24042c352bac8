"""Advice cards: reassurance, treatment options, cramp care, compression, data gaps, differentials.

Like cards/card_builders.py, builders only arrange text from texts.yaml around the findings.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from cards.card_assembly import CardContext, assemble, bounded_summary, cited_references, why_lines
from cards.findings import COMPRESSION, CRAMP_MANAGEMENT, DATA_GAP, DIFFERENTIAL, REASSURANCE, TREATMENT_OPTIONS, Finding
from cards.render import Texts, number, safe
from cards.view import ClinicalFinding, MedicationUse

Card = dict[str, Any]


# ---- reassurance and advice -------------------------------------------------------------------------
def reassurance(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, REASSURANCE
    key = _symptom_key(findings)
    symptoms = t.topic(topic, "symptoms", key)
    given_on = ctx.options.reassurance_date()
    if _recent_reassurance(given_on, ctx):
        day = given_on.isoformat()
        return [assemble(ctx, topic, t.topic(topic, "summary", "repeat").format(date=day, symptoms=symptoms),
                         "info", [], [t.topic(topic, "repeat_detail").format(date=day)], findings)]
    advice = _reassurance_points(t, key)
    anxiety = [f for finding in findings for f in finding.params.get("health_anxiety_findings", ())]
    if any(f.params.get("health_anxiety") for f in findings):
        # One explanation, one card: the health-anxiety advice is here (issue 13 item 15).
        advice = [t.topic(topic, "health_anxiety_point"), *t.topic(topic, "health_anxiety_points"), *advice]
    # Never "a normal work-up" beside a value outside its range: a trivial CK rise is named (issue 13 item 14).
    variant = "trivial_ck" if any(f.params.get("trivial_ck") for f in findings) else "full"
    # Cramp or myokymia without fasciculation: the points come from the fact sheet (S4) alone, so the card
    # cites it, not the fasciculation studies (plus what the health-anxiety advice cites).
    references = None if key in ("fasciculation", "both") else \
        list(dict.fromkeys(["S4", *cited_references(ctx, anxiety, topic)]))
    return [assemble(ctx, topic, t.topic(topic, "summary", variant).format(symptoms=symptoms), "info",
                     why_lines(ctx, [*findings, *anxiety]), advice, [*findings, *anxiety], references=references)]


def _symptom_key(findings: list[Finding]) -> str:
    """Which index symptoms the chart has, so reassurance speaks of those: the fasciculation evidence is
    about twitching, and a cramp-only patient gets the cramp facts (texts.yaml reassurance.symptoms)."""
    concepts = {item.concept for f in findings for item in f.data if isinstance(item, ClinicalFinding)}
    cramp = "muscle_cramp" in concepts
    if "fasciculation" in concepts:
        return "both" if cramp else "fasciculation"
    if "myokymia" in concepts:
        return "myokymia_cramp" if cramp else "myokymia"
    return "cramp"


def _reassurance_points(t: Texts, key: str) -> list[str]:
    if key in ("fasciculation", "both"):
        return [t.topic(REASSURANCE, "common", key), *t.topic(REASSURANCE, "points")]
    points = list(t.topic(REASSURANCE, "cramp_points")) if "cramp" in key else []
    if "myokymia" in key:
        points.extend(t.topic(REASSURANCE, "myokymia_points"))
    return points


def _recent_reassurance(given_on: date | None, ctx: CardContext) -> bool:
    if given_on is None:
        return False
    days = (ctx.view.now.date() - given_on).days
    return 0 <= days <= ctx.knowledge.thresholds.reassurance_repeat_window_days


def treatment_options(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, TREATMENT_OPTIONS
    why, shown = [], []
    for finding in findings:
        symptoms = [item for item in finding.data if not isinstance(item, MedicationUse)]
        for symptom, reason in zip(symptoms, finding.params["reasons"]):
            shown.append(t.topic(topic, "shows", reason).format(
                name=t.name("concepts", symptom.concept), severity=t.name("severity", symptom.severity or ""),
                months=number(finding.params["months"])))
            name = safe(symptom.display) if symptom.display else t.name("concepts", symptom.concept)
            started = symptom.onset_text or symptom.recorded_text or t.get("phrases", "unknown_date")
            line = t.topic(topic, "reasons", reason).format(
                name=name, severity=t.name("severity", symptom.severity or "moderate"), date=started,
                months=number(finding.params["months"]))
            if line not in why:  # the same symptom is often recorded at several visits
                why.append(line)
        why.extend(ctx.renderer.render(item) for item in finding.data if isinstance(item, MedicationUse))
    # The summary states what the chart shows (severity or duration as recorded), the first qualifying
    # symptom (fasciculation before cramp), not a stand-in such as "persistent, bothersome".
    shows = shown[0]
    current = [name for f in findings for name in f.params.get("current", ())]
    if current:  # already on gabapentin, pregabalin or carbamazepine: never offered as new (issue 13 item 10)
        names = " and ".join(dict.fromkeys(current))
        summary = bounded_summary(t.topic(topic, "summary", "already_treated").format(shows=shows, names=names),
                                  t.topic(topic, "summary", "already_treated_short").format(shows=shows))
        advice = [point.format(names=names[:1].upper() + names[1:]) for point in t.topic(topic, "already_points")]
    else:
        summary = t.topic(topic, "summary", "default").format(shows=shows)
        advice = list(t.topic(topic, "points"))
        if any(f.params.get("cramps") for f in findings):
            advice.append(t.topic(topic, "cramp_point"))
    return [assemble(ctx, topic, summary, "info", why, advice, findings)]


def cramp_management(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, CRAMP_MANAGEMENT
    kind = findings[0].kind  # default | pregnancy | pregnancy_possible (one cramp rule fires)
    pregnancy = kind != "default"
    advice = list(t.topic(topic, "pregnancy_points" if pregnancy else "points"))
    if kind == "pregnancy_possible":
        advice.append(t.topic(topic, "pregnancy_possible_point"))
    for medication in (m for f in findings for m in f.data if isinstance(m, MedicationUse)):
        advice.append(t.topic(topic, "diuretic_point").format(medicine=safe(medication.text)))
    merged = [f for finding in findings for f in finding.params.get("restless_legs", ())]
    # Restless legs on file: one card for the legs (issue 13 item 15), its point instead of the question.
    advice.append(t.topic(topic, "rls_point" if merged else "night_point"))
    why = why_lines(ctx, [*findings, *merged])
    why.extend(t.topic(topic, "pregnancy_result").format(reference=safe(ref))
               for f in findings for ref in f.params.get("pregnancy_results", ()))
    return [assemble(ctx, topic, t.topic(topic, "summary", kind), "info", why, advice, [*findings, *merged])]


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
    return [assemble(ctx, topic, summary, indicator, why_lines(ctx, findings), advice, findings)]


def data_gap(findings: list[Finding], ctx: CardContext) -> list[Card]:
    """What could not be fetched or read: never taken for normal or absent (the data-quality policy)."""
    t, topic = ctx.texts, DATA_GAP
    kind = findings[0].kind  # one data-gap finding per review (rules/data_quality.py)
    indicator = "info" if kind == "orders_only" else "warning"
    return [assemble(ctx, topic, t.topic(topic, "summary", kind), indicator, why_lines(ctx, findings),
                     list(t.topic(topic, "points" if kind != "orders_only" else "orders_points")), findings)]


def differential(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, DIFFERENTIAL
    return [assemble(ctx, topic, t.topic(topic, "summary", f.kind), "info", why_lines(ctx, [f]),
                     list(t.localise(t.topic(topic, "points")[f.kind])), [f]) for f in findings]
