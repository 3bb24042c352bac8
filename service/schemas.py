"""marshmallow schemas for the CDS Hooks 2.0 wire format.

Requests are validated on the way in (unknown fields and extensions are ignored, as the
spec asks); the card schema checks what the service sends out and is applied in tests to
every card every fixture produces.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

# The hook contexts and their validators live with the declarations; re-exported for the service's modules.
from hooks.contexts import (FHIR_ID, HOOK_CONTEXTS, USER_REFERENCE, FullMatch,  # noqa: F401
                            PatientViewContextSchema, without_nulls)
from service.errors import Issue

# No white space (as Python and JavaScript regular expressions define it: the patterns are also the
# OpenAPI contract's) and no control character; spelt out because `\S` differs between the two.
TOKEN_CHAR = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
# hookInstance is a UUID per the spec; EHRs differ in case and braces, so accept any
# non-blank token of sane length rather than refuse a real EHR's call.
HOOK_INSTANCE = re.compile(rf"^{TOKEN_CHAR}{{1,128}}$")


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class _NullMeansAbsent(_Strict):
    """Optional fields sent as `null` are taken as absent. CDS Hooks 2.0 says to omit them, but clients
    send them anyway (Da Vinci CRD's reference requests: `"fhirAuthorization": null`,
    `"encounterId": null`), and refusing costs an integrator a round trip for nothing. Required fields
    must still hold a value. The fields that may be null say `allow_none=True`, so the OpenAPI contract
    says so too."""

    @post_load
    def _drop_nulls(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return without_nulls(self, data)


class JsonInteger(fields.Int):
    """A JSON integer: JSON (and JSON Schema) make no difference between 300 and 300.0, so neither
    does this; strings, booleans and fractions are refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class SecondsInteger(JsonInteger):
    """A JSON integer, or the same digits as a string: OAuth token responses carry `expires_in` as
    `"3600"` often enough that clients pass it on so (RFC 6749 says number)."""

    _DIGITS = re.compile(r"^[0-9]{1,10}$")

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and self._DIGITS.fullmatch(value):
            value = int(value)
        return super()._validated(value)


class FhirAuthorizationSchema(_NullMeansAbsent):
    access_token = fields.Str(required=True, validate=validate.Length(min=1))
    token_type = fields.Str(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = SecondsInteger(required=True, validate=validate.Range(min=0))
    scope = fields.Str(required=True, validate=validate.Length(min=1))
    subject = fields.Str(required=True, validate=validate.Length(min=1))
    # CDS Hooks 3.0: the patient the token is scoped to (SHOULD with patient/ scopes). Accepted, not needed.
    patient = fields.Str(allow_none=True, validate=FullMatch(FHIR_ID))


class CdsRequestSchema(_NullMeansAbsent):
    hook = fields.Str(required=True, validate=validate.Length(min=1))
    hookInstance = fields.Str(required=True, validate=FullMatch(
        HOOK_INSTANCE, error="must be a non-blank identifier (a UUID) of at most 128 characters"))
    fhirServer = fields.Url(allow_none=True, schemes={"http", "https"}, require_tld=False)
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema, allow_none=True)
    context = fields.Dict(keys=fields.Str(), required=True)
    prefetch = fields.Dict(allow_none=True, keys=fields.Str(), values=fields.Raw(allow_none=True))
    extension = fields.Dict(allow_none=True, keys=fields.Str())

    @validates_schema
    def _authorization_needs_server(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("fhirAuthorization") is not None and data.get("fhirServer") is None:
            raise ValidationError("fhirAuthorization requires fhirServer (cds-r-1)", "fhirServer")


# Context schema per hook, from the CDS Hooks hook library (hooks/contexts.py): for a service whose
# declaration names none (CdsService.context_schema comes first).
CONTEXT_SCHEMAS: dict[str, type[Schema]] = dict(HOOK_CONTEXTS)


def validation_issues(messages: Any, prefix: str = "") -> list[Issue]:
    """Flatten marshmallow's nested error dict into one issue per field, with its path."""
    if isinstance(messages, list):
        text = " ".join(str(message) for message in messages)
        path = prefix or "(body)"
        return [Issue(f"{path}: {text}", expression=(prefix,) if prefix else ())]
    issues: list[Issue] = []
    for key, nested in messages.items():
        if key == "_schema":
            issues.extend(validation_issues(nested, prefix))
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        issues.extend(validation_issues(nested, path))
    return issues


# ---------------------------------------------------------------------------------------
# Response side. The spec forbids null and empty values for optional fields, so every
# schema here rejects None, "" , [] and {} wherever a field is optional.

def _no_empty_values(value: Any, path: str = "card") -> None:
    if value is None or value == "" or value == [] or value == {}:
        raise ValidationError(f"{path} is null or empty; optional fields must be omitted")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _no_empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_empty_values(item, f"{path}[{index}]")




class CodingSchema(_Strict):
    system = fields.Str(required=True, validate=validate.Length(min=1))
    code = fields.Str(required=True, validate=validate.Length(min=1))
    display = fields.Str(validate=validate.Length(min=1))


class OverrideReasonSchema(CodingSchema):
    display = fields.Str(required=True, validate=validate.Length(min=1))


class SourceSchema(_Strict):
    label = fields.Str(required=True, validate=validate.Length(min=1))
    url = fields.Url(schemes={"http", "https"}, require_tld=False)
    icon = fields.Url(schemes={"http", "https"}, require_tld=False)
    topic = fields.Nested(CodingSchema)


class ActionSchema(_Strict):
    type = fields.Str(required=True, validate=validate.OneOf(["create", "update", "delete"]))
    description = fields.Str(required=True, validate=validate.Length(min=1))
    resource = fields.Dict()
    resourceId = fields.Str(validate=validate.Length(min=1))

    @validates_schema
    def _resource_matches_type(self, data: Mapping[str, Any], **_: Any) -> None:
        if data["type"] in ("create", "update") and "resourceType" not in data.get("resource", {}):
            raise ValidationError("create and update actions carry a whole FHIR resource", "resource")
        if data["type"] == "delete" and "resourceId" not in data:
            raise ValidationError("delete actions carry resourceId", "resourceId")


class SuggestionSchema(_Strict):
    label = fields.Str(required=True, validate=validate.Length(min=1))
    uuid = fields.UUID(required=True)
    isRecommended = fields.Bool(truthy={True}, falsy={False})
    actions = fields.List(fields.Nested(ActionSchema), validate=validate.Length(min=1))


class LinkSchema(_Strict):
    label = fields.Str(required=True, validate=validate.Length(min=1))
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    type = fields.Str(required=True, validate=validate.OneOf(["absolute", "smart"]))
    appContext = fields.Str()
    autolaunchable = fields.Bool(truthy={True}, falsy={False})

    @validates_schema
    def _app_context_only_on_smart(self, data: Mapping[str, Any], **_: Any) -> None:
        if "appContext" in data and data["type"] != "smart":
            raise ValidationError("appContext is only allowed on smart links (cds-resp-3)", "appContext")


class CardSchema(Schema):
    class Meta:
        unknown = "raise"  # what we send must be exactly the spec's fields

    uuid = fields.UUID(required=True)
    summary = fields.Str(required=True, validate=validate.Length(min=1, max=139))
    detail = fields.Str(validate=validate.Length(min=1))
    indicator = fields.Str(required=True, validate=validate.OneOf(["info", "warning", "critical"]))
    source = fields.Nested(SourceSchema, required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema), validate=validate.Length(min=1))
    selectionBehavior = fields.Str(validate=validate.OneOf(["at-most-one", "any"]))
    overrideReasons = fields.List(fields.Nested(OverrideReasonSchema), validate=validate.Length(min=1))
    links = fields.List(fields.Nested(LinkSchema), validate=validate.Length(min=1))

    @validates_schema(pass_original=True)
    def _spec_invariants(self, data: Mapping[str, Any], original: Mapping[str, Any], **_: Any) -> None:
        _no_empty_values(original)
        if ("suggestions" in data) != ("selectionBehavior" in data):
            raise ValidationError("selectionBehavior is present exactly when suggestions are (cds-resp-6)")
        if data.get("selectionBehavior") == "at-most-one":
            recommended = [s for s in data["suggestions"] if s.get("isRecommended")]
            if len(recommended) > 1:
                raise ValidationError("at-most-one allows one recommended suggestion (cds-resp-1)")
        if "\n" in data["summary"]:
            raise ValidationError("summary is one line", "summary")
        if re.search(r"<[a-zA-Z/][^>]*>", original.get("detail", "")):
            raise ValidationError("detail must be markdown without raw HTML", "detail")


class CardsResponseSchema(Schema):
    class Meta:
        unknown = "raise"

    cards = fields.List(fields.Nested(CardSchema), required=True)
    systemActions = fields.List(fields.Nested(ActionSchema), validate=validate.Length(min=1))
