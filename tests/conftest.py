"""Shared fixtures: apps built with the factory, a probe service, request builders."""
from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hooks.declaration import CdsService, HookCall, HookResult
from service import create_app
from service.config import Settings
from tests.logcapture import capturing_all_logs
from tests.secrets import ISSUED

pytest_plugins = ["tests.fhirserver", "tests.ci_no_skip", "pytester"]

FIXTURE_AS_OF = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
PROBE_ID = "probe"


def probe_handler(call: HookCall) -> HookResult:
    """Reports what data reached the handler, so protocol tests can see the gathering."""
    counts = ", ".join(f"{key}={len(call.data[key])}" for key in sorted(call.data))
    card = {
        "uuid": str(uuid.uuid4()),
        "summary": f"probe saw {len(call.resources)} resources",
        "detail": counts or "no keys",
        "indicator": "info",
        "source": {"label": "probe"},
    }
    return HookResult(cards=[card], topics=("probe",))


PROBE_SERVICE = CdsService(
    id=PROBE_ID,
    hook="patient-view",
    title="Probe",
    description="Echoes the gathered data.",
    handler=probe_handler,
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}&_count=100",
        "observations": "Observation?patient={{context.patientId}}&_sort=-date&_count=10",
    },
)


@pytest.fixture(scope="session", autouse=True)
def no_secret_is_ever_logged():
    """Capture every log record of the whole suite; no access token may appear in any."""
    with capturing_all_logs() as handler:
        yield
    leaked = sorted({token for token in ISSUED for line in handler.lines if token in line})
    assert not leaked, f"{len(leaked)} access token(s) appeared in log output"


# One scratch data directory for the run, never the developer's own (CDS_DATA_DIR's default lives
# under XDG_DATA_HOME: so does every app or server a test starts without naming a data directory).
_TEST_DATA_DIR = tempfile.mkdtemp(prefix="fasciculation-cds-tests-")
atexit.register(shutil.rmtree, _TEST_DATA_DIR, ignore_errors=True)
os.environ["XDG_DATA_HOME"] = os.path.join(_TEST_DATA_DIR, "xdg-data")


def make_settings(**changes: Any) -> Settings:
    # DEBUG so the suite-wide log capture sees everything the service could ever write.
    base = Settings.from_env({"CDS_LOG_LEVEL": "DEBUG", "CDS_DATA_DIR": _TEST_DATA_DIR})
    return base.replace(**changes)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def probe_app(settings):
    app = create_app(settings, services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)
    yield app
    app.extensions["fasciculation_cds"].fhir_client.close()


@pytest.fixture
def probe_client(probe_app):
    return probe_app.test_client()


def patient_view_request(patient_id: str = "p1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": patient_id},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient_id},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "total": 0},
            "observations": None,
        },
    }
    body.update(copy.deepcopy(overrides))
    return body
