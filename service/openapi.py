"""The OpenAPI 3.1 description of every endpoint, generated from the marshmallow schemas.

    GET /openapi.json    this document; no authentication (it holds no data), like /healthz

Requests and cards come from `service.schemas` and `service.feedback` through apispec's marshmallow
plugin, so the contract cannot drift from the validation the service applies. What marshmallow
cannot say (a prefetch value is a FHIR resource or null, `fhirAuthorization` needs `fhirServer`, an
accepted feedback item needs `acceptedSuggestions`) is added here in JSON Schema, next to the rule
in the code it mirrors. The service paths take their ids, hooks and prefetch keys from the
service declarations in `hooks`.

`docs/openapi.json` is a committed copy for readers and client generators; regenerate it with
`.venv/bin/fasciculation-cds openapi > docs/openapi.json` (tests/robustness/test_openapi.py keeps
both in step with the routes).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import orjson
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app
from marshmallow import EXCLUDE, Schema, fields, validate

from hooks.declaration import CdsService
from service import feedback as feedback_schemas
from service.runtime import runtime
from service.schemas import (CONTEXT_SCHEMAS, CardSchema, CardsResponseSchema, CdsRequestSchema, CodingSchema,
                             FhirAuthorizationSchema, OverrideReasonSchema)

blueprint = Blueprint("openapi", __name__)
EXTENSION = "fasciculation_cds_openapi"
OPENAPI_VERSION = "3.1.0"

JSON = "application/json"
FHIR_JSON = "application/fhir+json"
# The Prometheus text exposition format (prometheus_client.CONTENT_TYPE_LATEST without parameters).
PROMETHEUS_TEXT = "text/plain"
# fhirServer: the service checks it with marshmallow's URL validator (http or https, a host name or
# address, any path); the contract names a plain subset of what that accepts.
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
URL_PATTERN = (rf"^https?://({_LABEL}|({_LABEL}\.)+[A-Za-z]{{2,6}}|[0-9]{{1,3}}(\.[0-9]{{1,3}}){{3}})"
               r"(:[0-9]{1,5})?(/[A-Za-z0-9._~-]*)*$")

_DESCRIPTION = """\
CDS Hooks 2.0 `patient-view` service for muscle twitching (fasciculation), cramp and myokymia.

Authentication: in production (`CDS_MODE=production`) every path under `/cds-services` needs the
CDS Hooks JWT of a trusted EHR (`cdsHooksJwt`: ES384 or RS384, `aud` = the URL called or an
audience the EHR's entry declares, a `jti` used once); `/analytics` and `/analytics.json` need
`CDS_ADMIN_TOKEN` as a Bearer token or Basic password. `/healthz`, `/readyz`, `/metrics` and `/openapi.json` need nothing and belong on the
internal network only (docs/operations.md). Every error is a FHIR OperationOutcome
(`application/fhir+json`) with a readable `diagnostics`.
"""


# -- schemas that exist only to describe responses ----------------------------------------------

class _Open(Schema):
    class Meta:
        unknown = EXCLUDE


class OperationOutcomeIssueSchema(_Open):
    severity = fields.Str(required=True, validate=validate.OneOf(["fatal", "error", "warning", "information"]))
    code = fields.Str(required=True, validate=validate.Length(min=1))
    diagnostics = fields.Str(required=True, validate=validate.Length(min=1))
    expression = fields.List(fields.Str(), validate=validate.Length(min=1))


class OperationOutcomeSchema(_Open):
    """Every error body (service/errors.py), and the feedback answer naming rejected entries."""

    resourceType = fields.Str(required=True, validate=validate.OneOf(["OperationOutcome"]))
    issue = fields.List(fields.Nested(OperationOutcomeIssueSchema), required=True, validate=validate.Length(min=1))


class ServiceEntrySchema(_Open):
    hook = fields.Str(required=True)
    title = fields.Str(required=True)
    description = fields.Str(required=True)
    id = fields.Str(required=True)
    prefetch = fields.Dict(keys=fields.Str(), values=fields.Str())
    usageRequirements = fields.Str()


class DiscoverySchema(_Open):
    services = fields.List(fields.Nested(ServiceEntrySchema), required=True)


class HealthSchema(_Open):
    status = fields.Str(required=True, validate=validate.OneOf(["ok"]))


class ReadinessCheckSchema(_Open):
    ok = fields.Bool(required=True)
    error = fields.Str()
    ms = fields.Float(required=True)


class ReadinessSchema(_Open):
    status = fields.Str(required=True, validate=validate.OneOf(["ready", "not ready"]))
    checks = fields.Dict(keys=fields.Str(), values=fields.Nested(ReadinessCheckSchema), required=True)


class _Counts(_Open):
    shown = fields.Int(required=True)
    accepted = fields.Int(required=True)
    overridden = fields.Int(required=True)
    acceptanceRate = fields.Float(required=True, allow_none=True)
    overrideRate = fields.Float(required=True, allow_none=True)


AnalyticsPeriodSchema = _Open.from_dict({  # "from" is a Python keyword
    "from": fields.Date(required=True), "to": fields.Date(required=True), "days": fields.Int(required=True),
    "timezone": fields.Str(required=True)}, name="AnalyticsPeriodSchema")


class AnalyticsDaySchema(_Open):
    date = fields.Date(required=True)
    shown = fields.Int(required=True)
    accepted = fields.Int(required=True)
    overridden = fields.Int(required=True)


class AnalyticsReasonSchema(_Open):
    reason = fields.Str(required=True, allow_none=True)
    system = fields.Str(required=True, allow_none=True)
    code = fields.Str(required=True, allow_none=True)
    count = fields.Int(required=True)


class AnalyticsKindSchema(_Counts):
    service = fields.Str(required=True)
    topic = fields.Str(required=True, allow_none=True)
    display = fields.Str(required=True)
    topOverrideReasons = fields.List(fields.Nested(AnalyticsReasonSchema), required=True)
    series = fields.List(fields.Nested(AnalyticsDaySchema), required=True)


class AnalyticsReportSchema(_Open):
    """GET /analytics.json (service/analytics.py build_report)."""

    generatedAt = fields.DateTime(required=True)
    period = fields.Nested(AnalyticsPeriodSchema, required=True)
    totals = fields.Nested(_Counts, required=True)
    series = fields.List(fields.Nested(AnalyticsDaySchema), required=True)
    kinds = fields.List(fields.Nested(AnalyticsKindSchema), required=True)
    unknownCardFeedback = fields.Int(required=True)
    unknownSuggestionFeedback = fields.Int(required=True)
    knowledgeVersions = fields.List(fields.Str(), required=True)


class EmptyObjectSchema(Schema):
    class Meta:
        unknown = "raise"


# -- the document --------------------------------------------------------------------------------

_FHIR_RESOURCE = {
    "type": "object",
    "description": "A FHIR R4 resource (a Bundle for searches). Resources the rules cannot read are skipped, "
                   "not refused.",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
}

_ERROR_TEXT = {
    400: "The body is not a valid CDS Hooks call (malformed JSON, a missing or invalid field); every "
         "problem is listed with its path in `expression`.",
    401: "Production mode: no valid CDS Hooks JWT from a trusted client (or, for analytics, no admin token).",
    403: "Forbidden: a service call names a fhirServer that is not registered for the calling client "
         "(service/patient_scope.py), or, for analytics, production mode runs without CDS_ADMIN_TOKEN.",
    404: "No CDS service with this id.",
    412: "Prefetch data the service needs was neither supplied nor obtainable from fhirServer (the "
         "FHIR server may not be queried, failed, or was too slow); `expression` names each key.",
    413: "The body is larger than CDS_MAX_BODY_BYTES.",
    415: "The body is not application/json.",
    503: "A dependency (Redis for the JWT replay check, the card store) is unavailable; retry after Retry-After.",
}


def build_openapi(services: Iterable[CdsService]) -> dict[str, Any]:
    """The OpenAPI document for these services (deterministic: same services, same document)."""
    services = list(services)
    spec = APISpec(title="fasciculation-cds", version=_version(), openapi_version=OPENAPI_VERSION,
                   info={"description": _DESCRIPTION,
                         "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
                   plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)])
    spec.components.security_scheme("cdsHooksJwt", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "The CDS Hooks JWT of a trusted EHR (production mode)."})
    spec.components.security_scheme("adminToken", {
        "type": "http", "scheme": "bearer", "description": "CDS_ADMIN_TOKEN."})
    spec.components.security_scheme("adminBasic", {
        "type": "http", "scheme": "basic", "description": "Any user name, CDS_ADMIN_TOKEN as the password."})
    spec.components.schema("FhirResource", _FHIR_RESOURCE)
    for name, schema in (("OperationOutcome", OperationOutcomeSchema), ("Coding", CodingSchema),
                         ("FhirAuthorization", FhirAuthorizationSchema), ("CardOverrideReason", OverrideReasonSchema),
                         ("Card", CardSchema), ("CdsResponse", CardsResponseSchema),
                         ("Discovery", DiscoverySchema), ("FeedbackOverrideReason", feedback_schemas.OverrideReasonSchema),
                         ("FeedbackItem", feedback_schemas.FeedbackItemSchema),
                         ("FeedbackRequest", feedback_schemas.FeedbackRequestSchema), ("Health", HealthSchema),
                         ("Readiness", ReadinessSchema), ("AnalyticsReport", AnalyticsReportSchema),
                         ("Empty", EmptyObjectSchema)):
        spec.components.schema(name, schema=schema)
    hooks = sorted({service.hook for service in services})
    for hook in hooks:
        # One class per hook: apispec keys its registry by class, and the same class under several names
        # warns that references may not resolve. _refine() then narrows each copy to its hook.
        per_hook = type(f"{_request_name(hook)}Schema", (CdsRequestSchema,), {})
        spec.components.schema(_request_name(hook), schema=per_hook)

    service_ids = [service.id for service in services]
    id_parameter = {"name": "service_id", "in": "path", "required": True,
                    "description": "A service id from discovery.", "schema": {"type": "string", "enum": service_ids}}
    spec.path("/cds-services", operations={"get": {
        "operationId": "discovery", "tags": ["CDS Hooks"], "summary": "Discovery: the services offered",
        "security": [{"cdsHooksJwt": []}],
        "responses": {"200": _json("Discovery", "The services offered."), **_errors(401, 503)}}})
    spec.path("/cds-services/{service_id}", operations={"post": {
        "operationId": "callService", "tags": ["CDS Hooks"], "summary": "Call a CDS service: cards for this chart",
        "security": [{"cdsHooksJwt": []}], "parameters": [id_parameter],
        "requestBody": {"required": True, "content": {JSON: {"schema": _one_of(
            [{"$ref": f"#/components/schemas/{_request_name(hook)}"} for hook in hooks])}}},
        "responses": {"200": _json("CdsResponse", "The cards (possibly none)."),
                      **_errors(400, 401, 403, 404, 412, 413, 415, 503)}}})
    spec.path("/cds-services/{service_id}/feedback", operations={"post": {
        "operationId": "feedback", "tags": ["CDS Hooks"], "summary": "Feedback: what clinicians did with the cards",
        "security": [{"cdsHooksJwt": []}], "parameters": [id_parameter],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}},
        "responses": {"200": {
            "description": "Every entry stored (repeats are stored once): `{}`. Some entries rejected: the others "
                           "stored, and an OperationOutcome naming each rejected entry (severity warning).",
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Empty"}},
                        FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
                      **_errors(400, 401, 404, 413, 415, 503)}}})
    days = {"name": "days", "in": "query", "required": False, "description": "UTC days up to today (default 30).",
            "schema": {"type": "integer", "minimum": 1, "maximum": 365}}
    analytics_security = [{"adminToken": []}, {"adminBasic": []}]
    spec.path("/analytics", operations={"get": {
        "operationId": "analyticsPage", "tags": ["Analytics"], "summary": "Card outcomes per card kind (HTML)",
        "security": analytics_security, "parameters": [days],
        "responses": {"200": {"description": "The page, with inline SVG charts.",
                            "content": {"text/html": {"schema": {"type": "string"}}}},
                      **_errors(400, 401, 403, 503)}}})
    spec.path("/analytics.json", operations={"get": {
        "operationId": "analyticsReport", "tags": ["Analytics"], "summary": "Card outcomes per card kind (JSON)",
        "security": analytics_security, "parameters": [days],
        "responses": {"200": _json("AnalyticsReport", "The report."), **_errors(400, 401, 403, 503)}}})
    spec.path("/healthz", operations={"get": {
        "operationId": "healthz", "tags": ["Operations"], "summary": "Liveness", "security": [],
        "responses": {"200": _json("Health", "The process answers.")}}})
    spec.path("/readyz", operations={"get": {
        "operationId": "readyz", "tags": ["Operations"], "summary": "Readiness", "security": [],
        "responses": {"200": _json("Readiness", "Every check passes."),
                      "503": _json("Readiness", "A check fails; it is named.")}}})
    spec.path("/metrics", operations={"get": {
        "operationId": "metrics", "tags": ["Operations"], "summary": "Prometheus metrics, all workers",
        "security": [],
        "responses": {"200": {"description": "Prometheus text exposition format 0.0.4.",
                            "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}}}})
    spec.path("/openapi.json", operations={"get": {
        "operationId": "openapi", "tags": ["Operations"], "summary": "This document", "security": [],
        "responses": {"200": {"description": "The OpenAPI document.",
                            "content": {JSON: {"schema": {"type": "object"}}}}}}})

    document = spec.to_dict()
    _refine(document["components"]["schemas"], services)
    return document


def _refine(schemas: dict[str, Any], services: list[CdsService]) -> None:
    """What the marshmallow schemas check in code, said in JSON Schema."""
    resource_or_null = {"anyOf": [{"$ref": "#/components/schemas/FhirResource"}, {"type": "null"}]}
    hooks = sorted({service.hook for service in services})
    for hook in hooks:
        request = copy.deepcopy(schemas[_request_name(hook)])
        properties = request["properties"]
        properties["hook"] = {"type": "string", "enum": [hook]}
        context_schema = next((service.context_schema for service in services
                               if service.hook == hook and service.context_schema), None) or CONTEXT_SCHEMAS.get(hook)
        if context_schema is not None:
            properties["context"] = {"$ref": f"#/components/schemas/{_context_name(hook)}"}
        # service/prefetch.py: a key the service asks for holds a resource, a Bundle or null; other keys
        # are ignored whatever they hold.
        keys = sorted({key for service in services if service.hook == hook for key in service.prefetch})
        # Optional fields may be null, taken as absent (service/schemas.py, _NullMeansAbsent).
        properties["prefetch"] = {"type": ["object", "null"], "properties": {key: resource_or_null for key in keys}}
        properties["extension"] = {"type": ["object", "null"]}
        # CdsRequestSchema._authorization_needs_server (cds-r-1): a fhirAuthorization (not null) needs a fhirServer.
        request["if"] = {"properties": {"fhirAuthorization": {"type": "object"}}, "required": ["fhirAuthorization"]}
        request["then"] = {"properties": {"fhirServer": {"type": "string"}}, "required": ["fhirServer"]}
        schemas[_request_name(hook)] = request
        if context_schema is not None and _context_name(hook) not in schemas:
            schemas[_context_name(hook)] = _marshmallow_schema(context_schema)
    # The service checks the URL with marshmallow's URL validator; the contract names a plain subset of it.
    for name in [_request_name(hook) for hook in hooks]:
        schemas[name]["properties"]["fhirServer"] = {"anyOf": [
            {"type": "string", "format": "uri", "pattern": URL_PATTERN}, {"type": "null"}]}
    # FhirAuthorizationSchema.expires_in (SecondsInteger): a JSON integer, or its digits as a string.
    schemas["FhirAuthorization"]["properties"]["expires_in"] = {"anyOf": [
        {"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,10}$"}]}
    # Response fields that are URLs: JSON Schema's format.
    for name, field_names in (("Source", ("url", "icon")), ("Link", ("url",))):
        for field_name in field_names:
            schemas[name]["properties"][field_name]["format"] = "uri"
    # FeedbackItemSchema._accepted_needs_suggestions (cds-fb-2): an accepted item carries acceptedSuggestions.
    item = schemas["FeedbackItem"]
    item["properties"]["outcomeTimestamp"] = {"type": "string", "format": "date-time",
                                              "pattern": feedback_schemas.RFC3339_PATTERN}
    item["if"] = {"properties": {"outcome": {"const": "accepted"}}, "required": ["outcome"]}
    item["then"] = {"required": ["acceptedSuggestions"]}
    # OverrideReasonSchema._reason_or_comment (cds-fb-3).
    schemas["FeedbackOverrideReason"]["anyOf"] = [{"required": ["reason"]}, {"required": ["userComment"]}]


def _marshmallow_schema(schema: type[Schema]) -> dict[str, Any]:
    spec = APISpec(title="", version="", openapi_version=OPENAPI_VERSION, plugins=[MarshmallowPlugin()])
    spec.components.schema("X", schema=schema)
    return spec.to_dict()["components"]["schemas"]["X"]


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    responses = {}
    for status in statuses:
        response: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                                                        "description": "The authentication scheme(s) expected."}}
        responses[str(status)] = response
    return responses


def _one_of(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    return schemas[0] if len(schemas) == 1 else {"oneOf": schemas}


def _request_name(hook: str) -> str:
    return "".join(part.capitalize() for part in hook.split("-")) + "Request"


def _context_name(hook: str) -> str:
    return "".join(part.capitalize() for part in hook.split("-")) + "Context"


def _schema_name(schema: Any) -> str:
    # Nested schemas not registered by name above: the class name without "Schema".
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema").lstrip("_")
    return "Feedback" + name if cls.__module__ == feedback_schemas.__name__ and not name.startswith("Feedback") else name


def _version() -> str:
    try:
        return metadata.version("fasciculation-cds")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


# -- serving it ----------------------------------------------------------------------------------

def install_openapi(app: Flask) -> None:
    app.register_blueprint(blueprint)


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    body = current_app.extensions.get(EXTENSION)
    if body is None:  # built once per app, on first use: most apps (tests, workers) never serve it
        body = orjson.dumps(build_openapi(runtime().services.values()))
        current_app.extensions[EXTENSION] = body
    return Response(body, mimetype=JSON, headers={"Cache-Control": "no-cache"})


def document_text(services: Iterable[CdsService] | None = None) -> str:
    """The document as committed in docs/openapi.json: indented, keys in a stable order."""
    if services is None:
        from hooks.registry import ALL_SERVICES
        services = ALL_SERVICES
    return orjson.dumps(build_openapi(services), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
