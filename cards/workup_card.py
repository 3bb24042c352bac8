"""The work-up card: what is missing, precisely, and the orders that complete it in the local order set.

Each test gets one line. A single test says where it stands; a panel names each part ("BMP: urea
(BUN) and creatinine missing; sodium 139 mmol/L and potassium 3.1 mmol/L on file", issue 13 item 13).
A result older than its window is history: its date is given, its value too when it was out of range,
and a repeat is asked for (item 9). Suggestions follow the locale's order set (labs.yaml order_sets):
a US BMP contains calcium, so the two are never suggested side by side (item 12).
"""
from __future__ import annotations

from typing import Any

from cards.card_assembly import CardContext, assemble, suggestion
from cards.findings import WORKUP_INCOMPLETE, Finding
from cards.render import join_names, number, safe
from cards.rules.labs import ck_ratio
from cards.rules.workup import STATUS_SEVERITY, Component
from cards.view import LabResult

Card = dict[str, Any]
SUGGESTED_STATUSES = ("missing", "unseen", "stale", "unusable")


def workup_incomplete(findings: list[Finding], ctx: CardContext) -> list[Card]:
    t, topic = ctx.texts, WORKUP_INCOMPLETE
    wanted = [f.params["order"] for f in findings if f.params["status"] in SUGGESTED_STATUSES]
    chosen = suggested_orderables(ctx, wanted)
    providers = {key: next(o for o in chosen if key in ctx.knowledge.orderable_covers[o]) for key in wanted}
    order_set = ctx.knowledge.order_sets[t.locale]
    why = []
    for finding in findings:
        key = finding.params["order"]
        line = status_line(ctx, finding)
        if key in providers and providers[key] != order_set[key]:
            line = t.topic(topic, "included").format(line=line, orderable=t.name("orderables", providers[key]))
        why.append(line)
    statuses = {finding.params["status"] for finding in findings}
    if chosen:
        variant = "unseen" if "unseen" in statuses else "missing"
        tests = ", ".join(t.name("orderables", orderable) for orderable in chosen)
        summary = t.topic(topic, "summary", variant).format(tests=tests)
        if len(summary) > 139:
            summary = t.topic(topic, "summary", "missing_generic")
    else:
        summary = t.topic(topic, "summary", "unreadable" if "unreadable" in statuses else "pending")
    advice = [t.topic(topic, "intro"), *_notes(ctx, findings)]
    suggestions = [_lab_suggestion(ctx, orderable) for orderable in chosen]
    return [assemble(ctx, topic, summary, "info", why, advice, findings,
                     suggestions=suggestions or None, selection="any")]


def suggested_orderables(ctx: CardContext, wanted: list[str]) -> list[str]:
    """The locale's orderable for each missing work-up order, less any whose orders another one chosen
    already provides (a US BMP provides the calcium)."""
    order_set, covers = ctx.knowledge.order_sets[ctx.texts.locale], ctx.knowledge.orderable_covers
    chosen = list(dict.fromkeys(order_set[key] for key in wanted))
    for orderable in list(chosen):
        needed = {key for key in wanted if order_set[key] == orderable}
        others = set().union(*(covers[other] for other in chosen if other != orderable))
        if needed <= others:
            chosen.remove(orderable)
    return chosen


def status_line(ctx: CardContext, finding: Finding) -> str:
    t, params = ctx.texts, finding.params
    test = t.name("orders", params["order"])
    status = params["status"]
    if status == "ordered":
        order = finding.data[-1]
        return _capital(t.topic(WORKUP_INCOMPLETE, "status", "ordered").format(
            test=test, reference=safe(getattr(order, "evidence", None) or "ServiceRequest")))
    components: tuple[Component, ...] = params["components"]
    open_parts = [c for c in components if c.status is not None]
    if len(components) == 1 or (len(open_parts) == len(components) and len({c.status for c in components}) == 1):
        return _capital(_single(ctx, test, open_parts))
    parts = []
    for state in STATUS_SEVERITY:
        group = [c for c in components if c.status == state]
        if group:
            parts.append(_part(ctx, state, group))
    present = [c.item for c in components if c.status is None and isinstance(c.item, LabResult)]
    if present:
        results = join_names([_lower(ctx.renderer.short(result)) for result in present])
        parts.append(t.topic(WORKUP_INCOMPLETE, "parts", "present").format(results=results))
    return _capital(t.topic(WORKUP_INCOMPLETE, "panel_line").format(test=test, parts="; ".join(parts)))


def _single(ctx: CardContext, test: str, components: list[Component]) -> str:
    """The line of a test whose parts all share one status (or of a one-result test)."""
    t = ctx.texts
    component = components[0]
    status, item = component.status, component.item
    when = _date(ctx, [c.item for c in components])
    if status == "stale":
        stale = [c.item for c in components if isinstance(c.item, LabResult)]
        out = [result for result in stale if result.direction in ("low", "high")]
        if out:
            result = out[0]
            # The same test as the CK red flag (rules/red_flags.py), on the unrounded value: a CK of 2.98x
            # is not "3x or more" here either, though it is shown as 3.0x.
            red_flag = result.analyte == "ck" and ck_ratio(result) is not None and \
                result.value >= ctx.knowledge.thresholds.ck_red_flag_ratio_at_least * result.high
            key = "stale_red_flag" if red_flag else "stale_abnormal"
            return t.topic(WORKUP_INCOMPLETE, "status", key).format(
                test=test, result=ctx.renderer.render(result, {}), months=number(component.months))
    return t.topic(WORKUP_INCOMPLETE, "status", status).format(
        test=test, date=when, months=number(min(c.months for c in components)),
        reason=safe(getattr(item, "reason", "")))


def _part(ctx: CardContext, state: str, group: list[Component]) -> str:
    t = ctx.texts
    names = join_names([_component_name(ctx, c) for c in group])
    return t.topic(WORKUP_INCOMPLETE, "parts", state).format(
        names=names, months=number(min(c.months for c in group)), date=_date(ctx, [c.item for c in group]),
        reason=safe(next((getattr(c.item, "reason", "") for c in group if getattr(c.item, "reason", "")), "")))


def _component_name(ctx: CardContext, component: Component) -> str:
    name = _lower(ctx.texts.name("analytes", component.analytes[0]))
    item = component.item
    if component.status == "stale" and isinstance(item, LabResult) and item.direction in ("low", "high"):
        return f"{name} ({_lower(ctx.renderer.short(item))}, {ctx.texts.get('phrases', f'flag_{item.direction}')})"
    return name


def _date(ctx: CardContext, items: list[Any]) -> str:
    dates = [getattr(i, "effective_text", None) or getattr(i, "date_text", None) for i in items if i is not None]
    dates = [d for d in dates if d]
    return max(dates) if dates else ctx.texts.get("phrases", "unknown_date")


def _notes(ctx: CardContext, findings: list[Finding]) -> list[str]:
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


def _lab_suggestion(ctx: CardContext, orderable: str) -> dict[str, Any]:
    t, knowledge = ctx.texts, ctx.knowledge
    resource = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [dict(knowledge.lab_order_category)]}],
        "code": {key: [dict(c) for c in value] if key == "coding" else value
                 for key, value in knowledge.orderable_suggestions[orderable].items()},
        "subject": {"reference": f"Patient/{ctx.view.patient_id}"},
    }
    return suggestion(t.topic(WORKUP_INCOMPLETE, "suggestion", "label").format(test=t.name("orderables", orderable)),
                      t.topic(WORKUP_INCOMPLETE, "suggestion", "description").format(
                          test_long=t.name("orderables_long", orderable)), resource)


lab_suggestion = _lab_suggestion  # the prescribing cards (cards/prescribing_cards.py) suggest the same orders




def _lower(name: str) -> str:
    """A name inside a sentence: "Creatinine" -> "creatinine"; acronyms ("TSH", "CK", "eGFR") kept."""
    return name[:1].lower() + name[1:] if name[1:2].islower() else name


def _capital(line: str) -> str:
    return line[:1].upper() + line[1:]
