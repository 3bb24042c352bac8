"""The CDS Hooks endpoints: discovery and service calls, derived from the declarations."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, g, request
from marshmallow import ValidationError

from hooks.declaration import CdsService, DeferredHistory, HookCall
from service import metrics
from service.auth import auth_outcome, current_client
from service.auth.guard import EXTENSION as GUARD_EXTENSION
from service.card_log import card_history_for, record_issued_cards
from service.client_profile import adapt_to_client
from service.errors import CdsError, Issue
from service.http_json import json_response, read_json_object
from service.patient_scope import registered_fhir_base
from service.prefetch import GatheredData, gather
from service.prefetch_policy import answer_or_412
from service.runtime import runtime
from service.schemas import CONTEXT_SCHEMAS, CdsRequestSchema, validation_issues, without_nulls

log = logging.getLogger("service.requests")
blueprint = Blueprint("cds_hooks", __name__)

_REQUEST_SCHEMA = CdsRequestSchema()
_CONTEXT_SCHEMAS: dict[type, Any] = {}  # schema class -> its one instance (marshmallow schemas are reusable)


def context_schema_of(service: CdsService) -> Any:
    """The service's declared context schema, else the hook library's for its hook; None when neither."""
    schema_class = service.context_schema or CONTEXT_SCHEMAS.get(service.hook)
    if schema_class is None:
        return None
    if schema_class not in _CONTEXT_SCHEMAS:
        _CONTEXT_SCHEMAS[schema_class] = schema_class()
    return _CONTEXT_SCHEMAS[schema_class]

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
    fields = _call_line()
    service = runtime().services.get(service_id)
    if service is None:
        raise CdsError.single(404, f"There is no CDS service with id {service_id!r}; see GET /cds-services.")
    fields["service"] = service.id
    try:
        with _one_large_call_at_a_time():
            call_request = validate_call(read_json_object(), service)
            fields["hookInstance"] = call_request["hookInstance"]
            hook_call, gathered = gather_call_data(service, call_request)
            how = gathered.how
            result = service.handler(hook_call)
            answer_or_412(service, gathered.settled, result)  # a required key missing: 412 unless the cards stand
            # Shaped for the client's registration (allowed links, CDS Hooks 1.0) before the card log sees it.
            result = adapt_to_client(result, current_client())
            record_issued_cards(service, call_request, result, issued_at=hook_call.now)  # the card log
            del call_request, hook_call, gathered  # the chart: freed before the next large call goes ahead
    except CdsError as error:
        if error.status == 412:
            metrics.count_precondition_failed(service.id)
            fields["prefetch_failed"] = sorted({
                where.removeprefix("prefetch.") for issue in error.issues for where in issue.expression
                if where.startswith("prefetch.")})
        raise
    metrics.count_cards(service.id, result.cards)
    fields.update(card_topics=list(result.topics), card_rules=list(result.rules), prefetch=how,
                  skipped_resources=result.skipped_resources)
    return json_response({"cards": result.cards})


# -- one log line per service call ------------------------------------------------------------------
# Written after the response is made, so that every call has exactly one, answered or refused:
# refused by the JWT guard before the view ran (401, 503), refused by the view (400, 403, 404, 412,
# 413, 415) or failed (500). Ids, counts, timings and the authentication outcome; never patient data,
# never a token. The guard writes no line of its own for service calls.

_CALL_ENDPOINT = "cds_hooks.call_service"


@blueprint.record_once
def _the_call_line_carries_the_auth_outcome(state: Any) -> None:
    guard = state.app.extensions.get(GUARD_EXTENSION)
    if guard is not None:
        guard.endpoints_logging_auth.add(_CALL_ENDPOINT)


def _call_line() -> dict[str, Any]:
    """This call's log fields, which the view fills in as it goes."""
    if "service_call_line" not in g:
        g.service_call_line = {"service": None, "hookInstance": None}
    return g.service_call_line


@blueprint.after_request
def _log_service_call(response: Response) -> Response:
    if request.endpoint != _CALL_ENDPOINT:
        return response
    view_fields = _call_line()
    outcome = auth_outcome()
    started = metrics.request_started()
    status = response.status_code
    service_id = (request.view_args or {}).get("service_id")
    fields: dict[str, Any] = {
        "event": "service_call",
        **view_fields,
        # Refused before the view ran: the id called, if it is one of ours (never an unknown caller's text).
        "service": view_fields["service"] or (service_id if service_id in runtime().services else None),
        "hookInstance": view_fields["hookInstance"] or (outcome and outcome.hook_instance),
        # Who asked: verified when auth is "ok"; as the token claimed when it was refused.
        "auth": outcome and outcome.result,
        "client": outcome and outcome.client,
        "iss": outcome and outcome.iss,
        "tenant": outcome and outcome.tenant,
        "jti": outcome and outcome.jti,
        "status": status,
        "duration_ms": None if started is None else round((time.perf_counter() - started) * 1000, 2),
    }
    if outcome is not None and outcome.result != "ok":
        fields["auth_reason"] = outcome.reason
    unsigned = outcome is not None and outcome.result == "unsigned"
    level = logging.WARNING if status in (401, 412) or status >= 500 or unsigned else logging.INFO
    message = ("service call" if status == 200 else "service call refused") + (
        " (DEVELOPMENT MODE: served without authentication)" if unsigned else "")
    log.log(level, message, extra=fields)
    return response


def validate_call(body: Mapping[str, Any], service: CdsService) -> dict[str, Any]:
    # Report every problem in one answer: an integrator should not fix them one round trip at a time.
    issues = []
    try:
        call_request = _REQUEST_SCHEMA.load(body)
    except ValidationError as error:
        issues.extend(validation_issues(error.messages))
        call_request = None
    context = body.get("context")
    context_schema = context_schema_of(service)
    if context_schema is not None and isinstance(context, dict):
        try:
            context_schema.load(context)
        except ValidationError as error:
            issues.extend(validation_issues(error.messages, "context"))
        if call_request is not None:  # the context as sent (unknown fields kept), less its null optionals
            call_request["context"] = without_nulls(context_schema, call_request["context"])
    if call_request is not None and call_request["hook"] != service.hook:
        issues.append(Issue(f"Service {service.id!r} answers the {service.hook!r} hook, "
                            f"not {call_request['hook']!r}.", expression=("hook",)))
    if issues:
        raise CdsError(400, issues)
    return call_request


def gather_call_data(service: CdsService, call_request: Mapping[str, Any]) -> tuple[HookCall, GatheredData]:
    rt = runtime()
    caller = current_client()
    # Only a FHIR base registered for the caller, even when nothing is fetched: the card history is its.
    registered_fhir_base(caller, call_request)
    # The authenticated caller decides which FHIR servers may be queried (docs/security.md).
    gathered = gather(service, call_request, rt.fhir_client, rt.settings, caller=caller)
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
