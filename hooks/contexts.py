"""The context each hook sends, per the CDS Hooks hook library, as marshmallow schemas.

A CdsService names its context schema (CdsService.context_schema); the service layer validates every
call's context with it, so a new hook brings its own context rules and service/ stays unchanged.
Unknown context fields are ignored, as the spec asks; optional fields sent as null read as absent.
Only the shape the services rely on is checked: the draft orders themselves are read (and their
defects reported) by the reading layer, cards/chart/draft_orders.py.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

# FHIR `id` datatype; the hooks type patientId and encounterId with it.
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# `userId`: a reference to who is using the EHR (patient-view 1.1; order-select and order-sign name
# Practitioner or PractitionerRole, and a Patient or RelatedPerson may also be the user of a portal).
USER_REFERENCE = re.compile(r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$")
# A relative reference to a resource: `MedicationRequest/request-123`.
RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")


class FullMatch(validate.Regexp):
    """validate.Regexp over the whole value: Python's `$` also matches before a final newline."""

    def __call__(self, value: str) -> str:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def without_nulls(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` without the optional fields of `schema` that are null."""
    return {key: value for key, value in data.items()
            if value is not None or key not in schema.fields or schema.fields[key].required}


class NullMeansAbsent(Schema):
    """Optional fields sent as `null` are taken as absent. CDS Hooks 2.0 says to omit them, but clients
    send them anyway (Da Vinci CRD's reference requests: `"fhirAuthorization": null`,
    `"encounterId": null`), and refusing costs an integrator a round trip for nothing. Required fields
    must still hold a value. Unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    @post_load
    def _drop_nulls(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return without_nulls(self, data)


class PatientViewContextSchema(NullMeansAbsent):
    userId = fields.Str(required=True, validate=FullMatch(
        USER_REFERENCE,
        error="must be Practitioner/<id>, PractitionerRole/<id>, Patient/<id> or RelatedPerson/<id>"))
    patientId = fields.Str(required=True, validate=FullMatch(FHIR_ID, error="must be a FHIR id"))
    encounterId = fields.Str(allow_none=True, validate=FullMatch(FHIR_ID, error="must be a FHIR id"))


class DraftOrdersField(fields.Dict):
    """`draftOrders`: a FHIR Bundle whose entries each hold a resource with a resourceType. The
    resources are not validated as FHIR here: the public CDS Hooks Sandbox sends not-quite-R4 drafts
    (no `intent`, `category` as one object, `reasonCode` as one CodeableConcept), and the reading
    layer reads what the rules use and reports what it cannot read."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._deserialize(value, attr, data, **kwargs)
        if bundle.get("resourceType") != "Bundle":
            raise ValidationError("must be a FHIR Bundle (resourceType \"Bundle\")")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise ValidationError("entry must be a list")
        problems = {}
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str) \
                    or not resource["resourceType"]:
                problems[index] = ["must hold a resource with a resourceType"]
            elif "id" in resource and (not isinstance(resource["id"], str) or not FHIR_ID.fullmatch(resource["id"])):
                problems[index] = ["resource.id must be a FHIR id"]
        if problems:
            raise ValidationError({"entry": problems})
        return bundle


def draft_references(bundle: Mapping[str, Any]) -> set[str]:
    """`Type/id` of every draft order in the Bundle that has an id."""
    references = set()
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        if isinstance(resource.get("id"), str):
            references.add(f"{resource['resourceType']}/{resource['id']}")
    return references


# What DraftOrdersField checks, said in JSON Schema (the OpenAPI contract).
_DRAFT_ORDERS_JSON_SCHEMA = {
    "description": "A FHIR Bundle of the draft orders (MedicationRequest and others).",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "entry": {"type": "array", "items": {
            "type": "object", "required": ["resource"],
            "properties": {"resource": {
                "type": "object", "required": ["resourceType"],
                "properties": {"resourceType": {"type": "string", "minLength": 1},
                               "id": {"type": "string", "pattern": FHIR_ID.pattern}}}}}},
    },
}


class OrderSignContextSchema(PatientViewContextSchema):
    """order-sign (hook 1.0/2.0): the orders about to be signed."""

    draftOrders = DraftOrdersField(required=True, keys=fields.Str(), metadata=_DRAFT_ORDERS_JSON_SCHEMA)


class OrderSelectContextSchema(OrderSignContextSchema):
    """order-select: the orders being composed, and which of them the user just selected."""

    selections = fields.List(fields.Str(validate=FullMatch(
        RELATIVE_REFERENCE, error="must be a relative reference such as MedicationRequest/123")),
        required=True, validate=validate.Length(min=1))

    @validates_schema
    def _selections_are_draft_orders(self, data: Mapping[str, Any], **_: Any) -> None:
        if "selections" not in data or "draftOrders" not in data:
            return  # the field's own error is reported
        drafts = draft_references(data["draftOrders"])
        unknown = {index: [f"{selection} is not an order in draftOrders"]
                   for index, selection in enumerate(data["selections"]) if selection not in drafts}
        if unknown:
            raise ValidationError(unknown, "selections")


# Context schema per hook (the hook library's), for services that do not name their own.
HOOK_CONTEXTS: dict[str, type[Schema]] = {
    "patient-view": PatientViewContextSchema,
    "order-select": OrderSelectContextSchema,
    "order-sign": OrderSignContextSchema,
}
