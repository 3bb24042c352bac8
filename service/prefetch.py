"""Classify each prefetch key of a request and fetch what the EHR did not send.

CDS Hooks 2.0 semantics, key by key:
  resource / Bundle  -> used (a Bundle with a `next` link is paged when the server is reachable)
  null               -> the EHR has no data: empty, never refetched
  absent             -> the EHR chose not to, or could not: fetched from fhirServer
  OperationOutcome   -> the EHR hit an error: fetched from fhirServer
A key that cannot be obtained makes the whole call 412, naming the key.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.declaration import CdsService, render_template
from service.config import Settings
from service.errors import CdsError, Issue
from service.fhir_client import (FetchJob, FhirAccess, FhirClient, FhirUnavailable, absolute_url,
                                 bundle_resources, next_link)

SUPPLIED, NULL, FETCHED = "supplied", "null", "fetched"


@dataclass(frozen=True)
class GatheredData:
    data: dict[str, list[Mapping[str, Any]]]
    how: dict[str, str]  # key -> supplied | null | fetched (for logs and metrics)


def fhir_access(request: Mapping[str, Any], settings: Settings) -> FhirAccess | None:
    """May the service query the EHR's FHIR server, and with which token?"""
    server = request.get("fhirServer")
    if not server:
        return None
    authorization = request.get("fhirAuthorization")
    if authorization:
        return FhirAccess(server, authorization["access_token"])
    if server.rstrip("/") in settings.open_fhir_servers:
        return FhirAccess(server, None)
    return None


def gather(service: CdsService, request: Mapping[str, Any], client: FhirClient,
           settings: Settings) -> GatheredData:
    supplied = request.get("prefetch") or {}
    access = fhir_access(request, settings)
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
        data.update(_fetch(jobs, access, client, settings))
        how.update({key: FETCHED for key in jobs})
    return GatheredData(data, how)


def _fetch(jobs: dict[str, FetchJob], access: FhirAccess | None, client: FhirClient,
           settings: Settings) -> dict[str, list[Mapping[str, Any]]]:
    if access is None:
        keys = ", ".join(sorted(jobs))
        raise CdsError.single(
            412,
            f"Prefetch data for {keys} was not supplied and the service may not query the FHIR "
            "server: the request has no fhirServer with fhirAuthorization, and fhirServer is not "
            "an allowed open server.",
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
