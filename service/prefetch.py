"""Classify each prefetch key of a request and fetch what the EHR did not send.

CDS Hooks 2.0 semantics, key by key:
  resource / Bundle  -> used (a Bundle with a `next` link is paged when the server is reachable)
  null               -> the EHR has no data: empty, never refetched
  absent             -> the EHR chose not to, or could not: fetched from fhirServer
  OperationOutcome   -> the EHR hit an error: fetched from fhirServer
A key that cannot be obtained makes the whole call 412, naming the key.

Which FHIR server may be queried depends on who called: a trusted client only its own
registered bases (https, public addresses, unless its configuration says otherwise); an
unsigned call, possible only in development mode, the developer's servers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hooks.declaration import CdsService, render_template
from service import metrics
from service.config import Settings
from service.errors import CdsError, Issue
from service.fhir_client import (FetchJob, FhirAccess, FhirClient, FhirUnavailable, absolute_url,
                                 bundle_resources, next_link)
from service.ssrf import LOOPBACK_ALLOWED, PRIVATE_ALLOWED, PUBLIC_ONLY

if TYPE_CHECKING:
    from service.auth import AuthenticatedClient

log = logging.getLogger("service.prefetch")

SUPPLIED, NULL, FETCHED = "supplied", "null", "fetched"
FAILED = "failed"  # only in metrics: a call with a failed key is answered 412


@dataclass(frozen=True)
class GatheredData:
    data: dict[str, list[Mapping[str, Any]]]
    how: dict[str, str]  # key -> supplied | null | fetched (for logs and metrics)


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
    data: dict[str, list[Mapping[str, Any]]] = {}
    how: dict[str, str] = {}
    jobs: dict[str, FetchJob] = {}
    for key, template in service.prefetch.items():
        value = supplied.get(key, _ABSENT)
        if value is None:
            data[key], how[key] = [], NULL
        elif value is _ABSENT or _is_operation_outcome(value):
            query = render_template(template, request["context"])
            if query is None:  # e.g. an encounterId template on a call without an encounter
                data[key], how[key] = [], NULL
            else:
                jobs[key] = FetchJob(absolute_url(access.base_url, query) if access else query)
        else:
            resources, continuation = _supplied_value(key, value)
            if continuation and access:
                jobs[key] = FetchJob(absolute_url(access.base_url, continuation),
                                     tuple(resources), pages_already_read=1)
            else:
                data[key], how[key] = resources, SUPPLIED
    if jobs:
        try:
            data.update(_fetch(jobs, decision, client, settings, caller))
        except CdsError as error:
            failed = {where.removeprefix("prefetch.") for issue in error.issues for where in issue.expression}
            metrics.count_prefetch_keys(service.id, {**how, **dict.fromkeys(sorted(failed & jobs.keys()), FAILED)})
            raise
        how.update({key: FETCHED for key in jobs})
    metrics.count_prefetch_keys(service.id, how)
    return GatheredData(data, how)


def _fetch(jobs: dict[str, FetchJob], decision: FhirDecision, client: FhirClient, settings: Settings,
           caller: AuthenticatedClient | None) -> dict[str, list[Mapping[str, Any]]]:
    access = decision.access
    if access is None:
        keys = ", ".join(sorted(jobs))
        log.warning("FHIR server may not be queried", extra={
            "event": "fhir_access_refused", "reason": decision.refusal, "prefetch_keys": sorted(jobs),
            "iss": caller and caller.iss, "tenant": caller and caller.tenant, "jti": caller and caller.jti})
        raise CdsError.single(
            412,
            f"Prefetch data for {keys} was not supplied and the service may not query the FHIR "
            f"server: {decision.refusal}.",
            expression=[f"prefetch.{key}" for key in sorted(jobs)])
    deadline = time.monotonic() + settings.fhir_deadline_seconds
    try:
        return client.fetch_all(access, jobs, deadline)
    except FhirUnavailable as unavailable:
        raise CdsError(412, [
            Issue(f"Could not obtain prefetch data for {failure.key}: {failure.reason}.",
                  expression=(f"prefetch.{failure.key}",))
            for failure in unavailable.failures]) from None


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
