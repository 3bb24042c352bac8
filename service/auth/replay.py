"""Each JWT `jti` is accepted once: a replayed token is refused.

A `jti` is remembered until its token expires (plus the clock skew), after which the token
is refused as expired anyway. In memory the cache covers one process; with `REDIS_URL` set,
every worker and replica shares it through an atomic SET NX, so a token captured and sent
to another replica is refused too.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis


class ReplayStoreUnavailable(Exception):
    """The shared replay store cannot be reached: the token can be neither accepted nor refused."""


class ReplayCache(Protocol):
    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Record the (iss, jti) pair; False when it was already recorded."""


def _key(iss: str, jti: str) -> str:
    # jti values are unique per issuer only; hashing also bounds the key length.
    return hashlib.sha256(f"{iss}\n{jti}".encode()).hexdigest()


class MemoryReplayCache:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._expiry_by_key: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        key = _key(iss, jti)
        now = self._clock()
        with self._lock:
            while self._expiries and self._expiries[0][0] <= now:
                _, old = heapq.heappop(self._expiries)
                if self._expiry_by_key.get(old, math.inf) <= now:
                    del self._expiry_by_key[old]
            if key in self._expiry_by_key:
                return False
            self._expiry_by_key[key] = expires_at
            heapq.heappush(self._expiries, (expires_at, key))
            return True

    def __len__(self) -> int:
        return len(self._expiry_by_key)


class RedisReplayCache:
    KEY_PREFIX = "fasciculation-cds:jti:"

    def __init__(self, url: str, *, timeout_seconds: float = 1.0, clock: Callable[[], float] = time.time):
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                           socket_connect_timeout=timeout_seconds)
        self._clock = clock

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        ttl_ms = max(1000, math.ceil((expires_at - self._clock()) * 1000))
        try:
            return bool(self._redis.set(self.KEY_PREFIX + _key(iss, jti), b"1", nx=True, px=ttl_ms))
        except redis.RedisError as error:
            raise ReplayStoreUnavailable(type(error).__name__) from None

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.RedisError as error:
            raise ReplayStoreUnavailable(type(error).__name__) from None
