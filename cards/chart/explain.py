"""The data-quality report behind `fasciculation-cds evaluate --explain FILE`.

For an integration team asking "why did my potassium not show?": every resource of a request or a
patient Bundle, as the reading layer saw it: used (for what), ignored (why) or unreadable (why), with
notes on what was read leniently (a dateTime without a time zone) and, as advice only, what strict
FHIR R4B validation (fhir.resources) says about the resource. Validation never decides anything: it
is shown so the EHR side can fix its data at the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from cards.chart.dates import zone_note
from cards.chart.reader import collect
from cards.knowledge_base import Knowledge, load_knowledge

USED, IGNORED, UNREADABLE = "used", "ignored", "unreadable"
_RANK = {UNREADABLE: 2, USED: 1, IGNORED: 0}
_DATE_ELEMENTS = ("effectiveDateTime", "effectiveInstant", "issued", "onsetDateTime", "recordedDate", "authoredOn",
                  "dateAsserted", "birthDate")
_MAX_ADVICE = 5


@dataclass
class Entry:
    reference: str  # "Observation/k1", or "Observation #12" without an id
    source: str | None  # the prefetch key it came in, when known
    disposition: str = IGNORED
    why: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"resource": self.reference, "prefetchKey": self.source, "disposition": self.disposition,
                "why": self.why, "notes": self.notes, "r4bValidation": self.advice}


def explain(resources: Iterable[tuple[str | None, Any]], *, patient_id: str, now: datetime,
            knowledge: Knowledge | None = None, validate: bool = True) -> list[Entry]:
    """One Entry per resource (``resources``: (prefetch key or None, resource) pairs), in input order."""
    knowledge = knowledge or load_knowledge()
    pairs = list(resources)
    entries = [Entry(_label(resource, index), source) for index, (source, resource) in enumerate(pairs)]
    by_identity = {id(resource): entry for (_, resource), entry in zip(pairs, entries)}

    def trace(resource: Any, disposition: str, why: str) -> None:
        entry = by_identity.get(id(resource))
        if entry is None:
            return
        if _RANK[disposition] > _RANK[entry.disposition] or not entry.why:
            entry.disposition = disposition
        if why not in entry.why:
            entry.why.append(why)

    state = collect([resource for _, resource in pairs], patient_id=patient_id, now=now, knowledge=knowledge,
                    trace=trace)
    state.complete()
    for (_, resource), entry in zip(pairs, entries):
        if not entry.why:
            entry.why.append("not read: the review did not need it")
        if isinstance(resource, Mapping):
            entry.notes = [note for note in (zone_note(resource.get(name), name) for name in _DATE_ELEMENTS) if note]
            if validate:
                entry.advice = r4b_advice(resource)
    return entries


def r4b_advice(resource: Mapping[str, Any]) -> list[str]:
    """What strict R4B validation says about the resource (first few messages); [] when it is valid."""
    from fhir.resources.R4B import get_fhir_model_class  # only here: the service never validates
    try:
        model = get_fhir_model_class(str(resource.get("resourceType")))
    except (KeyError, ValueError):
        return [f"resourceType {str(resource.get('resourceType'))[:40]!r} is not an R4B resource type"]
    try:
        model.model_validate(dict(resource))
    except Exception as error:  # noqa: BLE001 - pydantic ValidationError and its relatives
        errors = getattr(error, "errors", None)
        if not callable(errors):
            return [str(error).splitlines()[0][:200]]
        return [" ".join(f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}".split())[:200]
                for problem in errors()[:_MAX_ADVICE]]
    return []


def _label(resource: Any, index: int) -> str:
    if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
        if isinstance(resource.get("id"), str) and resource["id"]:
            return f"{resource['resourceType']}/{resource['id']}"
        return f"{resource['resourceType']} #{index + 1}"
    return f"entry #{index + 1} (not a FHIR resource)"


def render(entries: list[Entry], *, patient_id: str, now: datetime) -> str:
    """The report as text, unreadable first (that is what an integrator is looking for)."""
    counts = {kind: sum(1 for e in entries if e.disposition == kind) for kind in (UNREADABLE, USED, IGNORED)}
    lines = [f"Data-quality report for patient {patient_id} as of {now.isoformat()}: {len(entries)} resources, "
             f"{counts[USED]} used, {counts[IGNORED]} ignored, {counts[UNREADABLE]} unreadable."]
    for kind in (UNREADABLE, USED, IGNORED):
        chosen = [entry for entry in entries if entry.disposition == kind]
        if not chosen:
            continue
        lines += ["", kind.upper()]
        for entry in chosen:
            where = f" [{entry.source}]" if entry.source else ""
            lines.append(f"  {entry.reference}{where}: {'; '.join(entry.why)}")
            lines += [f"      note: {note}" for note in entry.notes]
            lines += [f"      R4B validation (advice only): {advice}" for advice in entry.advice]
    return "\n".join(lines)
