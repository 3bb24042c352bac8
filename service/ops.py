"""Endpoints for the container platform: liveness, readiness and Prometheus metrics.

    GET /healthz   200 while the process can answer at all (liveness: restart me if not)
    GET /readyz    200 when every readiness check passes, else 503 naming the failing ones
                   (readiness: send me traffic only if so)
    GET /metrics   Prometheus text format, all gunicorn workers added up

They live outside /cds-services, so no JWT is needed: the proxy in front must not forward
them from outside (see docs/operations.md). Answers name checks and exception types only,
never a URL, password or message that could carry one.

Readiness checks are named callables that raise when not ready. The app registers the
knowledge, configuration and Redis checks; other parts (the feedback store) add their own
with `add_readiness_check(app, name, check)`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
from flask import Blueprint, Flask, Response, current_app

from service import metrics
from service.config import Settings

blueprint = Blueprint("ops", __name__)
READY_CHECKS = "fasciculation_cds_ready_checks"
_REDIS_TIMEOUT_SECONDS = 1.0

ReadinessCheck = Callable[[], None]


class NotReady(Exception):
    """A readiness check's own refusal; its message is fixed text, safe to show."""


def install_ops(app: Flask, settings: Settings) -> None:
    add_readiness_check(app, "knowledge", _knowledge_loaded)
    add_readiness_check(app, "config", lambda: _config_valid(app, settings))
    if settings.redis_url:
        add_readiness_check(app, "redis", _redis_ping(settings.redis_url))
    app.register_blueprint(blueprint)


def add_readiness_check(app: Flask, name: str, check: ReadinessCheck) -> None:
    """Register `check` under `name`; it raises (any exception) while the service is not ready."""
    app.extensions.setdefault(READY_CHECKS, {})[name] = check


@blueprint.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    results: dict[str, Any] = {}
    for name, check in current_app.extensions.get(READY_CHECKS, {}).items():
        started = time.perf_counter()
        try:
            check()
        except NotReady as refusal:
            results[name] = {"ok": False, "error": str(refusal)}
        except Exception as error:  # noqa: BLE001 - any failure means "not ready"; say only its type
            results[name] = {"ok": False, "error": type(error).__name__}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    ready = all(result["ok"] for result in results.values())
    return _json({"status": "ready" if ready else "not ready", "checks": results}, 200 if ready else 503)


@blueprint.get("/metrics", endpoint="metrics")
def metrics_endpoint() -> Response:
    return metrics.exposition()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


# -- checks -------------------------------------------------------------------------------------

def _knowledge_loaded() -> None:
    from cards import load_knowledge  # cached after the first load; raises if the files are broken
    knowledge = load_knowledge()
    if not knowledge.version:
        raise NotReady("clinical knowledge has no version")
    runtime = current_app.extensions.get("fasciculation_cds")
    if runtime is None or not runtime.services:
        raise NotReady("no CDS service is declared")


def _config_valid(app: Flask, settings: Settings) -> None:
    # Settings were validated when the app was built; production must also have a working guard.
    if settings.mode != "production":
        return
    guard = app.extensions.get("fasciculation_cds_auth")
    if not getattr(guard, "production", False) or getattr(guard, "verifier", None) is None:
        raise NotReady("production mode without a token verifier for trusted clients")
    if not settings.public_base_url:
        raise NotReady("production mode without CDS_PUBLIC_BASE_URL")


def _redis_ping(url: str) -> ReadinessCheck:
    client = redis.Redis.from_url(url, socket_timeout=_REDIS_TIMEOUT_SECONDS,
                                  socket_connect_timeout=_REDIS_TIMEOUT_SECONDS)

    def check() -> None:
        client.ping()
    return check
