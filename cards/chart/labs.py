"""Laboratory Observations -> the latest readable result per analyte, and what could not be read.

Candidates are gathered in one pass (code and status only), a result inside a panel's `component`
being a candidate of its own. Per analyte they are ranked newest first and walked until one can be
read; a newer result that cannot be read stays on record as unreadable (it blocks reassurance and is
shown on the card), an older one is superseded by the newer readable result and ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping

from cards.chart.dates import display_date, parse_datetime, read_datetime
from cards.chart.raw import Unreadable, codings, element, elements, reference_to
from cards.chart.ranges import interpretation, reference_range
from cards.chart.units import range_unit, read_quantity
from cards.knowledge_base import Knowledge, LabCode
from cards.view import LABS, LabGap, LabResult
from cards.view import Unreadable as UnreadableItem

ACCEPTED = frozenset({"final", "amended", "corrected"})
PRELIMINARY = "preliminary"
# amended/corrected supersede a final result with the same times.
_STATUS_RANK = {"final": 0, "amended": 1, "corrected": 1, "preliminary": 0}
_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)

Trace = Callable[[Mapping[str, Any], str, str], None]  # (resource, used | ignored | unreadable, why)


@dataclass
class Candidate:
    resource: Mapping[str, Any]
    lab: LabCode
    status: str
    part: Mapping[str, Any]  # where value, range and flags are read: the resource or its component
    effective: datetime | None = None
    raw_effective: Any = None


@dataclass
class LabCandidates:
    """Raw lab Observations by analyte, split into accepted and preliminary ones."""

    accepted: dict[str, list[Candidate]] = field(default_factory=dict)
    preliminary: dict[str, list[Candidate]] = field(default_factory=dict)
    pregnancy: list[Mapping[str, Any]] = field(default_factory=list)

    def offer(self, resource: Mapping[str, Any], found) -> str:
        """Keep the lab Observation (``found`` = labs_in()): "" when kept, else why not. Unreadable
        when its status is malformed or missing."""
        if found == PREGNANCY:
            status = _status(resource)
            if status in ACCEPTED:
                self.pregnancy.append(resource)
                return ""
            return f"status {status or 'missing'}"
        status = _status(resource)
        if status not in ACCEPTED and status != PRELIMINARY:
            if status is None:
                raise Unreadable("it has no status")
            return f"status {status}"
        bucket = self.accepted if status in ACCEPTED else self.preliminary
        for lab, part in found:
            bucket.setdefault(lab.analyte, []).append(Candidate(resource, lab, status, part))
        return ""


PREGNANCY = "pregnancy"


def labs_in(resource: Mapping[str, Any], knowledge: Knowledge):
    """[(lab code, where its value is)] for the Observation, PREGNANCY, or None when it holds no lab."""
    system_of, lab_codes = knowledge.system_of, knowledge.lab_codes
    for system_uri, code, _ in codings(resource.get("code")):
        key = (system_of(system_uri), code)
        lab = lab_codes.get(key)
        if lab is not None:
            return [(lab, resource)]
        if key in knowledge.pregnancy_observation_codes:
            return PREGNANCY
    if resource.get("component") is None:
        return None
    found = []
    for component in elements(resource, "component"):
        for system_uri, code, _ in codings(component.get("code"), "component.code"):
            lab = lab_codes.get((system_of(system_uri), code))
            if lab is not None:
                found.append((lab, component))
                break
    return found or None


def _status(resource: Mapping[str, Any]) -> str | None:
    status = resource.get("status")
    if status is None:
        return None
    if not isinstance(status, str):
        raise Unreadable("status is not a code")
    return status.strip().lower() or None


def effective_raw(resource: Mapping[str, Any]) -> Any:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if resource.get(name) is not None:
            return resource[name]
    period = element(resource, "effectivePeriod")
    if period is not None and (period.get("start") or period.get("end")):
        return period.get("start") or period.get("end")
    return resource.get("issued")


def _dated(candidate: Candidate) -> Candidate:
    if candidate.raw_effective is None and candidate.effective is None:
        candidate.raw_effective = effective_raw(candidate.resource)
        candidate.effective = read_datetime(candidate.raw_effective, "effective date")
    return candidate


def _newest_first(candidates: list[Candidate], on_unreadable: Callable[[Candidate, str], None]) -> Iterator[Candidate]:
    """Readable-dated candidates newest first (the newest found in one pass; the full sort only when it
    is passed over). A candidate whose date cannot be read is reported and left out of the ranking."""
    dated = []
    for candidate in candidates:
        try:
            dated.append(_dated(candidate))
        except Unreadable as error:
            on_unreadable(candidate, error.reason)
    if not dated:
        return
    latest = max(c.effective or _EPOCH for c in dated)
    tied = [c for c in dated if (c.effective or _EPOCH) == latest]
    best = tied[0] if len(tied) == 1 else max(tied, key=_rank)
    yield best
    for candidate in sorted(dated, key=_rank, reverse=True):
        if candidate is not best:
            yield candidate


def _rank(candidate: Candidate) -> tuple[datetime, datetime, int]:
    return (candidate.effective or _EPOCH, parse_datetime(candidate.resource.get("issued")) or _EPOCH,
            _STATUS_RANK.get(candidate.status, 0))


def pick_latest(candidates: LabCandidates, knowledge: Knowledge, sex: str | None, trace: Trace | None = None,
                age: int | None = None):
    """(latest readable result per analyte, analytes whose results have no value, results that could not be
    read and are not superseded by a newer readable one).

    A final (or amended, corrected) result is used before a preliminary one, except that a newer
    preliminary result outside its range wins over an older final one: safety first, it is shown as
    preliminary (issue 13 item 3). A preliminary result alone is used when nothing else exists."""
    results: dict[str, LabResult] = {}
    gaps: dict[str, LabGap] = {}
    unreadable: list[UnreadableItem] = []
    for analyte in candidates.accepted.keys() | candidates.preliminary.keys():
        newer_unreadable: list[UnreadableItem] = []

        def note(candidate: Candidate, reason: str) -> None:
            newer_unreadable.append(_unreadable(candidate, reason))
            if trace:
                trace(candidate.resource, "unreadable", f"{analyte} result: {reason}")

        read = _Reader(knowledge, sex, age, note, trace, analyte)
        chosen = read.first(candidates.accepted.get(analyte, []))
        preliminary = read.first(candidates.preliminary.get(analyte, []), newer_than=chosen)
        if preliminary is not None and (chosen is None or preliminary.direction in ("low", "high")):
            chosen = preliminary if chosen is None else replace(preliminary, older_final=chosen)
            used = read.used[id(preliminary)]
        else:
            used = read.used.get(id(chosen))
        if chosen is not None:
            results[analyte] = chosen
            if trace:
                trace(used, "used", f"latest readable {analyte} result")
        unreadable.extend(item for item in newer_unreadable if chosen is None or _not_older(item, chosen))
        if chosen is None and read.first_unusable is not None:
            first = read.first_unusable
            gaps[analyte] = LabGap(analyte=analyte, reason="unusable", effective=first.effective,
                                   effective_text=display_date(first.raw_effective), evidence=reference_to(first.resource))
    return results, gaps, unreadable


class _Reader:
    """Walks one pool of an analyte's candidates newest first to the first readable result."""

    def __init__(self, knowledge: Knowledge, sex: str | None, age: int | None, note, trace: Trace | None,
                 analyte: str) -> None:
        self.knowledge, self.sex, self.age, self.note, self.trace, self.analyte = knowledge, sex, age, note, trace, analyte
        self.first_unusable: Candidate | None = None
        self.used: dict[int, Mapping[str, Any]] = {}

    def first(self, pool: list[Candidate], newer_than: LabResult | None = None) -> LabResult | None:
        found = None
        for candidate in _newest_first(pool, self.note):
            if found is not None or (newer_than is not None and not _newer(candidate, newer_than)):
                # Newest first, so every candidate left is passed over too. Without a trace to tell, stop:
                # the rest would only be ranked (their `issued` dates parsed) to be ignored.
                if not self.trace:
                    break
                self.trace(candidate.resource, "ignored", f"an equal or newer {self.analyte} result was used")
                continue
            try:
                result = _to_result(candidate, self.knowledge, self.sex, self.age)
            except Unreadable as error:
                self.note(candidate, error.reason)
                continue
            if result is None:
                self.first_unusable = self.first_unusable or candidate
                if self.trace:
                    self.trace(candidate.resource, "ignored", f"the {self.analyte} result has no value")
                continue
            found = result
            self.used[id(result)] = candidate.resource
            if not self.trace:
                break  # before asking _newest_first for the next one, which would rank them all
        return found


def _newer(candidate: Candidate, than: LabResult) -> bool:
    return candidate.effective is not None and (than.effective is None or candidate.effective > than.effective)


def _not_older(item: UnreadableItem, chosen: LabResult) -> bool:
    moment = parse_datetime(item.date_text) if item.date_text else None
    return moment is None or chosen.effective is None or moment >= chosen.effective.replace(
        hour=0, minute=0, second=0, microsecond=0)


def _unreadable(candidate: Candidate, reason: str) -> UnreadableItem:
    return UnreadableItem(domain=LABS, kind="lab", subject=candidate.lab.analyte, reason=reason,
                          date_text=display_date(candidate.raw_effective), evidence=reference_to(candidate.resource),
                          resource_type="Observation")


def _to_result(candidate: Candidate, knowledge: Knowledge, sex: str | None, age: int | None) -> LabResult | None:
    resource, lab, part = candidate.resource, candidate.lab, candidate.part
    analyte = knowledge.analytes[lab.analyte]
    where = "component" if part is not resource else "value"
    if part.get("dataAbsentReason") is not None and part.get("valueQuantity") is None:
        return None
    quantity = read_quantity(part.get("valueQuantity"), lab, knowledge, f"{where}Quantity",
                             fallback_unit=range_unit(elements(part, "referenceRange"), knowledge))
    if quantity is None and analyte.unitless:
        quantity = _lowest_component(resource, lab, knowledge)
    if quantity is None:
        other = next((name for name in part if name.startswith("value") and name != "valueQuantity"), None)
        if other:
            raise Unreadable(f"the value is a {other[5:] or 'value'}, not a quantity")
        return None
    chosen = reference_range(part, lab, quantity.original_unit, analyte, knowledge, sex, age)
    return LabResult(
        analyte=lab.analyte, value=quantity.value, unit=analyte.canonical_unit, code=lab.code,
        effective=candidate.effective, effective_text=display_date(candidate.raw_effective),
        status=candidate.status, evidence=reference_to(resource), low=chosen.low, high=chosen.high,
        range_source=chosen.source, interpretation=interpretation(part, knowledge),
        original_value=quantity.original_value, original_unit=quantity.original_unit, comparator=quantity.comparator,
        range_filled=chosen.filled, range_sex=chosen.sex,
    )


def _lowest_component(resource: Mapping[str, Any], lab: LabCode, knowledge: Knowledge):
    """An index recorded per side (e.g. ABI right/left components): the lower side counts."""
    values = [read_quantity(component.get("valueQuantity"), lab, knowledge, "component.valueQuantity")
              for component in elements(resource, "component")]
    values = [value for value in values if value is not None]
    return min(values, key=lambda value: value.value) if values else None


def pregnancy_from_observations(resources: list[Mapping[str, Any]], knowledge: Knowledge, now: datetime) -> str | None:
    """Evidence reference when the latest pregnancy-status Observation says pregnant, recently."""
    dated = []
    for resource in resources:
        try:
            dated.append((read_datetime(effective_raw(resource), "effective date") or _EPOCH, resource))
        except Unreadable:
            continue
    for effective, resource in sorted(dated, key=lambda pair: pair[0], reverse=True):
        try:
            values = codings(resource.get("valueCodeableConcept"), "valueCodeableConcept")
        except Unreadable:
            continue
        positive = any((knowledge.system_of(s), c) in knowledge.pregnancy_positive_codes for s, c, _ in values)
        recent = effective is not _EPOCH and now - effective <= timedelta(days=knowledge.pregnancy_max_age_days)
        return (reference_to(resource) or "Observation") if positive and recent else None
    return None
