"""Fetching the FHIR data an EHR did not prefetch.

All missing keys are fetched concurrently under one overall deadline: an EHR waits for
the cards, so a slow FHIR server must cost a 412 on time, not a hung chart. The bearer
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
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests

from service import metrics
from service.config import Settings
from service.ssrf import PUBLIC_ONLY, AddressPolicy, ForbiddenAddress, VettedAdapter

log = logging.getLogger("service.fhir")

_MAX_REDIRECTS = 3
_CHUNK_BYTES = 64 * 1024
_CACHED_SESSIONS = 64


class FhirFetchError(Exception):
    """One prefetch key could not be obtained; the message is safe to show a caller."""


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
class FetchFailure:
    key: str
    reason: str


class FhirUnavailable(Exception):
    def __init__(self, failures: list[FetchFailure]):
        super().__init__("; ".join(f"{f.key}: {f.reason}" for f in failures))
        self.failures = failures


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

    def fetch_all(self, access: FhirAccess, jobs: Mapping[str, FetchJob],
                  deadline: float) -> dict[str, list[Mapping[str, Any]]]:
        """Run every job in parallel; raise FhirUnavailable naming each key that failed."""
        futures = {self._executor.submit(self._fetch_key, access, job, deadline): key
                   for key, job in jobs.items()}
        # One failed key already means 412, so stop waiting at the first error.
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()),
                             return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failures = [FetchFailure(futures[f], _safe_reason(futures[f], f.exception()))
                    for f in done if f.exception() is not None]
        if not failures and pending:
            failures = [FetchFailure(futures[f], "no answer from the FHIR server before the deadline")
                        for f in pending]
        if failures:
            raise FhirUnavailable(sorted(failures, key=lambda failure: failure.key))
        return {futures[f]: f.result() for f in done}

    # -- one key ---------------------------------------------------------------------

    def _fetch_key(self, access: FhirAccess, job: FetchJob, deadline: float) -> list[Mapping[str, Any]]:
        collected = list(job.already_collected)
        pages_read = job.pages_already_read
        seen_urls: set[str] = set()
        url: str | None = job.url
        while url:
            if pages_read >= self._settings.fhir_max_pages:
                log.warning("stopped paging at the page cap", extra={
                    "event": "fhir_page_cap", "pages": pages_read, "resources": len(collected)})
                break
            if url in seen_urls:
                raise FhirFetchError("the FHIR server's Bundle next links loop back on themselves")
            seen_urls.add(url)
            body = self._get_json(access, url, deadline)
            pages_read += 1
            resource_type = body.get("resourceType")
            if resource_type == "OperationOutcome":
                raise FhirFetchError("the FHIR server answered with an OperationOutcome")
            if resource_type != "Bundle":
                collected.append(body)
                break
            collected.extend(bundle_resources(body))
            url = self._next_page_url(access, body)
        return collected

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
            raise FhirFetchError(f"the FHIR server answered HTTP {response.status_code}")
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


def bundle_resources(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The resources of a Bundle, leaving out search outcome entries."""
    resources = []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return resources
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        if isinstance(resource, dict):
            resources.append(resource)
    return resources


def next_link(bundle: Mapping[str, Any]) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _safe_reason(key: str, error: BaseException | None) -> str:
    if isinstance(error, FhirFetchError):
        return str(error)
    log.error("unexpected FHIR fetch error", exc_info=error,
              extra={"event": "fhir_fetch_bug", "prefetch_key": key})
    return "the FHIR response could not be processed"
