"""Each JWT `jti` is accepted once: a replayed token is refused.

A `jti` is remembered until its token expires (plus the clock skew), after which the token is
refused as expired anyway. The record is shared by every gunicorn worker and every replica:

- with `REDIS_URL`: in Redis, through an atomic SET NX with the remaining lifetime as expiry;
- without: in the service's database (the card-log store: SQLite in CDS_DATA_DIR, or PostgreSQL
  under DATABASE_URL), through one atomic upsert, so a token captured and replayed to another
  worker or replica is refused too. Expired records are deleted now and then.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
from sqlalchemy.exc import SQLAlchemyError

from service.store import Store

log = logging.getLogger("service.auth")


class ReplayStoreUnavailable(Exception):
    """The shared replay store cannot be reached: the token can be neither accepted nor refused."""


class ReplayCache(Protocol):
    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Record the (iss, jti) pair; False when it was already recorded."""


def _key(iss: str, jti: str) -> str:
    # jti values are unique per issuer only; hashing also bounds the key length.
    return hashlib.sha256(f"{iss}\n{jti}".encode()).hexdigest()


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


class DatabaseReplayCache:
    """Spent jti values in the card-log database: one record for every worker and replica using it."""

    PURGE_INTERVAL_SECONDS = 60.0

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time):
        self._store = store
        self._clock = clock
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        now = self._clock()
        try:
            first = self._store.spend_token(_key(iss, jti), math.ceil(expires_at), math.floor(now))
            self._purge_now_and_then(now)
        except SQLAlchemyError as error:
            raise ReplayStoreUnavailable(type(error).__name__) from None
        return first

    def _purge_now_and_then(self, now: float) -> None:
        if now < self._next_purge or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._next_purge = now + self.PURGE_INTERVAL_SECONDS
            forgotten = self._store.forget_spent_tokens(math.floor(now))
            if forgotten:
                log.debug("expired jti records deleted", extra={"event": "replay_records_purged", "count": forgotten})
        finally:
            self._purge_lock.release()
