"""Classify each prefetch key of a request and fetch what the EHR did not send.

CDS Hooks 2.0 semantics, key by key:
  resource / Bundle  -> used (a Bundle with a `next` link is paged when the server is reachable)
  null               -> the EHR has no data: empty, never refetched
  absent             -> the EHR chose not to, or could not: fetched from fhirServer
  OperationOutcome   -> the EHR hit an error: fetched from fhirServer (unless it says the
                        search is not supported: then the key is unsupported)
A supplied Bundle with a `next` link the service may not follow is incomplete, and so is a key
cut off at the page cap. What then happens to keys not obtained is each key's declared policy
(service/prefetch_policy.py): a gap the cards name, or a 412 naming every required key.

Which FHIR server may be queried depends on who called: a trusted client only its own
registered bases (https, public addresses, unless its configuration says otherwise); an
unsigned call, possible only in development mode, the developer's servers.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hooks.declaration import CdsService, FetchedReferences, ReferenceFetcher, render_template
from service import metrics
from service.config import Settings
from service.errors import CdsError
from service.fhir_client import (FetchJob, FetchResult, FhirAccess, FhirClient, absolute_url, bundle_resources,
                                 next_link, says_not_supported)
from service.prefetch_policy import Settled, settle
from service.ssrf import LOOPBACK_ALLOWED, PRIVATE_ALLOWED, PUBLIC_ONLY

if TYPE_CHECKING:
    from service.auth import AuthenticatedClient

log = logging.getLogger("service.prefetch")

SUPPLIED, NULL, FETCHED = "supplied", "null", "fetched"
FAILED, INCOMPLETE = "failed", "incomplete"  # a key not obtained, or only partly


@dataclass(frozen=True)
class GatheredData:
    data: dict[str, list[Mapping[str, Any]]]
    how: dict[str, str]  # key -> supplied | null | fetched | failed | incomplete (for logs and metrics)
    settled: Settled  # the gaps the handler is told about, and the required keys that failed
    fetch_references: ReferenceFetcher


@dataclass(frozen=True)
class FhirDecision:
    access: FhirAccess | None
    refusal: str = ""  # why the FHIR server may not be queried; said in the 412


def fhir_access(request: Mapping[str, Any], settings: Settings,
                caller: AuthenticatedClient | None = None) -> FhirAccess | None:
    """May the service query the EHR's FHIR server, and with which token?"""
    return decide_fhir_access(request, settings, caller).access


def decide_fhir_access(request: Mapping[str, Any], settings: Settings,
                       caller: AuthenticatedClient | None = None) -> FhirDecision:
    server = request.get("fhirServer")
    if not server:
        return FhirDecision(None, "the request has no fhirServer")
    authorization = request.get("fhirAuthorization")
    token = authorization["access_token"] if authorization else None
    if caller is None:
        return _unsigned_call_access(server, token, settings)
    grant = caller.client.grant_for(server)
    if grant is None:
        return FhirDecision(None, _unregistered_reason(server, caller))
    if token is None and not grant.without_token:
        return FhirDecision(None, "the request has no fhirAuthorization for its fhirServer")
    # The registered base, not the request's spelling of it, is what gets connected to.
    return FhirDecision(FhirAccess(grant.base_url, token,
                                   PRIVATE_ALLOWED if grant.private_network else PUBLIC_ONLY))


def _unsigned_call_access(server: str, token: str | None, settings: Settings) -> FhirDecision:
    # Only development mode serves unsigned calls. Its FHIR servers are the developer's own,
    # often on this machine (loopback, plain http); other private networks and cloud metadata
    # stay closed unless listed in CDS_OPEN_FHIR_SERVERS.
    if server.rstrip("/") in settings.open_fhir_servers:
        return FhirDecision(FhirAccess(server, token, PRIVATE_ALLOWED))
    if token:
        return FhirDecision(FhirAccess(server, token, LOOPBACK_ALLOWED))
    return FhirDecision(None, "the request has no fhirServer with fhirAuthorization, and fhirServer "
                              "is not an allowed open server")


def _unregistered_reason(server: str, caller: AuthenticatedClient) -> str:
    if urlsplit(server).scheme == "http" and caller.client.grant_for("https" + server[4:]):
        return "fhirServer must use https"
    return "fhirServer is not a FHIR server registered for this CDS client"


def gather(service: CdsService, request: Mapping[str, Any], client: FhirClient,
           settings: Settings, caller: AuthenticatedClient | None = None) -> GatheredData:
    supplied = request.get("prefetch") or {}
    decision = decide_fhir_access(request, settings, caller)
    access = decision.access
    deadline = time.monotonic() + settings.fhir_deadline_seconds  # one deadline: keys and references
    results: dict[str, FetchResult] = {}
    how: dict[str, str] = {}
    jobs: dict[str, FetchJob] = {}
    refused: list[str] = []
    for key, template in service.prefetch.items():
        value = supplied.get(key, _ABSENT)
        if value is None:
            results[key], how[key] = FetchResult(), NULL
        elif _is_operation_outcome(value) and says_not_supported(value):
            results[key] = FetchResult(state="unsupported", reason="the EHR answered that this search is not supported")
            how[key] = SUPPLIED
        elif value is _ABSENT or _is_operation_outcome(value):
            query = render_template(template, request["context"])
            if query is None:  # e.g. an encounterId template on a call without an encounter
                results[key], how[key] = FetchResult(), NULL
            elif access is None:
                refused.append(key)
                results[key] = FetchResult(state="failed", reason=f"it was not prefetched and the service may not "
                                                                  f"query the FHIR server: {decision.refusal}")
            else:
                jobs[key] = FetchJob(absolute_url(access.base_url, query))
        else:
            resources, continuation = _supplied_value(key, value)
            if continuation and access:
                jobs[key] = FetchJob(absolute_url(access.base_url, continuation), tuple(resources), pages_already_read=1)
            else:
                # A first page alone is not the whole answer: the key is incomplete, and says so.
                results[key] = FetchResult(resources, "incomplete", _UNFOLLOWED) if continuation else FetchResult(resources)
                how[key] = SUPPLIED
    if refused:
        log.warning("FHIR server may not be queried", extra={
            "event": "fhir_access_refused", "reason": decision.refusal, "prefetch_keys": sorted(refused),
            "iss": caller and caller.iss, "tenant": caller and caller.tenant, "jti": caller and caller.jti})
    if jobs:
        results.update(client.fetch_all(access, jobs, deadline))
        how.update({key: FETCHED for key in jobs})
    settled = settle(service, results, request["context"].get("patientId"))
    for gap in settled.gaps:
        how[gap.key] = FAILED if gap.kind == "not_obtained" else INCOMPLETE
    metrics.count_prefetch_keys(service.id, how)
    return GatheredData(settled.data, how, settled, _reference_fetcher(client, access, deadline, decision.refusal))


# References (`Type/id`) a hook may ask for, and how many per call.
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")
MAX_REFERENCES = 50
_UNFOLLOWED = "the EHR sent only the first page, and the service may not query the FHIR server for the rest"


def _reference_fetcher(client: FhirClient, access: FhirAccess | None, deadline: float,
                       refusal: str) -> ReferenceFetcher:
    """HookCall.fetch_references: reads under the call's access rules and within its deadline."""
    def fetch(references: Sequence[str]) -> FetchedReferences:
        wanted = list(dict.fromkeys(references))
        failures = {ref: "not a relative reference of the form Type/id" for ref in wanted if not _REFERENCE.match(ref)}
        wanted = [ref for ref in wanted if ref not in failures]
        failures.update({ref: f"more than {MAX_REFERENCES} references in one call" for ref in wanted[MAX_REFERENCES:]})
        wanted = wanted[:MAX_REFERENCES]
        if access is None:
            failures.update({ref: f"the service may not query the FHIR server: {refusal}" for ref in wanted})
            return FetchedReferences([], failures)
        results = client.fetch_references(access, wanted, deadline) if wanted else {}
        failures.update({ref: result.reason for ref, result in results.items() if not result.obtained})
        return FetchedReferences([r for result in results.values() if result.obtained for r in result.resources],
                                 failures)
    return fetch


def _supplied_value(key: str, value: Any) -> tuple[list[Mapping[str, Any]], str | None]:
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise CdsError.single(
            400, f"prefetch.{key} must be a FHIR resource, a Bundle or null.",
            expression=[f"prefetch.{key}"])
    if value["resourceType"] == "Bundle":
        return bundle_resources(value), next_link(value)
    return [value], None


def _is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()
