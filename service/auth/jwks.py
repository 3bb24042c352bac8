"""Public keys of trusted clients by `kid`: configured keys first, then JWK Sets fetched from URLs.

A fetched JWK Set is cached for a TTL, and a `kid` it does not hold makes it fetched again, since
EHRs rotate keys by publishing a new one and signing with it straight away. Anyone can send a
token with a trusted `iss`, a made-up `kid` and any signature, so fetching must not be theirs to
drive (docs/security.md, "JWKS refetch"):

- attempts per URL are rate-limited, successful or not: at most one per `min_refetch_seconds`, and
  after a failure none until a back-off (doubling up to `max_backoff_seconds`) has passed;
- one attempt at a time per URL: the call that starts it waits for it, up to the time limit; every
  other call needing that URL meanwhile is answered at once, from the keys last fetched or refused;
- an attempt is capped in time as a whole: the download runs on a small pool of its own threads,
  and the waiting call gives up after `timeout_seconds` whatever the server does.

Only URLs from the trusted-client file are ever fetched (`jwks_url`, allowlisted `jku`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

from service.auth.clients import TrustedClient

log = logging.getLogger("service.auth")

_MAX_JWKS_BYTES = 256 * 1024
_PRIVATE_KEY_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
_FETCH_THREADS = 8  # one attempt per URL at a time; URLs come from the configuration only


class KeyNotFound(Exception):
    """No key with this kid for the client, even after a refetch."""


class JwksUnavailable(Exception):
    """The client's JWK Set could not be fetched and none is cached."""


@dataclass
class _KeySet:
    """What is known about one JWK Set URL."""

    keys: dict[str, Mapping[str, Any]] | None = None  # the last set fetched, None before the first success
    fetched_at: float = 0.0
    next_attempt_at: float = 0.0  # the rate limit: no attempt before this
    failures: int = 0  # consecutive failed attempts
    in_flight: Future[dict[str, Mapping[str, Any]]] | None = field(default=None, repr=False)


class JwksCache:
    def __init__(self, *, ttl_seconds: float, timeout_seconds: float, min_refetch_seconds: float = 30.0,
                 max_backoff_seconds: float = 300.0, ca_file: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._min_refetch = min_refetch_seconds
        self._max_backoff = max(max_backoff_seconds, min_refetch_seconds)
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}
        # Re-entrant: an attempt that is over before its callback is added runs the callback at once.
        self._lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=_FETCH_THREADS, thread_name_prefix="jwks-fetch")
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or .netrc from the environment
        if ca_file:
            self._session.verify = ca_file

    def key_for(self, client: TrustedClient, kid: str, jku: str | None) -> Mapping[str, Any]:
        """The public JWK with `kid`. `jku` must already be checked against the client's allowlist."""
        if kid in client.static_keys:
            return client.static_keys[kid]
        url = jku or client.jwks_url
        if url is None:
            raise KeyNotFound(kid)
        with self._lock:
            state = self._sets.setdefault(url, _KeySet())
            now = self._clock()
            keys = state.keys
            if keys is not None and kid in keys and now - state.fetched_at < self._ttl:
                return keys[kid]
            # Stale, or the kid is unknown (key rotation, or a forged token): an attempt, if one may start.
            attempt = self._start_attempt(url, state, now)
        if attempt is not None:
            fetched = self._wait(url, attempt)
            keys = keys if fetched is None else fetched
        if keys is not None and kid in keys:
            return keys[kid]  # fresh, or the last set seen while the EHR's key endpoint is unavailable
        if keys is None:
            raise JwksUnavailable("the fetch failed or took too long" if attempt is not None else
                                  "none fetched yet: a fetch is in progress or failed recently")
        raise KeyNotFound(kid)

    def _start_attempt(self, url: str, state: _KeySet, now: float) -> Future[dict[str, Mapping[str, Any]]] | None:
        """Start a fetch of `url` unless one is running or the rate limit forbids it (lock held)."""
        if state.in_flight is not None or now < state.next_attempt_at:
            return None
        state.next_attempt_at = now + self._min_refetch
        attempt = self._executor.submit(self._download, url)
        state.in_flight = attempt
        attempt.add_done_callback(lambda done: self._finished(url, state, done))
        return attempt

    def _finished(self, url: str, state: _KeySet, attempt: Future[dict[str, Mapping[str, Any]]]) -> None:
        error = attempt.exception()
        with self._lock:
            state.in_flight = None
            now = self._clock()
            if error is None:
                state.keys, state.fetched_at, state.failures = attempt.result(), now, 0
            else:
                state.failures += 1
                backoff = min(self._max_backoff, self._min_refetch * 2 ** (state.failures - 1))
                state.next_attempt_at = max(state.next_attempt_at, now + backoff)
        if error is None:
            log.info("JWKS fetched", extra={"event": "jwks_fetched", "jwks_url": url,
                                            "kids": sorted(attempt.result())})
        else:
            log.warning("JWKS fetch failed; the keys last fetched, if any, stay in use", extra={
                "event": "jwks_refresh_failed", "jwks_url": url, "error": type(error).__name__,
                "consecutive_failures": state.failures, "retry_in_seconds": round(backoff)})

    def _wait(self, url: str, attempt: Future[dict[str, Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]] | None:
        """The attempt's keys, or None when it failed or did not finish within the time limit."""
        try:
            return attempt.result(timeout=self._timeout)
        except FutureTimeout:
            log.warning("JWKS fetch exceeded its time limit; the call goes on without it", extra={
                "event": "jwks_fetch_timeout", "jwks_url": url, "timeout_seconds": self._timeout})
            return None
        except Exception:  # noqa: BLE001 - any failure of the download: logged by _finished
            return None

    def _download(self, url: str) -> dict[str, Mapping[str, Any]]:
        with self._session.get(url, timeout=(self._timeout, self._timeout), stream=True,
                               allow_redirects=False, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = self._read_capped(response)
        document = orjson.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK Set")
        return {jwk["kid"]: jwk for jwk in document["keys"] if _usable_public_key(jwk)}

    def _read_capped(self, response: requests.Response) -> bytes:
        # Bounded in size and in time: a trickling server must not hold a fetch thread for long.
        deadline = time.monotonic() + self._timeout
        chunks, size = [], 0
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            size += len(chunk)
            if size > _MAX_JWKS_BYTES:
                raise ValueError("JWK Set larger than the limit")
            if time.monotonic() > deadline:
                raise ValueError("JWK Set download too slow")
            chunks.append(chunk)
        return b"".join(chunks)


def _usable_public_key(jwk: Any) -> bool:
    return (isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and bool(jwk["kid"])
            and jwk.get("kty") in ("EC", "RSA") and jwk.get("use", "sig") == "sig"
            and not any(member in jwk for member in _PRIVATE_KEY_MEMBERS))
