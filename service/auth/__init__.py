"""Authenticating CDS clients (EHRs) by their CDS Hooks JWT; see docs/security.md.

    clients.py     the trusted-client file: issuers, their keys, their FHIR servers
    algorithms.py  which JWS algorithms are accepted and which key each needs
    jwks.py        public keys by kid, JWK Sets fetched and cached
    replay.py      each jti once: in memory, or in Redis shared by replicas
    tokens.py      the verification itself
    guard.py       the Flask rule that applies it to every /cds-services call
"""
from __future__ import annotations

import logging

from flask import Flask

from service.auth.clients import FhirServerGrant, TrustedClient, TrustedClients, load_trusted_clients
from service.auth.guard import Guard, current_client, expected_audiences, install_guard
from service.auth.jwks import JwksCache
from service.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache, ReplayStoreUnavailable
from service.auth.tokens import AuthenticatedClient, InvalidToken, TokenVerifier
from service.config import ConfigError, Settings

__all__ = ["AuthenticatedClient", "FhirServerGrant", "InvalidToken", "TrustedClient", "TrustedClients",
           "current_client", "expected_audiences", "install_authentication", "load_trusted_clients"]

log = logging.getLogger("service.auth")


def install_authentication(app: Flask, settings: Settings) -> Guard:
    """Load the trusted clients and put the guard in front of /cds-services; ConfigError if unusable."""
    clients = (load_trusted_clients(settings.trusted_clients_file) if settings.trusted_clients_file
               else TrustedClients())
    production = settings.mode == "production"
    if production and not clients:
        raise ConfigError(f"CDS_TRUSTED_CLIENTS_FILE={settings.trusted_clients_file!r}: lists no client; "
                          "production mode needs at least one trusted client")
    verifier = None
    if clients:
        keys = JwksCache(ttl_seconds=settings.jwks_cache_seconds,
                         timeout_seconds=settings.jwks_fetch_timeout_seconds)
        verifier = TokenVerifier(clients, keys, _replay_cache(settings),
                                 clock_skew_seconds=settings.jwt_clock_skew_seconds,
                                 max_lifetime_seconds=settings.jwt_max_lifetime_seconds)
    guard = Guard(production=production, public_base_url=settings.public_base_url, verifier=verifier)
    install_guard(app, guard)
    _announce(settings, clients)
    return guard


def _replay_cache(settings: Settings) -> ReplayCache:
    if not settings.redis_url:
        return MemoryReplayCache()
    cache = RedisReplayCache(settings.redis_url)
    try:
        cache.ping()
    except ReplayStoreUnavailable as unavailable:
        # Not fatal: Redis may simply start after the service. Until it answers, calls get 503.
        log.error("Redis for the jti replay cache is unreachable; authenticated calls get 503 until it is",
                  extra={"event": "replay_store_unreachable", "error": str(unavailable)})
    return cache


def _announce(settings: Settings, clients: TrustedClients) -> None:
    names = [client.name for client in clients.clients]
    if settings.mode != "production":
        log.warning(
            "DEVELOPMENT MODE: calls without a valid JWT are served. Never expose this instance "
            "beyond your own machine; set CDS_MODE=production for any shared or real deployment.",
            extra={"event": "development_mode", "trusted_clients": names})
        return
    replay_store = "redis" if settings.redis_url else "memory"
    log.info("production mode: a valid JWT is required", extra={
        "event": "auth_configured", "trusted_clients": names, "replay_store": replay_store})
    if replay_store == "memory" and settings.workers > 1:
        log.warning("jti replay protection is per worker process; set REDIS_URL to share it", extra={
            "event": "replay_store_per_process", "workers": settings.workers})
