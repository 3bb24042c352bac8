"""Laboratory Observations -> the latest valid result per analyte.

Candidates are gathered from the raw JSON in one pass (code + status only); per analyte they are
ranked newest first and walked until one is usable AND passes R4B validation, so a chart with
thousands of results validates only a handful of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping

from cards.fhir_raw import as_dict, as_list, codings, display_date, parse_datetime, reference_to
from cards.knowledge_base import Knowledge, LabCode
from cards.units import normalise, normalise_bound
from cards.view import LabGap, LabResult

ACCEPTED = frozenset({"final", "amended", "corrected"})
# amended/corrected supersede a final result with the same times.
_STATUS_RANK = {"final": 0, "amended": 1, "corrected": 1, "preliminary": 0}
_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)
_LOW_FLAGS = frozenset({"L", "LL", "LU", "<"})
_HIGH_FLAGS = frozenset({"H", "HH", "HU", ">"})


@dataclass
class _Candidate:
    # Dates are parsed only when an analyte's results are ranked, not for every Observation offered.
    resource: Mapping[str, Any]
    lab: LabCode
    status: str


@dataclass
class LabCandidates:
    """Raw lab Observations by analyte, split into accepted and preliminary ones."""

    accepted: dict[str, list[_Candidate]] = field(default_factory=dict)
    preliminary: dict[str, list[_Candidate]] = field(default_factory=dict)
    pregnancy: list[Mapping[str, Any]] = field(default_factory=list)

    def offer(self, resource: Mapping[str, Any], knowledge: Knowledge) -> bool:
        """Keep the Observation if it is a lab the rules read; True when kept."""
        status = resource.get("status")
        if status not in ACCEPTED and status != "preliminary":
            return False
        for system_uri, code, _ in codings(resource.get("code")):
            key = (knowledge.system_of(system_uri), code)
            lab = knowledge.lab_codes.get(key)
            if lab is not None:
                bucket = self.accepted if status in ACCEPTED else self.preliminary
                bucket.setdefault(lab.analyte, []).append(
                    _Candidate(resource, lab, status))
                return True
            if key in knowledge.pregnancy_observation_codes and status in ACCEPTED:
                self.pregnancy.append(resource)
                return True
        return False


def _newest_first(candidates: list[_Candidate]) -> Iterator[_Candidate]:
    """The candidates newest first, exactly as sorted(key=_rank, reverse=True) orders them.

    The newest is nearly always the one used, so it is found first in one pass that parses only the
    effective dates (the issued date and the status break ties, among the tied candidates alone); the
    full sort happens only when the newest is passed over. A chart of 2,000 results parses half the
    dates it otherwise would."""
    if not candidates:
        return
    effective = [effective_of(c.resource) or _EPOCH for c in candidates]
    latest = max(effective)
    tied = [i for i, moment in enumerate(effective) if moment == latest]
    # max() keeps the first of equal maxima, as a stable reverse sort puts it first.
    best = tied[0] if len(tied) == 1 else max(tied, key=lambda i: _rank(candidates[i].resource, candidates[i].status))
    yield candidates[best]
    ranks = [_rank(c.resource, c.status) for c in candidates]
    for index in sorted(range(len(candidates)), key=ranks.__getitem__, reverse=True):
        if index != best:
            yield candidates[index]


def _rank(resource: Mapping[str, Any], status: str) -> tuple[datetime, datetime, int]:
    return (effective_of(resource) or _EPOCH, parse_datetime(resource.get("issued")) or _EPOCH,
            _STATUS_RANK.get(status, 0))


def effective_raw(resource: Mapping[str, Any]) -> Any:
    period = as_dict(resource.get("effectivePeriod")) or {}
    return (resource.get("effectiveDateTime") or resource.get("effectiveInstant") or period.get("start")
            or period.get("end") or resource.get("issued"))


def effective_of(resource: Mapping[str, Any]) -> datetime | None:
    return parse_datetime(effective_raw(resource))


def pick_latest(candidates: LabCandidates, knowledge: Knowledge, sex: str | None,
                is_valid: Callable[[Mapping[str, Any]], bool]) -> tuple[dict[str, LabResult], dict[str, LabGap]]:
    """Latest usable, valid result per analyte (preliminary only when nothing else), and the gaps."""
    results: dict[str, LabResult] = {}
    gaps: dict[str, LabGap] = {}
    for analyte in candidates.accepted.keys() | candidates.preliminary.keys():
        first_unusable = None
        for pool in (candidates.accepted, candidates.preliminary):
            for candidate in _newest_first(pool.get(analyte, ())):
                result = _to_result(candidate, knowledge, sex)
                if result is None:
                    first_unusable = first_unusable or candidate
                    continue
                if not is_valid(candidate.resource):
                    continue
                results[analyte] = result
                break
            if analyte in results:
                break
        if analyte not in results and first_unusable is not None:
            raw = effective_raw(first_unusable.resource)
            gaps[analyte] = LabGap(analyte=analyte, reason="unusable", effective=parse_datetime(raw),
                                   effective_text=display_date(raw), evidence=reference_to(first_unusable.resource))
    return results, gaps


def _to_result(candidate: _Candidate, knowledge: Knowledge, sex: str | None) -> LabResult | None:
    resource, lab = candidate.resource, candidate.lab
    if resource.get("dataAbsentReason") is not None:
        return None
    quantity = normalise(resource.get("valueQuantity"), lab, knowledge)
    if quantity is None and knowledge.analytes[lab.analyte].unitless:
        quantity = _lowest_component(resource, lab, knowledge)
    if quantity is None:
        return None
    low, high, range_source = _reference_range(resource, lab, quantity.original_unit, knowledge)
    if range_source is None:
        analyte = knowledge.analytes[lab.analyte]
        default = analyte.default_range_by_sex.get(sex or "") or analyte.default_range
        if default:
            (low, high), range_source = default, "default"
    raw_effective = effective_raw(resource)
    return LabResult(
        analyte=lab.analyte, value=quantity.value, unit=knowledge.analytes[lab.analyte].canonical_unit,
        code=lab.code, effective=parse_datetime(raw_effective), effective_text=display_date(raw_effective),
        status=resource.get("status"), evidence=reference_to(resource), low=low, high=high,
        range_source=range_source, interpretation=_interpretation(resource, knowledge),
        original_value=quantity.original_value, original_unit=quantity.original_unit, comparator=quantity.comparator,
    )


def _lowest_component(resource: Mapping[str, Any], lab: LabCode, knowledge: Knowledge):
    """An index recorded per side (e.g. ABI right/left components): the lower side counts."""
    values = [normalise(as_dict(component).get("valueQuantity"), lab, knowledge)
              for component in as_list(resource.get("component")) if as_dict(component)]
    values = [value for value in values if value is not None]
    return min(values, key=lambda value: value.value) if values else None


def _reference_range(resource: Mapping[str, Any], lab: LabCode, unit: str, knowledge: Knowledge):
    for entry in as_list(resource.get("referenceRange")):
        entry = as_dict(entry)
        if entry is None:
            continue
        range_type = [code for _, code, _ in codings(entry.get("type"))]
        if range_type and "normal" not in range_type:
            continue  # treatment or therapeutic ranges are not normal limits
        low = normalise_bound(entry.get("low"), lab, unit, knowledge)
        high = normalise_bound(entry.get("high"), lab, unit, knowledge)
        if low is not None or high is not None:
            return low, high, "observation"
    return None, None, None


def _interpretation(resource: Mapping[str, Any], knowledge: Knowledge) -> str | None:
    for concept in as_list(resource.get("interpretation")):
        for system_uri, code, _ in codings(concept):
            if knowledge.system_of(system_uri) not in ("v3_interpretation", None):
                continue
            if code in _LOW_FLAGS:
                return "low"
            if code in _HIGH_FLAGS:
                return "high"
            if code == "N":
                return "normal"
    return None


def pregnancy_from_observations(resources: list[Mapping[str, Any]], knowledge: Knowledge, now: datetime,
                                is_valid: Callable[[Mapping[str, Any]], bool]) -> str | None:
    """Evidence reference when the latest valid pregnancy-status Observation says pregnant, recently."""
    for resource in sorted(resources, key=lambda r: effective_of(r) or _EPOCH, reverse=True):
        if not is_valid(resource):
            continue
        effective = effective_of(resource)
        positive = any((knowledge.system_of(s), c) in knowledge.pregnancy_positive_codes
                       for s, c, _ in codings(resource.get("valueCodeableConcept")))
        recent = effective is not None and now - effective <= timedelta(days=knowledge.pregnancy_max_age_days)
        return (reference_to(resource) or "Observation") if positive and recent else None
    return None

