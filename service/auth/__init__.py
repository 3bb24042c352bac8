"""Authenticating CDS clients (EHRs) by their CDS Hooks JWT; see docs/security.md.

    clients.py     the trusted-client file: issuers, their keys, their FHIR servers
    algorithms.py  which JWS algorithms are accepted and which key each needs
    jwks.py        public keys by kid, JWK Sets fetched and cached
    replay.py      each jti once, for every worker and replica: in the store's database, or in Redis
    sandbox.py     recognising the public CDS Hooks Sandbox (refused in production)
    tokens.py      the verification itself
    guard.py       the Flask rule that applies it to every /cds-services call
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask

from service.auth.clients import FhirServerGrant, TrustedClient, TrustedClients, load_trusted_clients
from service.auth.guard import (AuthOutcome, Guard, auth_outcome, current_client, expected_audiences,
                                install_guard)
from service.auth.jwks import JwksCache
from service.auth.replay import DatabaseReplayCache, RedisReplayCache, ReplayCache, ReplayStoreUnavailable
from service.auth.sandbox import trusts_sandbox
from service.auth.tokens import AuthenticatedClient, InvalidToken, TokenVerifier
from service.config import ConfigError, Settings
from service.store import Store

__all__ = ["AuthOutcome", "AuthenticatedClient", "FhirServerGrant", "InvalidToken", "TrustedClient", "TrustedClients",
           "auth_outcome", "current_client", "expected_audiences", "install_authentication", "load_trusted_clients"]

log = logging.getLogger("service.auth")


def install_authentication(app: Flask, settings: Settings, store: Store) -> Guard:
    """Load the trusted clients and put the guard in front of /cds-services; ConfigError if unusable.

    `store` keeps the spent jti values when REDIS_URL is unset.
    """
    clients = (load_trusted_clients(settings.trusted_clients_file) if settings.trusted_clients_file
               else TrustedClients())
    production = settings.mode == "production"
    if production:
        _refuse_unsafe_clients(settings, clients)
    verifier = None
    if clients:
        keys = JwksCache(ttl_seconds=settings.jwks_cache_seconds,
                         timeout_seconds=settings.jwks_fetch_timeout_seconds, ca_file=settings.jwks_ca_file)
        verifier = TokenVerifier(clients, keys, _replay_cache(settings, store),
                                 clock_skew_seconds=settings.jwt_clock_skew_seconds,
                                 max_lifetime_seconds=settings.jwt_max_lifetime_seconds)
    guard = Guard(production=production, public_base_url=settings.public_base_url, verifier=verifier)
    install_guard(app, guard)
    _announce(settings, clients)
    return guard


def _refuse_unsafe_clients(settings: Settings, clients: TrustedClients) -> None:
    """What production refuses to start with, whatever the file says (docs/security.md)."""
    where = f"CDS_TRUSTED_CLIENTS_FILE={settings.trusted_clients_file!r}"
    if not clients:
        raise ConfigError(f"{where}: lists no client; production mode needs at least one trusted client")
    for client in clients.clients:
        # RFC 7515 §4.1.2: a JWK Set URL must be fetched over TLS, or anyone on the path can swap the keys.
        for url in sorted({*client.allowed_jku, *([client.jwks_url] if client.jwks_url else [])}):
            if urlsplit(url).scheme != "https":
                raise ConfigError(f"{where}: client {client.name!r}: the key set URL {url!r} is not https; "
                                  "production fetches keys over TLS only (RFC 7515)")
        if trusts_sandbox(client) and not settings.insecure_allow_sandbox_in_production:
            raise ConfigError(
                f"{where}: client {client.name!r} is the public CDS Hooks Sandbox, whose private key is "
                "published: anyone could sign calls as it. Production refuses it; for a demonstration on "
                "synthetic data only, set CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION=true")


def _replay_cache(settings: Settings, store: Store) -> ReplayCache:
    if not settings.redis_url:
        return DatabaseReplayCache(store)
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
    replay_store = "redis" if settings.redis_url else "database"
    log.info("production mode: a valid JWT is required", extra={
        "event": "auth_configured", "trusted_clients": names, "replay_store": replay_store})
    sandbox = [client.name for client in clients.clients if trusts_sandbox(client)]
    if sandbox:  # only reachable with CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION=true
        log.warning(
            "INSECURE: production trusts the public CDS Hooks Sandbox, whose private key is published; anyone "
            "can sign calls this service accepts. Never let real patient data reach this instance.",
            extra={"event": "sandbox_trusted_in_production", "trusted_clients": sandbox})
