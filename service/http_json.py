"""JSON in and out of the CDS Hooks endpoints: a request body read as one JSON object, a JSON answer."""
from __future__ import annotations

import codecs
from typing import Any

import orjson
from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.errors import CdsError


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def read_json_object() -> dict[str, Any]:
    content_type = request.mimetype or ""
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise CdsError.single(415, f"Send the body as application/json, not {content_type}.")
    # A UTF-8 byte-order mark is not JSON, but some clients' serialisers write one: it means nothing.
    data = request.get_data(cache=False).removeprefix(codecs.BOM_UTF8)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(data) >= limit:
        # A chunked body (no Content-Length) is cut off at the limit, not refused: refuse it here.
        raise RequestEntityTooLarge()
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CdsError.single(400, f"The request body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise CdsError.single(400, "The request body must be a JSON object.")
    return body
