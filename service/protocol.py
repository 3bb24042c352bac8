"""The CDS Hooks endpoints: discovery and service calls, derived from the declarations."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError

from hooks.declaration import CdsService, HookCall
from service.errors import CdsError, Issue
from service.prefetch import gather
from service.runtime import Runtime
from service.schemas import CONTEXT_SCHEMAS, CdsRequestSchema, validation_issues

log = logging.getLogger("service.requests")
blueprint = Blueprint("cds_hooks", __name__)

_REQUEST_SCHEMA = CdsRequestSchema()
_CONTEXT_SCHEMAS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}


def runtime() -> Runtime:
    return current_app.extensions["fasciculation_cds"]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@blueprint.get("/cds-services")
def discovery() -> Response:
    return json_response({"services": [service.discovery_entry() for service in runtime().services.values()]})


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    started = time.perf_counter()
    service = runtime().services.get(service_id)
    if service is None:
        raise CdsError.single(404, f"There is no CDS service with id {service_id!r}; see GET /cds-services.")
    call_request = validate_call(read_json_object(), service)
    hook_call, how = gather_call_data(service, call_request)
    result = service.handler(hook_call)
    log.info("service call", extra={
        "event": "service_call",
        "service": service.id,
        "hookInstance": call_request["hookInstance"],
        "status": 200,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "card_topics": list(result.topics),
        "prefetch": how,
        "skipped_resources": result.skipped_resources,
    })
    return json_response({"cards": result.cards})


def read_json_object() -> dict[str, Any]:
    content_type = request.mimetype or ""
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise CdsError.single(415, f"Send the body as application/json, not {content_type}.")
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as error:
        raise CdsError.single(400, f"The request body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise CdsError.single(400, "The request body must be a JSON object.")
    return body


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


def gather_call_data(service: CdsService, call_request: Mapping[str, Any]) -> tuple[HookCall, dict[str, str]]:
    rt = runtime()
    gathered = gather(service, call_request, rt.fhir_client, rt.settings)
    hook_call = HookCall(
        hook_instance=call_request["hookInstance"],
        context=call_request["context"],
        data=gathered.data,
        now=rt.clock(),
        locale=rt.settings.locale,
    )
    return hook_call, gathered.how
