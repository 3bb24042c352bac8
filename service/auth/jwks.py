"""Public keys of trusted clients by `kid`: configured keys first, then JWK Sets fetched from URLs.

A fetched JWK Set is cached for a TTL. A `kid` it does not hold makes one refetch, since
EHRs rotate keys by publishing a new one and signing with it straight away; refetches of
one URL are spaced out so a stream of tokens with made-up kids cannot hammer the EHR.
Only URLs from the trusted-client file are ever fetched (`jwks_url`, allowlisted `jku`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3

from service.auth.clients import TrustedClient

log = logging.getLogger("service.auth")

_MAX_JWKS_BYTES = 256 * 1024
_PRIVATE_KEY_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class KeyNotFound(Exception):
    """No key with this kid for the client, even after a refetch."""


class JwksUnavailable(Exception):
    """The client's JWK Set could not be fetched and none is cached."""


@dataclass
class _Fetched:
    keys: dict[str, Mapping[str, Any]]
    fetched_at: float


class JwksCache:
    def __init__(self, *, ttl_seconds: float, timeout_seconds: float, min_refetch_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._fetched: dict[str, _Fetched] = {}
        self._url_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or .netrc from the environment

    def key_for(self, client: TrustedClient, kid: str, jku: str | None) -> Mapping[str, Any]:
        """The public JWK with `kid`. `jku` must already be checked against the client's allowlist."""
        if kid in client.static_keys:
            return client.static_keys[kid]
        url = jku or client.jwks_url
        if url is None:
            raise KeyNotFound(kid)
        fetched = self._current(url)
        if kid in fetched.keys:
            return fetched.keys[kid]
        if self._clock() - fetched.fetched_at >= self._min_refetch:
            fetched = self._refresh(url, seen=fetched)  # key rotation: one refetch
            if kid in fetched.keys:
                return fetched.keys[kid]
        raise KeyNotFound(kid)

    def _current(self, url: str) -> _Fetched:
        fetched = self._fetched.get(url)
        if fetched is not None and self._clock() - fetched.fetched_at < self._ttl:
            return fetched
        return self._refresh(url, seen=fetched)

    def _refresh(self, url: str, seen: _Fetched | None) -> _Fetched:
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            latest = self._fetched.get(url)
            if latest is not None and latest is not seen:
                return latest  # another thread refreshed it while this one waited
            try:
                fetched = _Fetched(self._download(url), self._clock())
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if latest is None:
                    raise JwksUnavailable(f"{type(error).__name__}: {error}") from None
                # The EHR's key endpoint is down: keep verifying with the keys last seen.
                log.warning("JWKS refresh failed; using the cached keys", extra={
                    "event": "jwks_refresh_failed", "jwks_url": url, "error": type(error).__name__})
                latest.fetched_at = self._clock() - self._ttl + self._min_refetch  # retry a little later
                return latest
            self._fetched[url] = fetched
            log.info("JWKS fetched", extra={"event": "jwks_fetched", "jwks_url": url, "kids": sorted(fetched.keys)})
            return fetched

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
        # Bounded in size and in total time: a trickling server must not hold a worker.
        deadline = self._clock() + 2 * self._timeout
        chunks, size = [], 0
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            size += len(chunk)
            if size > _MAX_JWKS_BYTES:
                raise ValueError("JWK Set larger than the limit")
            if self._clock() > deadline:
                raise ValueError("JWK Set download too slow")
            chunks.append(chunk)
        return b"".join(chunks)


def _usable_public_key(jwk: Any) -> bool:
    return (isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and bool(jwk["kid"])
            and jwk.get("kty") in ("EC", "RSA") and jwk.get("use", "sig") == "sig"
            and not any(member in jwk for member in _PRIVATE_KEY_MEMBERS))
