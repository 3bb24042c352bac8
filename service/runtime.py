"""What the app holds for the life of the process: settings, services, FHIR client, clock."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from hooks.declaration import CdsService
from service.config import Settings
from service.fhir_client import FhirClient

EXTENSION = "fasciculation_cds"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    services: Mapping[str, CdsService]
    fhir_client: FhirClient
    clock: Callable[[], datetime]


def runtime() -> Runtime:
    """The running app's Runtime (inside a request or app context)."""
    return current_app.extensions[EXTENSION]
