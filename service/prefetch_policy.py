"""What the service does with the keys it could not obtain: the failure policy each PrefetchKey declares.

After gathering, every key has a FetchResult: complete, incomplete (a page cap, a `next` link the
service may not follow), unsupported (the FHIR server does not offer that search) or failed. Then:

  * resources about another patient than `context.patientId` are dropped (a warning with counts); a
    key left empty by that counts as not obtained, never as an empty chart;
  * an unsupported key whose alternative was obtained is covered (MedicationStatement on Oracle
    Health's R4 API): logged at info, nothing is missing; otherwise it failed;
  * every key that failed or came incomplete reaches the handler as a KeyGap (the cards say what
    could not be seen);
  * a required key that failed makes the answer 412, naming every such key, unless the handler's
    cards stand on what was obtained (a red flag or an abnormal result: HookResult.safe_with_missing_data).

Nothing here knows a clinical rule: the policy is data of the hook's declaration.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.contexts import FHIR_ID
from hooks.declaration import CdsService, HookResult, KeyGap
from service.errors import CdsError, Issue
from service.fhir_client import FetchResult

log = logging.getLogger("service.prefetch")


@dataclass(frozen=True)
class Settled:
    data: dict[str, list[Mapping[str, Any]]]
    gaps: tuple[KeyGap, ...]
    failed_required: tuple[tuple[str, str], ...]  # (key, reason), sorted by key


def settle(service: CdsService, results: Mapping[str, FetchResult], patient_id: Any) -> Settled:
    results = _keep_this_patient(service, dict(results), patient_id)
    results = _apply_alternatives(service, results)
    gaps, failed_required = [], []
    for key, policy in service.prefetch_keys.items():
        result = results[key]
        if result.state == "incomplete":
            gaps.append(KeyGap(key, policy.covers, "incomplete", result.reason))
        elif not result.obtained:
            gaps.append(KeyGap(key, policy.covers, "not_obtained", result.reason))
            if policy.required:
                failed_required.append((key, result.reason))
    data = {key: result.resources for key, result in results.items()}
    return Settled(data, tuple(gaps), tuple(sorted(failed_required)))


def _keep_this_patient(service: CdsService, results: dict[str, FetchResult], patient_id: Any) -> dict[str, FetchResult]:
    dropped = {}
    own_reference = f"Patient/{patient_id}" if isinstance(patient_id, str) and FHIR_ID.fullmatch(patient_id) else None
    for key, result in results.items():
        kept = [resource for resource in result.resources if _about_this_patient(resource, own_reference, patient_id)]
        if len(kept) == len(result.resources):
            continue
        dropped[key] = len(result.resources) - len(kept)
        if kept:
            results[key] = FetchResult(kept, result.state, result.reason)
        else:
            results[key] = FetchResult([], "failed", "every resource it held was about another patient")
    if dropped:
        log.warning("resources about another patient were dropped", extra={
            "event": "other_patient_resources", "service": service.id, "dropped_by_key": dropped,
            "emptied_keys": sorted(key for key in dropped if not results[key].resources)})
    return results


def _about_this_patient(resource: Mapping[str, Any], own_reference: str | None, patient_id: Any) -> bool:
    # Most resources say `subject: {"reference": "Patient/<this id>"}`: kept without taking the reference
    # apart (what _owner would find in it is this id). Anything else is read by _owner.
    if own_reference is not None and resource.get("resourceType") != "Patient":
        subject = resource.get("subject")
        if type(subject) is dict and subject.get("reference") == own_reference:
            return True
    return _owner(resource) in (None, patient_id)


def _owner(resource: Mapping[str, Any]) -> str | None:
    """The patient a resource is about, when it says so by a literal reference (or is the Patient)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") if isinstance(resource.get("id"), str) else None
    for field in ("subject", "patient"):
        reference = resource.get(field)
        reference = reference.get("reference") if isinstance(reference, dict) else None
        if isinstance(reference, str) and "Patient/" in reference:
            return reference.rsplit("Patient/", 1)[1].split("/_history", 1)[0].strip()
    return None


def _apply_alternatives(service: CdsService, results: dict[str, FetchResult]) -> dict[str, FetchResult]:
    for key, policy in service.prefetch_keys.items():
        if results[key].state != "unsupported":
            continue
        cover = next((other for other in policy.alternatives if results[other].state == "complete"), None)
        if cover is not None:
            log.info("prefetch key not supported by the FHIR server; an alternative holds the same data", extra={
                "event": "prefetch_key_unsupported", "service": service.id, "prefetch_key": key,
                "covered_by": cover, "reason": results[key].reason})
            results[key] = FetchResult([], "complete")
        else:
            results[key] = FetchResult([], "failed", results[key].reason)
    return results


def answer_or_412(service: CdsService, settled: Settled, result: HookResult) -> None:
    """412 naming every required key that could not be obtained, unless the cards stand without them."""
    if not settled.failed_required:
        return
    if result.safe_with_missing_data:
        log.info("answered on partial data: the cards show a red flag or an abnormal result", extra={
            "event": "answered_with_missing_data", "service": service.id,
            "prefetch_keys": [key for key, _ in settled.failed_required]})
        return
    raise CdsError(412, precondition_issues(settled.failed_required))


def precondition_issues(failures: tuple[tuple[str, str], ...]) -> list[Issue]:
    """One issue per reason (keys with the same reason together), in key order."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(failures):
        by_reason.setdefault(reason, []).append(key)
    return [Issue(f"Could not obtain prefetch data for {', '.join(keys)}: {reason}.",
                  expression=tuple(f"prefetch.{key}" for key in keys)) for reason, keys in by_reason.items()]
