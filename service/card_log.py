"""The card log and the per-patient card history it makes possible.

    install_card_log(app, settings)   open the store (ConfigError unless its schema is current)
    record_issued_cards(...)          log every card a service call returns (called by protocol.py)
    card_history_for(...)             this patient's earlier outcomes, handed to the hook in HookCall
    card_log()                        the open store and patient-key secret (feedback, analytics)

Every write is exactly-once (see service/store/repository.py); a store failure is a 503 with an
OperationOutcome, never a silently lost row. The feedback endpoint (service/feedback.py) and the
analytics (service/analytics.py) read and write through this module, and nothing here imports them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app

from hooks.declaration import CardOutcome, CdsService, HookResult
from service.auth import current_client
from service.config import Settings
from service.errors import CdsError
from service.ops import add_readiness_check
from service.patient_scope import patient_namespace_for
from service.store import IssuedCardRow, Store, StoreError, open_store, patient_key, patient_key_secret

log = logging.getLogger("service.card_log")

EXTENSION = "fasciculation_cds_card_log"
# How far back the card history handed to hooks reaches; a hook applies its own, shorter window.
CARD_HISTORY_DAYS = 366


@dataclass(frozen=True)
class CardLog:
    store: Store
    secret: bytes

    def patient_key(self, call_request: Mapping[str, Any]) -> str | None:
        patient_id = call_request.get("context", {}).get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            return None
        return patient_key(self.secret, patient_namespace_for(current_client(), call_request), patient_id)


def install_card_log(app: Flask, settings: Settings) -> CardLog:
    """Open the store (ConfigError unless its schema is current); readiness then checks it."""
    log_ = CardLog(store=open_store(settings), secret=patient_key_secret(settings))
    app.extensions[EXTENSION] = log_
    add_readiness_check(app, "database", log_.store.ping)
    return log_


def card_log() -> CardLog:
    return current_app.extensions[EXTENSION]


def record_issued_cards(service: CdsService, call_request: Mapping[str, Any], result: HookResult,
                        issued_at: datetime) -> None:
    """Log each returned card before the response leaves; 503 if it cannot be logged."""
    if not result.cards:
        return  # most calls: nothing to log, so no patient key to derive either
    loop = card_log()
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
            hook_instance=call_request["hookInstance"], issued_at=issued_at, patient_key=key,
            # So that feedback naming a suggestion this card never offered can be flagged.
            suggestion_ids=tuple(s["uuid"] for s in card.get("suggestions") or () if isinstance(s.get("uuid"), str))))
    with store_available("card_log"):
        loop.store.record_issued_cards(rows)


def card_history_for(service: CdsService, call_request: Mapping[str, Any], now: datetime) -> tuple[CardOutcome, ...]:
    loop = card_log()
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
