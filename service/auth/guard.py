"""One `before_request` rule that authenticates every call under /cds-services.

It covers discovery, service calls and any endpoint added under the same prefix (feedback
included) without each view having to remember it. CORS preflights are exempt: browsers
send them without credentials by design.

production   a valid JWT is required; anything else is 401 with a generic OperationOutcome
             and `WWW-Authenticate: Bearer`, the precise reason going to the log.
development  calls without a valid JWT are served anyway, with a warning on each one; a
             token that does verify still identifies the client (and its FHIR servers).
"""
from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from service.auth.replay import ReplayStoreUnavailable
from service.auth.tokens import AuthenticatedClient, InvalidToken, TokenVerifier
from service import metrics
from service.errors import CdsError

log = logging.getLogger("service.auth")

EXTENSION = "fasciculation_cds_auth"
_PROTECTED_PREFIX = "/cds-services"
_FEEDBACK_PATH = re.compile(r"(/cds-services/[^/]+)/feedback")
_PEEK_BODY_BYTES = 256 * 1024
_GENERIC_REFUSAL = ("Authentication failed. Calls must carry a valid CDS Hooks JWT "
                    "(Authorization: Bearer) from a registered CDS client.")


class Guard:
    def __init__(self, *, production: bool, public_base_url: str | None, verifier: TokenVerifier | None):
        self.production = production
        self.public_base_url = public_base_url
        self.verifier = verifier  # None: no trusted client configured (development mode only)


def install_guard(app: Flask, guard: Guard) -> None:
    app.extensions[EXTENSION] = guard
    app.before_request(_authenticate)


def current_client() -> AuthenticatedClient | None:
    """The client that signed this request, or None (development mode without a valid token)."""
    return g.get("cds_client")


def expected_audiences(base_url: str, path: str) -> list[str]:
    """The `aud` values this call accepts: the URL called; for feedback also its service's URL."""
    audiences = [base_url + path]
    feedback = _FEEDBACK_PATH.fullmatch(path)
    if feedback:  # CDS Hooks leaves the feedback aud undefined; clients send either
        audiences.append(base_url + feedback.group(1))
    return audiences


def _authenticate() -> None:
    if request.method == "OPTIONS" or not _is_protected(request.path):
        return
    guard: Guard = current_app.extensions[EXTENSION]
    authorization = request.headers.get("Authorization")
    try:
        client = _verified_client(guard, authorization)
    except InvalidToken as failure:
        _log_failure(failure, guard.production)
        if guard.production:
            challenge = "Bearer" if authorization is None else 'Bearer error="invalid_token"'
            raise CdsError.single(401, _GENERIC_REFUSAL, headers={"WWW-Authenticate": challenge}) from None
        return
    g.cds_client = client
    log.info("client authenticated", extra={
        "event": "auth_ok", "client": client.client.name, "iss": client.iss, "tenant": client.tenant,
        "jti": client.jti, "path": request.path})


def _verified_client(guard: Guard, authorization: str | None) -> AuthenticatedClient:
    if authorization is None:
        raise InvalidToken("no Authorization header")
    if guard.verifier is None:
        raise InvalidToken("a token was sent but no trusted client is configured")
    try:
        return guard.verifier.verify(_bearer_token(authorization), _audiences(guard))
    except ReplayStoreUnavailable as unavailable:
        log.error("replay store unavailable; refusing the call", extra={
            "event": "auth_unavailable", "error": str(unavailable), "path": request.path})
        metrics.count_auth_failure("replay_store_unavailable")
        raise CdsError.single(503, "The service cannot check authentication right now; try again shortly.",
                              code="transient", headers={"Retry-After": "5"}) from None


def _is_protected(path: str) -> bool:
    return path == _PROTECTED_PREFIX or path.startswith(_PROTECTED_PREFIX + "/")


def _bearer_token(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization is not a Bearer token")
    return token.strip()


def _audiences(guard: Guard) -> list[str]:
    # Behind a proxy the Host header is not the URL the EHR called, and trusting it would let
    # a token minted for another service be replayed here; production always configures it.
    base_url = guard.public_base_url or request.url_root.rstrip("/")
    return expected_audiences(base_url, request.path)


def _log_failure(failure: InvalidToken, production: bool) -> None:
    fields = {"event": "auth_failed" if production else "auth_skipped_development",
              "reason": failure.reason, "path": request.path, "hookInstance": _hook_instance(),
              "iss": failure.iss, "tenant": failure.tenant, "jti": failure.jti}
    if production:
        log.warning("authentication failed", extra=fields)
        metrics.count_auth_failure(failure.reason)
    else:
        log.warning("DEVELOPMENT MODE: request served without authentication", extra=fields)


def _hook_instance() -> str | None:
    """The call's hookInstance for correlating a refusal, when the body is small JSON."""
    if request.method != "POST" or (request.content_length or 0) > _PEEK_BODY_BYTES:
        return None
    try:
        body: Any = orjson.loads(request.get_data(cache=True))
    except (orjson.JSONDecodeError, HTTPException):
        return None
    value = body.get("hookInstance") if isinstance(body, dict) else None
    return value[:100] if isinstance(value, str) else None
