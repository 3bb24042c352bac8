"""Prometheus metrics: every definition in this one module, small `count_*` / `observe_*` calls elsewhere.

Under gunicorn each worker is its own process, so the metrics use prometheus_client's
multiprocess mode: `service/gunicorn_conf.py` points `PROMETHEUS_MULTIPROC_DIR` at a fresh
directory in the runtime volume before anything imports prometheus_client, and `/metrics`
then adds up the files of every worker (live or recycled). Without that variable (tests,
`serve --dev`, `evaluate`) the process's own registry is served.

Labels hold only bounded, non-identifying values: endpoint and service ids known to the app,
card topics and indicators from the knowledge files, prefetch keys from the service
declarations, HTTP status codes and fixed reason words. Never a patient, a URL or a token.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "cds"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)

# -- HTTP ----------------------------------------------------------------------------------------

REQUEST_DURATION = Histogram(
    "request_duration_seconds", "Time to answer a request, by endpoint and CDS service.",
    ["endpoint", "service"], namespace=NAMESPACE, buckets=_LATENCY_BUCKETS)
REQUESTS = Counter(
    "requests_total", "Requests answered, by endpoint, CDS service and HTTP status.",
    ["endpoint", "service", "status"], namespace=NAMESPACE)

# -- CDS service calls ------------------------------------------------------------------------

CARDS = Counter(
    "cards_total", "Cards returned, by CDS service, card topic and indicator.",
    ["service", "topic", "indicator"], namespace=NAMESPACE)
PRECONDITION_FAILED = Counter(
    "precondition_failed_total",
    "Service calls answered 412 because prefetch data could not be obtained, by CDS service.",
    ["service"], namespace=NAMESPACE)
PREFETCH_KEYS = Counter(
    "prefetch_keys_total",
    "Prefetch keys of service calls by outcome: supplied by the EHR, null (no data), fetched from "
    "the FHIR server, failed (could not be obtained, or the FHIR server may not be queried), or "
    "incomplete (a next link not followed, or the page cap).",
    ["service", "key", "outcome"], namespace=NAMESPACE)

# -- FHIR server ------------------------------------------------------------------------------

FHIR_REQUEST_DURATION = Histogram(
    "fhir_request_duration_seconds",
    "Time of one HTTP request to an EHR's FHIR server (headers and body), by status: the HTTP "
    "status code, or timeout / connection_error / refused_address when there was no answer.",
    ["status"], namespace=NAMESPACE, buckets=_LATENCY_BUCKETS)
FHIR_ERRORS = Counter(
    "fhir_request_errors_total",
    "FHIR requests that failed, by status: a non-200 HTTP status code, or timeout / "
    "connection_error / refused_address / invalid_body.",
    ["status"], namespace=NAMESPACE)

# -- authentication and feedback --------------------------------------------------------------

AUTH_FAILURES = Counter(
    "auth_failures_total", "Calls refused by authentication, by reason.", ["reason"], namespace=NAMESPACE)
FEEDBACK = Counter(
    "feedback_total", "CDS Hooks feedback items received, by outcome.", ["outcome"], namespace=NAMESPACE)

# Reasons as the auth layer words them (free text, for the log) -> one bounded label value.
AUTH_FAILURE_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern)) for label, pattern in (
        ("missing_token", r"^no Authorization header"),
        ("not_bearer", r"not a Bearer token"),
        ("no_trusted_clients", r"no trusted client is configured"),
        ("replay", r"already used|replay"),
        ("expired", r"expired"),
        ("time_claims", r"\((iat|nbf|exp)\)|^(exp|iat|nbf) is"),
        ("algorithm", r"^alg\b"),
        ("untrusted_issuer", r"not a trusted client|^iss |^tenant "),
        ("jku_not_allowed", r"jku is not on"),
        ("audience", r"^aud\b"),
        ("signature", r"signature"),
        ("key", r"\bkid is not a key|JWK Set|^key |^curve |cannot verify"),
        ("malformed", r"malformed|too long|not a JSON object|^typ |^kid |^jku |^header |^jti "),
        ("replay_store_unavailable", r"replay_store_unavailable"),
    ))
FEEDBACK_OUTCOMES = frozenset({"accepted", "overridden", "invalid"})


def count_auth_failure(reason: str) -> None:
    """One call refused by authentication; `reason` may be the auth layer's free-text reason."""
    AUTH_FAILURES.labels(auth_failure_label(reason)).inc()


def auth_failure_label(reason: str) -> str:
    for label, pattern in AUTH_FAILURE_REASONS:
        if label == reason or pattern.search(reason):
            return label
    return "other"


def count_feedback(outcome: str) -> None:
    """One feedback item: `accepted`, `overridden` or `invalid` (anything else counts as `other`)."""
    FEEDBACK.labels(outcome if outcome in FEEDBACK_OUTCOMES else "other").inc()


def count_cards(service: str, cards: Iterable[Mapping[str, Any]]) -> None:
    for card in cards:
        source = card.get("source") or {}
        topic = (source.get("topic") or {}).get("code") or "none"
        CARDS.labels(service, str(topic), str(card.get("indicator", "none"))).inc()


def count_precondition_failed(service: str) -> None:
    PRECONDITION_FAILED.labels(service).inc()


def count_prefetch_keys(service: str, outcome_by_key: Mapping[str, str]) -> None:
    """outcome_by_key: prefetch key -> supplied | null | fetched | failed | incomplete."""
    for key, outcome in outcome_by_key.items():
        PREFETCH_KEYS.labels(service, key, outcome).inc()


def observe_fhir_request(status: int | str, seconds: float) -> None:
    """One HTTP request to a FHIR server: its status code, or timeout / connection_error / refused_address."""
    FHIR_REQUEST_DURATION.labels(str(status)).observe(seconds)


def count_fhir_error(status: int | str) -> None:
    """One failed FHIR request: a status as above, or invalid_body (200 but unusable)."""
    FHIR_ERRORS.labels(str(status)).inc()


# -- the Flask side ---------------------------------------------------------------------------

# Flask endpoint -> label; other blueprints' views are labelled with the blueprint's name, and
# anything else (no route matched: 404 / 405) is "other".
ENDPOINT_LABELS = {
    "cds_hooks.discovery": "discovery",
    "cds_hooks.call_service": "service",
    "ops.healthz": "healthz",
    "ops.readyz": "readyz",
    "ops.metrics": "metrics",
}


def install_metrics(app: Flask) -> None:
    """Time every request and count it by endpoint, service and status."""
    app.before_request(_start_timer)
    app.after_request(_record_request)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def request_started() -> float | None:
    """When this request's first before_request rule ran (time.perf_counter), for durations in logs."""
    return g.get("metrics_started")


def _record_request(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is None:  # a request refused before the first before_request (cannot happen today)
        return response
    endpoint = request.url_rule.endpoint if request.url_rule else None
    label = ENDPOINT_LABELS.get(endpoint or "")
    if label is None:  # another blueprint's view (feedback, analytics): its name, fixed in code
        label = endpoint.partition(".")[0] if endpoint and "." in endpoint else "other"
    service = _service_label()
    REQUEST_DURATION.labels(label, service).observe(time.perf_counter() - started)
    REQUESTS.labels(label, service, str(response.status_code)).inc()
    return response


def _service_label() -> str:
    service_id = (request.view_args or {}).get("service_id")
    if not service_id:
        return ""
    runtime = current_app.extensions.get("fasciculation_cds")
    # Only ids the app declares: a caller must not be able to mint new label values.
    return service_id if runtime is not None and service_id in runtime.services else "unknown"


def exposition() -> Response:
    """The `/metrics` response: all workers' metrics under gunicorn, this process's otherwise."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry),
                    headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
