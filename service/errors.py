"""Errors as FHIR OperationOutcome responses.

CDS Hooks 3.0 asks for an OperationOutcome body on every non-2xx answer; EHR integration
teams read `diagnostics` when a call fails, so each message says what was wrong and where.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

log = logging.getLogger("service.errors")

# HTTP status -> the closest FHIR issue-type code (http://hl7.org/fhir/issue-type).
_ISSUE_CODE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "processing",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
}


@dataclass(frozen=True)
class Issue:
    diagnostics: str
    code: str | None = None
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def as_fhir(self, default_code: str) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code or default_code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class CdsError(Exception):
    """An error that becomes an HTTP status with an OperationOutcome body."""

    status: int
    issues: Sequence[Issue]
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def single(cls, status: int, diagnostics: str, *, code: str | None = None,
               expression: Iterable[str] = (), headers: Mapping[str, str] | None = None) -> CdsError:
        return cls(status, [Issue(diagnostics, code, tuple(expression))], dict(headers or {}))

    def __str__(self) -> str:
        return "; ".join(issue.diagnostics for issue in self.issues)


def operation_outcome(status: int, issues: Sequence[Issue]) -> dict[str, Any]:
    default_code = _ISSUE_CODE_BY_STATUS.get(status, "exception")
    return {"resourceType": "OperationOutcome",
            "issue": [issue.as_fhir(default_code) for issue in issues]}


def outcome_response(status: int, issues: Sequence[Issue],
                     headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps(operation_outcome(status, issues))
    response = Response(body, status=status, mimetype="application/fhir+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CdsError)
    def _cds_error(error: CdsError) -> Response:
        return outcome_response(error.status, error.issues, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        diagnostics = error.description or error.name
        allowed_methods = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed_methods)} if allowed_methods else None
        return outcome_response(status, [Issue(diagnostics)], headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # A bug, never a client mistake: log it whole, tell the caller nothing internal.
        log.exception("unhandled error", extra={"event": "unhandled_error"})
        return outcome_response(500, [Issue("The service failed unexpectedly; the error has been logged.",
                                            code="exception")])
