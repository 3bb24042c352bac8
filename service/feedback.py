"""CDS Hooks feedback: what clinicians did with the cards (CDS Hooks 2.0 §Feedback).

    POST /cds-services/{id}/feedback   store each valid entry; name each rejected one

Each entry of a batch is judged on its own. The valid ones are stored (exactly once: a retry of the
whole batch is safe) and the answer names every rejected entry in an OperationOutcome, so one bad
entry never costs the others: `200 {}` when all were stored, `200` with an OperationOutcome of
warnings when some were, `400` with an OperationOutcome when none was. Feedback on a card this
service never issued, or accepting a suggestion the card never offered, is stored and flagged.

The JWT guard covers the feedback URL like every other /cds-services path, and CORS applies to it.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from service import metrics
from service.auth import current_client
from service.card_log import card_log, store_available
from service.errors import CdsError, Issue, outcome_response
from service.http_json import json_response, read_json_object
from service.runtime import runtime
from service.schemas import TOKEN_CHAR, CodingSchema, FullMatch, validation_issues
from service.store import FeedbackRow

log = logging.getLogger("service.feedback")
blueprint = Blueprint("feedback", __name__)

MAX_FEEDBACK_ITEMS = 500


def install_feedback(app: Flask) -> None:
    app.register_blueprint(blueprint)


# -- POST /cds-services/{id}/feedback -------------------------------------------------------------

# RFC 3339 §5.6 date-time: full date, 'T', full time with seconds, optional fraction, Z or an offset.
# ASCII digits only (Python's \d takes any script's); no leap second (:60), which datetime cannot hold.
# The OpenAPI contract (service/openapi.py) states the same pattern.
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_CARD_ID = re.compile(rf"^{TOKEN_CHAR}{{1,128}}$")


class Rfc3339DateTime(fields.Field):
    default_error_messages = {"invalid": "must be an RFC 3339 date-time with a time zone, "
                                         "e.g. 2026-11-15T09:05:31Z"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise self.make_error("invalid")
        text = value.upper().replace("Z", "+00:00")
        fraction = re.search(r"\.(\d+)", text)
        if fraction and len(fraction.group(1)) > 6:  # datetime keeps microseconds
            text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.make_error("invalid") from None


class _Object(Schema):
    class Meta:
        unknown = EXCLUDE  # the spec: ignore unknown fields and extensions


class AcceptedSuggestionSchema(_Object):
    id = fields.Str(required=True, validate=validate.Length(min=1, max=128))


class OverrideReasonSchema(_Object):
    reason = fields.Nested(CodingSchema)
    userComment = fields.Str(validate=validate.Length(min=1, max=2000))

    @validates_schema
    def _reason_or_comment(self, data: Mapping[str, Any], **_: Any) -> None:
        if "reason" not in data and "userComment" not in data:
            raise ValidationError("overrideReason needs a reason, a userComment or both (cds-fb-3)")


class FeedbackItemSchema(_Object):
    card = fields.Str(required=True, validate=FullMatch(
        _CARD_ID, error="must be the card's uuid (a non-blank identifier of at most 128 characters)"))
    outcome = fields.Str(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(fields.Nested(AcceptedSuggestionSchema), validate=validate.Length(max=100))
    overrideReason = fields.Nested(OverrideReasonSchema)
    outcomeTimestamp = Rfc3339DateTime(required=True)

    @validates_schema(skip_on_field_errors=False)
    def _accepted_needs_suggestions(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("outcome") == "accepted" and "acceptedSuggestions" not in data:
            raise ValidationError("required when outcome is accepted (cds-fb-2); send [] for a card "
                                  "without suggestions", "acceptedSuggestions")


_BATCH_SIZE = validate.Length(min=1, max=MAX_FEEDBACK_ITEMS,
                              error=f"must hold between 1 and {MAX_FEEDBACK_ITEMS} feedback entries")


class FeedbackRequestSchema(_Object):
    """The request as the contract states it (service/openapi.py)."""

    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True, validate=_BATCH_SIZE)


class _FeedbackBatchSchema(_Object):
    """The request as it is read: the batch first, then each entry on its own (FeedbackItemSchema)."""

    feedback = fields.List(fields.Raw(), required=True, validate=_BATCH_SIZE)


_BATCH_SCHEMA = _FeedbackBatchSchema()
_ITEM_SCHEMA = FeedbackItemSchema()


@blueprint.post("/cds-services/<service_id>/feedback")
def receive_feedback(service_id: str) -> Response:
    started = time.perf_counter()
    rt = runtime()
    if service_id not in rt.services:
        raise CdsError.single(404, f"There is no CDS service with id {service_id!r}; see GET /cds-services.")
    try:
        batch = _BATCH_SCHEMA.load(read_json_object())["feedback"]
    except ValidationError as error:
        metrics.count_feedback("invalid")
        raise CdsError(400, validation_issues(error.messages)) from None
    rows, rejected = [], []
    for index, entry in enumerate(batch):
        try:
            rows.append(_read_entry(entry))
        except ValidationError as error:
            rejected.extend(validation_issues(error.messages, f"feedback.{index}"))
            metrics.count_feedback("invalid")
    if not rows:
        raise CdsError(400, rejected)
    with store_available("feedback"):
        receipt = card_log().store.record_feedback(service_id, rows, received_at=rt.clock())
    for row in rows:
        metrics.count_feedback(row.outcome)
    caller = current_client()
    log.info("feedback", extra={
        "event": "feedback", "service": service_id, "received": len(batch), "rejected": len(batch) - len(rows),
        "stored": receipt.stored, "repeats": receipt.received - receipt.stored,
        "unknown_cards": receipt.unknown_cards, "unknown_suggestions": receipt.unknown_suggestions,
        "iss": caller and caller.iss, "tenant": caller and caller.tenant,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    })
    if receipt.unknown_cards:
        log.warning("feedback for cards this service has no record of issuing", extra={
            "event": "feedback_unknown_cards", "service": service_id, "count": receipt.unknown_cards})
    if receipt.unknown_suggestions:
        log.warning("feedback accepting suggestions the card did not offer", extra={
            "event": "feedback_unknown_suggestions", "service": service_id, "count": receipt.unknown_suggestions})
    if not rejected:
        return json_response({})
    stored = Issue(f"{len(rows)} of {len(batch)} feedback entries were accepted (stored, or already stored); "
                   f"the {len(batch) - len(rows)} named in the other issues were rejected and not stored.",
                   code="informational", severity="information")
    return outcome_response(200, [stored, *(Issue(i.diagnostics, "invalid", i.expression, "warning") for i in rejected)])


def _read_entry(entry: Any) -> FeedbackRow:
    if not isinstance(entry, Mapping):
        raise ValidationError("must be a feedback object")
    return _row(_ITEM_SCHEMA.load(entry))


def _row(item: Mapping[str, Any]) -> FeedbackRow:
    accepted = item["outcome"] == "accepted"
    # Only what the outcome means is kept: suggestions of an acceptance, the reason of an override.
    override = {} if accepted else item.get("overrideReason") or {}
    reason = override.get("reason") or {}
    return FeedbackRow(
        card_uuid=item["card"], outcome=item["outcome"], outcome_at=item["outcomeTimestamp"],
        accepted_suggestions=tuple(s["id"] for s in item["acceptedSuggestions"]) if accepted else None,
        override_reason_system=reason.get("system"), override_reason_code=reason.get("code"),
        override_reason_display=reason.get("display"), override_comment=override.get("userComment"),
    )
