"""One `before_request` rule that authenticates every call under /cds-services.

It covers discovery, service calls and any endpoint added under the same prefix (feedback
included) without each view having to remember it. CORS preflights are exempt: browsers
send them without credentials by design.

production   a valid JWT is required; anything else is 401 with a generic OperationOutcome
             and `WWW-Authenticate: Bearer`, the precise reason going to the log.
development  calls without a valid JWT are served anyway, with a warning on each one; a
             token that does verify still identifies the client (and its FHIR servers).

The outcome is kept for the request (`auth_outcome()`) and logged once: by the guard (auth_ok,
auth_failed, ...) for discovery and feedback, and on the call's own line for endpoints that log
every call themselves (service calls, service/protocol.py), so each call has exactly one line.
"""
from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from service.auth.replay import ReplayStoreUnavailable
from service.auth.tokens import AuthenticatedClient, InvalidToken, TokenVerifier
from service import metrics
from service.errors import CdsError
from service.paths import PATH_AS_SENT

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
        # Endpoints whose own per-call log line carries the authentication outcome (service calls):
        # the guard writes no line of its own for them, so each call has exactly one.
        self.endpoints_logging_auth: set[str] = set()


@dataclass(frozen=True)
class AuthOutcome:
    """How the guard judged this request, for the one log line of the call."""

    result: str  # "ok" | "refused" | "unsigned" (development mode) | "unavailable" (replay store down)
    reason: str | None = None  # why not ok: for the log only, never for the caller
    client: str | None = None
    iss: str | None = None  # verified when ok; as claimed (truncated) otherwise
    tenant: str | None = None
    jti: str | None = None
    hook_instance: str | None = None  # peeked from the body of a refused call, for correlation


def install_guard(app: Flask, guard: Guard) -> None:
    app.extensions[EXTENSION] = guard
    app.before_request(_authenticate)


def current_client() -> AuthenticatedClient | None:
    """The client that signed this request, or None (development mode without a valid token)."""
    return g.get("cds_client")


def auth_outcome() -> AuthOutcome | None:
    """The guard's judgement of this request; None for paths it does not cover (or a preflight)."""
    return g.get("cds_auth")


def expected_audiences(base_url: str, path: str, path_as_sent: str | None = None) -> list[str]:
    """The `aud` values this call accepts: the URL called, also as the client spelt it (a trailing
    slash, service/paths.py); for feedback also its service's URL."""
    audiences = [base_url + path]
    if path_as_sent and path_as_sent != path:
        audiences.append(base_url + path_as_sent)
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
        if guard.production:
            metrics.count_auth_failure(failure.reason)
        _record(guard, AuthOutcome("refused" if guard.production else "unsigned", failure.reason, None,
                                   failure.iss, failure.tenant, failure.jti, _hook_instance()))
        if guard.production:
            challenge = "Bearer" if authorization is None else 'Bearer error="invalid_token"'
            raise CdsError.single(401, _GENERIC_REFUSAL, headers={"WWW-Authenticate": challenge}) from None
        return
    g.cds_client = client
    _record(guard, AuthOutcome("ok", None, client.client.name, client.iss, client.tenant, client.jti))


def _record(guard: Guard, outcome: AuthOutcome) -> None:
    g.cds_auth = outcome
    if request.endpoint in guard.endpoints_logging_auth:
        return
    fields = {"path": request.path, "iss": outcome.iss, "tenant": outcome.tenant, "jti": outcome.jti}
    if outcome.result == "ok":
        log.info("client authenticated", extra={"event": "auth_ok", "client": outcome.client, **fields})
    elif outcome.result == "unavailable":
        log.error("replay store unavailable; refusing the call", extra={
            "event": "auth_unavailable", "error": outcome.reason, **fields})
    else:
        fields = {**fields, "reason": outcome.reason, "hookInstance": outcome.hook_instance}
        if outcome.result == "refused":
            log.warning("authentication failed", extra={"event": "auth_failed", **fields})
        else:
            log.warning("DEVELOPMENT MODE: request served without authentication",
                        extra={"event": "auth_skipped_development", **fields})


def _verified_client(guard: Guard, authorization: str | None) -> AuthenticatedClient:
    if authorization is None:
        raise InvalidToken("no Authorization header")
    if guard.verifier is None:
        raise InvalidToken("a token was sent but no trusted client is configured")
    try:
        return guard.verifier.verify(_bearer_token(authorization), _audiences(guard))
    except ReplayStoreUnavailable as unavailable:
        metrics.count_auth_failure("replay_store_unavailable")
        _record(guard, AuthOutcome("unavailable", str(unavailable)))
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
    return expected_audiences(base_url, request.path, request.environ.get(PATH_AS_SENT))


def _hook_instance() -> str | None:
    """The call's hookInstance for correlating a refusal, when the body is small JSON."""
    if request.method != "POST" or (request.content_length or 0) > _PEEK_BODY_BYTES:
        return None
    try:
        body: Any = orjson.loads(request.get_data(cache=True).removeprefix(codecs.BOM_UTF8))
    except (orjson.JSONDecodeError, HTTPException):
        return None
    value = body.get("hookInstance") if isinstance(body, dict) else None
    return value[:100] if isinstance(value, str) else None
