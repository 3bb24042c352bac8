"""Fetching the FHIR data an EHR did not prefetch.

All missing keys are fetched concurrently under one overall deadline: an EHR waits for
the cards, so a slow FHIR server must cost a 412 on time, not a hung chart. Every key is
waited for (up to the deadline), so an answer names each key that failed, and whether the
server said it does not support the search at all (404, 400, `not-supported`). The bearer
token only ever goes to the EHR's own origin: redirects and Bundle `next` links to any
other origin are refused, and the token is never logged or kept past the request. Every
connection is opened through `service.ssrf`, which refuses addresses the access's policy
does not allow (private networks, loopback, cloud metadata) at connection time.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests

from service import metrics
from service.config import Settings
from service.fhir_bundles import bundle_resources, next_link, says_not_supported
from service.ssrf import PUBLIC_ONLY, AddressPolicy, ForbiddenAddress, VettedAdapter

__all__ = ["FetchJob", "FetchResult", "FhirAccess", "FhirClient", "FhirFetchError", "absolute_url", "bundle_resources",
           "next_link", "says_not_supported"]
log = logging.getLogger("service.fhir")

_MAX_REDIRECTS = 3
_CHUNK_BYTES = 64 * 1024
_CACHED_SESSIONS = 64


# Answers by which a FHIR server says it does not offer a search at all (Oracle Health's R4 API has
# no MedicationStatement): unknown type, unsupported parameter, method not allowed, not implemented.
_UNSUPPORTED_STATUS = frozenset({400, 404, 405, 501})


class FhirFetchError(Exception):
    """One prefetch key could not be obtained; the message is safe to show a caller."""

    def __init__(self, message: str, *, unsupported: bool = False):
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class FhirAccess:
    base_url: str
    bearer_token: str | None = field(default=None, repr=False)
    address_policy: AddressPolicy = PUBLIC_ONLY

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return _origin(self.base_url)


@dataclass(frozen=True)
class FetchJob:
    """Where to read one prefetch key: a fresh query, or the next page of a supplied Bundle."""

    url: str
    already_collected: tuple[Mapping[str, Any], ...] = ()
    pages_already_read: int = 0


@dataclass(frozen=True)
class FetchResult:
    """What became of one key: its resources, and whether they are all of them."""

    resources: list[Mapping[str, Any]] = field(default_factory=list)
    state: str = "complete"  # complete | incomplete (page cap) | failed | unsupported
    reason: str = ""

    @property
    def obtained(self) -> bool:
        return self.state in ("complete", "incomplete")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def absolute_url(base_url: str, relative: str) -> str:
    return urljoin(base_url.rstrip("/") + "/", relative.lstrip("/"))


class FhirClient:
    """A pool of keep-alive sessions per FHIR origin and a thread pool for parallel keys."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._sessions: OrderedDict[tuple[tuple[str, str, int | None], AddressPolicy],
                                    requests.Session] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fhir-fetch")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._sessions_lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()

    def fetch_all(self, access: FhirAccess, jobs: Mapping[str, FetchJob], deadline: float) -> dict[str, FetchResult]:
        """Run every job in parallel, each until done or the deadline; a FetchResult per key."""
        return self._run_all(jobs, lambda job: self._fetch_key(access, job, deadline), deadline)

    def fetch_references(self, access: FhirAccess, references: list[str], deadline: float) -> dict[str, FetchResult]:
        """Read `Type/id` references (the Medication a MedicationRequest names) on the same terms."""
        return self._run_all({reference: reference for reference in references},
                             lambda reference: self._read_reference(access, reference, deadline), deadline)

    def _run_all(self, jobs: Mapping[str, Any], run, deadline: float) -> dict[str, FetchResult]:
        futures = {self._executor.submit(run, job): key for key, job in jobs.items()}
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future in pending:
            future.cancel()
        results = {futures[f]: FetchResult(state="failed", reason="no answer from the FHIR server before the deadline")
                   for f in pending}
        for future in done:
            error = future.exception()
            if error is None:
                results[futures[future]] = future.result()
            else:
                unsupported = isinstance(error, FhirFetchError) and error.unsupported
                results[futures[future]] = FetchResult(state="unsupported" if unsupported else "failed",
                                                       reason=_safe_reason(futures[future], error))
        return results

    def _read_reference(self, access: FhirAccess, reference: str, deadline: float) -> FetchResult:
        body = self._get_json(access, absolute_url(access.base_url, reference), deadline)
        resource_type, _, resource_id = reference.partition("/")
        if body.get("resourceType") != resource_type or body.get("id") != resource_id:
            raise FhirFetchError(f"the FHIR server did not answer with {reference}")
        return FetchResult([body])

    # -- one key ---------------------------------------------------------------------

    def _fetch_key(self, access: FhirAccess, job: FetchJob, deadline: float) -> FetchResult:
        collected = list(job.already_collected)
        pages_read = job.pages_already_read
        seen_urls: set[str] = set()
        url: str | None = job.url
        while url:
            if pages_read >= self._settings.fhir_max_pages:
                log.warning("stopped paging at the page cap", extra={
                    "event": "fhir_page_cap", "pages": pages_read, "resources": len(collected)})
                return FetchResult(collected, "incomplete",
                                   f"the service stopped at its page cap ({pages_read} pages); the rest was not read")
            if url in seen_urls:
                raise FhirFetchError("the FHIR server's Bundle next links loop back on themselves")
            seen_urls.add(url)
            body = self._get_json(access, url, deadline)
            pages_read += 1
            resource_type = body.get("resourceType")
            if resource_type == "OperationOutcome":
                unsupported = says_not_supported(body)
                raise FhirFetchError("the FHIR server answered with an OperationOutcome"
                                     + (" saying the search is not supported" if unsupported else ""),
                                     unsupported=unsupported)
            if resource_type != "Bundle":
                collected.append(body)
                break
            collected.extend(bundle_resources(body))
            url = self._next_page_url(access, body)
        return FetchResult(collected)

    def _next_page_url(self, access: FhirAccess, bundle: Mapping[str, Any]) -> str | None:
        next_url = next_link(bundle)
        if next_url is None:
            return None
        return urljoin(access.base_url.rstrip("/") + "/", next_url)

    def _get_json(self, access: FhirAccess, url: str, deadline: float) -> dict[str, Any]:
        if _origin(url) != access.origin:
            # Bundle next links come from the EHR or the FHIR server: the token stays home.
            raise FhirFetchError("a Bundle next link points away from the FHIR server's origin")
        headers = {"Accept": "application/fhir+json, application/json;q=0.9"}
        if access.bearer_token:
            headers["Authorization"] = f"Bearer {access.bearer_token}"
        session = self._session_for(access.origin, access.address_policy)
        for _ in range(_MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FhirFetchError("no answer from the FHIR server before the deadline")
            timeout = (min(self._settings.fhir_connect_timeout_seconds, remaining), remaining)
            started = time.perf_counter()
            try:
                response = session.get(url, headers=headers, timeout=timeout, stream=True,
                                       allow_redirects=False)
            except ForbiddenAddress as refused:
                _no_answer("refused_address", started)
                raise FhirFetchError(str(refused).replace("the server", "the FHIR server")) from None
            except requests.Timeout:
                _no_answer("timeout", started)
                raise FhirFetchError("no answer from the FHIR server before the deadline") from None
            except requests.RequestException as error:
                _no_answer("connection_error", started)
                raise FhirFetchError(f"could not reach the FHIR server ({type(error).__name__})") from None
            with response:
                try:
                    if response.is_redirect:
                        url = self._same_origin_redirect(access, url, response)
                        continue
                    return self._read_body(response, deadline)
                except FhirFetchError:
                    metrics.count_fhir_error(response.status_code if response.status_code != 200 else "invalid_body")
                    raise
                finally:
                    metrics.observe_fhir_request(response.status_code, time.perf_counter() - started)
        raise FhirFetchError("too many redirects from the FHIR server")

    @staticmethod
    def _same_origin_redirect(access: FhirAccess, url: str, response: requests.Response) -> str:
        target = urljoin(url, response.headers.get("Location", ""))
        if _origin(target) != access.origin:
            raise FhirFetchError("the FHIR server redirected to another origin; not followed")
        return target

    def _read_body(self, response: requests.Response, deadline: float) -> dict[str, Any]:
        if response.status_code != 200:
            raise FhirFetchError(f"the FHIR server answered HTTP {response.status_code}",
                                 unsupported=response.status_code in _UNSUPPORTED_STATUS)
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            raise FhirFetchError(f"the FHIR server answered with non-JSON content ({content_type[:60] or 'none'})")
        cap = self._settings.fhir_max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FhirFetchError(f"the FHIR response is larger than the {cap}-byte limit")
        chunks = []
        size = 0
        try:
            while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > cap:
                    raise FhirFetchError(f"the FHIR response is larger than the {cap}-byte limit")
                if time.monotonic() > deadline:
                    raise FhirFetchError("no answer from the FHIR server before the deadline")
                chunks.append(chunk)
        except FhirFetchError:
            raise
        except Exception as error:  # urllib3 raises several types for a broken stream
            raise FhirFetchError(f"the FHIR response was cut off ({type(error).__name__})") from None
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise FhirFetchError("the FHIR server sent malformed JSON") from None
        if not isinstance(body, dict):
            raise FhirFetchError("the FHIR server sent JSON that is not a resource")
        return body

    def _session_for(self, origin: tuple[str, str, int | None], policy: AddressPolicy) -> requests.Session:
        key = (origin, policy)
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
            session = requests.Session()
            # No proxy variables or .netrc credentials from the environment: what the
            # service sends to a FHIR server must be exactly what the request asked for.
            session.trust_env = False
            session.mount("http://", VettedAdapter(policy, pool_connections=1, pool_maxsize=32))
            session.mount("https://", VettedAdapter(policy, pool_connections=1, pool_maxsize=32))
            self._sessions[key] = session
            if len(self._sessions) > _CACHED_SESSIONS:
                _, oldest = self._sessions.popitem(last=False)
                oldest.close()
            return session


def _no_answer(status: str, started: float) -> None:
    metrics.observe_fhir_request(status, time.perf_counter() - started)
    metrics.count_fhir_error(status)


def _safe_reason(key: str, error: BaseException | None) -> str:
    if isinstance(error, FhirFetchError):
        return str(error)
    log.error("unexpected FHIR fetch error", exc_info=error,
              extra={"event": "fhir_fetch_bug", "prefetch_key": key})
    return "the FHIR response could not be processed"
