"""The CDS Hooks endpoints: discovery and service calls, derived from the declarations."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from hooks.declaration import CdsService, DeferredHistory, HookCall
from service import metrics
from service.auth import current_client
from service.card_log import card_history_for, record_issued_cards
from service.errors import CdsError, Issue
from service.http_json import json_response, read_json_object
from service.prefetch import GatheredData, gather
from service.prefetch_policy import answer_or_412
from service.runtime import runtime
from service.schemas import CONTEXT_SCHEMAS, CdsRequestSchema, validation_issues

log = logging.getLogger("service.requests")
blueprint = Blueprint("cds_hooks", __name__)

_REQUEST_SCHEMA = CdsRequestSchema()
_CONTEXT_SCHEMAS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}

# A call whose body is larger than this (a chart of thousands of results) waits for any other such
# call in the same process to finish. Parsed, a 2 MB chart is some 15 MB of Python objects; with one
# at a time a worker's memory stays bounded whatever its thread count, and nothing is lost: the work
# is CPU-bound under the GIL, so running such calls side by side would not finish them any sooner.
LARGE_BODY_BYTES = 512 * 1024
_large_calls = threading.Lock()


@contextmanager
def _one_large_call_at_a_time() -> Iterator[None]:
    length = request.content_length
    if length is not None and length <= LARGE_BODY_BYTES:
        yield
        return
    with _large_calls:  # large, or chunked (no Content-Length: its size is known only once read)
        yield


@blueprint.get("/cds-services")
def discovery() -> Response:
    return json_response({"services": [service.discovery_entry() for service in runtime().services.values()]})


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    # One log line per call, refused or answered: ids, counts and timings, never patient data.
    started = time.perf_counter()
    fields: dict[str, Any] = {"event": "service_call", "service": None, "hookInstance": None}
    try:
        service = runtime().services.get(service_id)
        if service is None:
            raise CdsError.single(404, f"There is no CDS service with id {service_id!r}; see GET /cds-services.")
        fields["service"] = service.id
        with _one_large_call_at_a_time():
            call_request = validate_call(read_json_object(), service)
            fields["hookInstance"] = call_request["hookInstance"]
            hook_call, gathered = gather_call_data(service, call_request)
            how = gathered.how
            result = service.handler(hook_call)
            answer_or_412(service, gathered.settled, result)  # a required key missing: 412 unless the cards stand
            record_issued_cards(service, call_request, result, issued_at=hook_call.now)  # the card log
            del call_request, hook_call, gathered  # the chart: freed before the next large call goes ahead
    except Exception as error:
        status = (error.status if isinstance(error, CdsError)
                  else error.code or 500 if isinstance(error, HTTPException) else 500)
        if status == 412:
            metrics.count_precondition_failed(fields["service"])
            fields["prefetch_failed"] = sorted({
                where.removeprefix("prefetch.") for issue in error.issues for where in issue.expression
                if where.startswith("prefetch.")})
        _log_call(fields, started, status)
        raise
    metrics.count_cards(service.id, result.cards)
    _log_call({**fields, "card_topics": list(result.topics), "card_rules": list(result.rules), "prefetch": how,
               "skipped_resources": result.skipped_resources}, started, 200)
    return json_response({"cards": result.cards})


def _log_call(fields: dict[str, Any], started: float, status: int) -> None:
    caller = current_client()
    fields = {
        **fields,
        # Who asked, for audit; None only for unsigned calls in development mode.
        "iss": caller and caller.iss,
        "tenant": caller and caller.tenant,
        "jti": caller and caller.jti,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    level = logging.WARNING if status == 412 or status >= 500 else logging.INFO
    log.log(level, "service call" if status == 200 else "service call refused", extra=fields)


def validate_call(body: Mapping[str, Any], service: CdsService) -> dict[str, Any]:
    # Report every problem in one answer: an integrator should not fix them one round trip at a time.
    issues = []
    try:
        call_request = _REQUEST_SCHEMA.load(body)
    except ValidationError as error:
        issues.extend(validation_issues(error.messages))
        call_request = None
    context = body.get("context")
    context_schema = _CONTEXT_SCHEMAS.get(service.hook)
    if context_schema is not None and isinstance(context, dict):
        try:
            context_schema.load(context)
        except ValidationError as error:
            issues.extend(validation_issues(error.messages, "context"))
    if call_request is not None and call_request["hook"] != service.hook:
        issues.append(Issue(f"Service {service.id!r} answers the {service.hook!r} hook, "
                            f"not {call_request['hook']!r}.", expression=("hook",)))
    if issues:
        raise CdsError(400, issues)
    return call_request


def gather_call_data(service: CdsService, call_request: Mapping[str, Any]) -> tuple[HookCall, GatheredData]:
    rt = runtime()
    # The authenticated caller decides which FHIR servers may be queried (docs/security.md).
    gathered = gather(service, call_request, rt.fhir_client, rt.settings, caller=current_client())
    now = rt.clock()
    hook_call = HookCall(
        hook_instance=call_request["hookInstance"],
        context=call_request["context"],
        data=gathered.data,
        now=now,
        locale=rt.settings.locale,
        # Read from the store only if the hook looks (a reassurance card): most calls never do.
        card_history=DeferredHistory(lambda: card_history_for(service, call_request, now)),
        reassurance_window_days=rt.settings.reassurance_window_days,
        gaps=gathered.settled.gaps,
        fetch_references=gathered.fetch_references,
    )
    return hook_call, gathered
