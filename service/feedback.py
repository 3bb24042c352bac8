"""CDS Hooks feedback, the card log, and the per-patient card history they make possible.

    POST /cds-services/{id}/feedback   store what clinicians did with the cards (CDS Hooks 2.0 §Feedback)
    record_issued_cards(...)           log every card a service call returns (called by protocol.py)
    card_history_for(...)              this patient's earlier outcomes, handed to the hook in HookCall

The JWT guard covers the feedback URL like every other /cds-services path, and CORS applies to it.
Every write is exactly-once (see service/store/repository.py); a store failure is a 503 with an
OperationOutcome, never a silently lost row.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from hooks.declaration import CardOutcome, CdsService, HookResult
from service import metrics
from service.auth import current_client
from service.config import Settings
from service.errors import CdsError
from service.patient_scope import patient_namespace_for
from service.schemas import TOKEN_CHAR, CodingSchema, FullMatch, validation_issues
from service.store import (FeedbackRow, IssuedCardRow, Store, StoreError, open_store, patient_key,
                           patient_key_secret)

log = logging.getLogger("service.feedback")
blueprint = Blueprint("feedback", __name__)

EXTENSION = "fasciculation_cds_feedback"
MAX_FEEDBACK_ITEMS = 500
# How far back the card history handed to hooks reaches; a hook applies its own, shorter window.
CARD_HISTORY_DAYS = 366


@dataclass(frozen=True)
class FeedbackLoop:
    store: Store
    secret: bytes

    def patient_key(self, call_request: Mapping[str, Any]) -> str | None:
        patient_id = call_request.get("context", {}).get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            return None
        return patient_key(self.secret, patient_namespace_for(current_client(), call_request), patient_id)


def install_feedback_loop(app: Flask, settings: Settings) -> FeedbackLoop:
    """Open the store (ConfigError unless its schema is current) and register feedback and analytics."""
    from service.analytics import install_analytics  # analytics imports this module
    from service.ops import add_readiness_check

    loop = FeedbackLoop(store=open_store(settings), secret=patient_key_secret(settings))
    app.extensions[EXTENSION] = loop
    app.register_blueprint(blueprint)
    install_analytics(app, settings)
    add_readiness_check(app, "database", loop.store.ping)
    return loop


def feedback_loop() -> FeedbackLoop:
    return current_app.extensions[EXTENSION]


# -- the card log ---------------------------------------------------------------------------------

def record_issued_cards(service: CdsService, call_request: Mapping[str, Any], result: HookResult,
                        issued_at: datetime) -> None:
    """Log each returned card before the response leaves; 503 if it cannot be logged."""
    if not result.cards:
        return  # most calls: nothing to log, so no patient key to derive either
    loop = feedback_loop()
    key = loop.patient_key(call_request)
    rows = []
    for card in result.cards:
        card_uuid = card.get("uuid")
        if not isinstance(card_uuid, str):
            continue  # the spec: no uuid, no feedback; our services always set one
        topic = card.get("source", {}).get("topic") or {}
        rows.append(IssuedCardRow(
            card_uuid=card_uuid, service_id=service.id, topic_code=topic.get("code"),
            topic_display=topic.get("display"), knowledge_version=result.knowledge_version,
            hook_instance=call_request["hookInstance"], issued_at=issued_at, patient_key=key))
    with store_available("card_log"):
        loop.store.record_issued_cards(rows)


def card_history_for(service: CdsService, call_request: Mapping[str, Any], now: datetime) -> tuple[CardOutcome, ...]:
    loop = feedback_loop()
    key = loop.patient_key(call_request)
    if key is None:
        return ()
    with store_available("card_history"):
        past = loop.store.card_history(service.id, key, since=now - timedelta(days=CARD_HISTORY_DAYS))
    return tuple(CardOutcome(topic=p.topic_code, outcome=p.outcome, outcome_at=p.outcome_at) for p in past)


@contextmanager
def store_available(operation: str) -> Iterator[None]:
    try:
        yield
    except StoreError as error:
        log.error("card store unavailable", extra={
            "event": "store_unavailable", "operation": operation, "error": type(error).__name__})
        raise CdsError.single(503, "The service cannot record cards or feedback right now; try again shortly.",
                              code="transient", headers={"Retry-After": "5"}) from None


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


class FeedbackRequestSchema(_Object):
    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(
        min=1, max=MAX_FEEDBACK_ITEMS, error=f"must hold between 1 and {MAX_FEEDBACK_ITEMS} feedback entries"))


_FEEDBACK_SCHEMA = FeedbackRequestSchema()


@blueprint.post("/cds-services/<service_id>/feedback")
def receive_feedback(service_id: str) -> Response:
    from service.protocol import json_response, read_json_object, runtime

    started = time.perf_counter()
    rt = runtime()
    if service_id not in rt.services:
        raise CdsError.single(404, f"There is no CDS service with id {service_id!r}; see GET /cds-services.")
    try:
        body = _FEEDBACK_SCHEMA.load(read_json_object())
    except ValidationError as error:
        metrics.count_feedback("invalid")
        raise CdsError(400, validation_issues(error.messages)) from None
    rows = [_row(item) for item in body["feedback"]]
    with store_available("feedback"):
        receipt = feedback_loop().store.record_feedback(service_id, rows, received_at=rt.clock())
    for row in rows:
        metrics.count_feedback(row.outcome)
    caller = current_client()
    log.info("feedback", extra={
        "event": "feedback", "service": service_id, "received": receipt.received, "stored": receipt.stored,
        "repeats": receipt.received - receipt.stored, "unknown_cards": receipt.unknown_cards,
        "iss": caller and caller.iss, "tenant": caller and caller.tenant,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    })
    if receipt.unknown_cards:
        log.warning("feedback for cards this service has no record of issuing", extra={
            "event": "feedback_unknown_cards", "service": service_id, "count": receipt.unknown_cards})
    return json_response({})


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
