"""The Flask application: the CDS Hooks protocol around the services declared in `hooks`."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from flask import Flask
from flask_cors import CORS

from hooks.declaration import CdsService
from service.auth import install_authentication
from service.config import Settings
from service.errors import register_error_handlers
from service.analytics import install_analytics
from service.card_log import install_card_log
from service.feedback import install_feedback
from service.fhir_client import FhirClient
from service.logging_setup import configure_logging
from service.metrics import install_metrics
from service.openapi import install_openapi
from service.ops import install_ops
from service.paths import CanonicalCdsPaths
from service.protocol import blueprint
from service.runtime import EXTENSION, Runtime


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings | None = None, *, services: Iterable[CdsService] | None = None,
               clock: Callable[[], datetime] = utc_now) -> Flask:
    """Application factory. Defaults: settings from the environment, every service in `hooks`."""
    settings = settings or Settings.from_env()
    if services is None:
        from hooks.registry import ALL_SERVICES  # lazily: tests may run the app with their own services
        services = ALL_SERVICES
    configure_logging(settings.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # `/cds-services/{id}/` and the sandbox's `//{id}` routed as `/cds-services/{id}` (service/paths.py).
    app.wsgi_app = CanonicalCdsPaths(app.wsgi_app)  # type: ignore[method-assign]
    services_by_id = {}
    for service in services:
        if service.id in services_by_id:
            raise ValueError(f"two CDS services share the id {service.id!r}")
        services_by_id[service.id] = service
    app.extensions[EXTENSION] = Runtime(
        settings=settings, services=services_by_id, fhir_client=FhirClient(settings), clock=clock)

    origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
    CORS(app, resources={r"/cds-services*": {"origins": origins}},
         methods=["GET", "POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type"],
         max_age=86400, send_wildcard=origins == "*")
    register_error_handlers(app)
    # First of the before_request rules, so refused and failed calls are timed and counted too.
    install_metrics(app)
    # The card log and feedback store (ConfigError unless its schema is current); first, because the
    # jti replay record lives in that store when REDIS_URL is unset.
    card_log = install_card_log(app, settings)
    # A before_request rule on every /cds-services path: no view runs for a refused caller.
    install_authentication(app, settings, card_log.store)
    app.register_blueprint(blueprint)
    install_feedback(app)
    install_analytics(app, settings)
    install_ops(app, settings)  # /healthz, /readyz, /metrics
    install_openapi(app)  # /openapi.json, no authentication: it holds no data
    return app
