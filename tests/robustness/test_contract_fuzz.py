"""schemathesis against the live service: every operation of /openapi.json, fuzzed.

The server is production-like: `fasciculation-cds serve` (gunicorn, the container's command) in
`CDS_MODE=production` with a trusted client whose key this test generated, Redis for the jti replay
check. schemathesis runs as its command-line tool does (the examples, coverage and fuzzing phases),
with an auth hook (schemathesis_hooks.py) that signs a fresh JWT for every call. Positive
(schema-valid) and negative (schema-violating) cases, at most EXAMPLES per operation and mode,
seeded; every built-in check on: no 5xx, every status, content type, header and body as documented,
invalid data refused, valid data accepted, authentication enforced, wrong methods answered 405.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.auth.support import ISSUER
from tests.robustness.conftest import PUBLIC_BASE, start_live_service, stop_live_service
from tests.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

EXAMPLES = 500
SEED = 20261115
TIME_LIMIT_SECONDS = 600
# A valid call may still be refused for what no schema can know: prefetch that cannot be obtained
# (412, CDS Hooks' own answer for it), or a fhirServer not registered for the calling client (403).
# Every other answer to a valid call is 2xx.
# Feedback judges each entry on its own: a batch with some entries invalid stores the others and
# answers 200 with an OperationOutcome naming the rejected ones (400 only when none was valid).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "412"]

# One operation serves every service (the path's service_id); with order-select and order-sign beside
# patient-view its body is a oneOf of the three hooks' requests. Two agreements no schema of one operation
# can state are checked in code and answered 400 naming the field: the body's hook is the service's
# (a patient-view body to an order-sign service), and every order-select selection is one of its draftOrders.
[[operations]]
include-operation-id = "callService"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "412"]

[[operations]]
include-operation-id = "feedback"
checks.negative_data_rejection.expected-statuses = ["200", "400", "401", "404", "405", "413", "415"]
"""


def test_every_operation_keeps_its_contract(tmp_path):
    service = start_live_service(tmp_path, "fuzzed")
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(service.key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.robustness.schemathesis_hooks",
           "PYTHONPATH": str(ROOT), "CDS_FUZZ_KEY_FILE": str(key_file), "CDS_FUZZ_KID": service.key.kid,
           "CDS_FUZZ_ISSUER": ISSUER, "CDS_FUZZ_PUBLIC_BASE": PUBLIC_BASE,
           "CDS_FUZZ_ADMIN_TOKEN": service.admin_token}
    started = time.monotonic()
    try:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
             service.url + "/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
             "--seed", str(SEED), "--phases", "examples,coverage,fuzzing", "--workers", "2",
             "--request-timeout", "15", "--max-response-time", "10", "--suppress-health-check", "all",
             "--report", "json", "--report-json-path", str(report), "--output-truncate", "false"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS)
        seconds = time.monotonic() - started
        calls = requests_by_endpoint(requests.get(service.url + "/metrics", timeout=10).text)
    finally:
        log = stop_live_service(service)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "eyJ" not in log, "a JWT appeared in the server's log"
    summary = json.loads(report.read_text())
    print(f"\nschemathesis: {seconds:.0f} s, {summary['test_cases']['generated']} cases generated, "
          f"{summary['operations']['tested']} operations; requests the server answered, by endpoint and "
          f"status: {json.dumps(calls, sort_keys=True)}")
    # Operations with input (a body, parameters or the Authorization header) get at least EXAMPLES
    # calls; /healthz, /readyz and /metrics take none, so they have their few distinct calls only.
    # "analytics" counts both /analytics and /analytics.json.
    for endpoint, operations in (("service", 1), ("feedback", 1), ("discovery", 1), ("analytics", 2)):
        assert sum(calls[endpoint].values()) >= operations * EXAMPLES, (endpoint, calls[endpoint])
    assert not [status for statuses in calls.values() for status in statuses
                if status.startswith("5") and status != "503"], calls


def requests_by_endpoint(exposition: str) -> dict[str, Counter[str]]:
    """cds_requests_total from /metrics: endpoint -> status -> calls (all workers)."""
    calls: dict[str, Counter[str]] = {}
    for endpoint, status, value in re.findall(
            r'^cds_requests_total\{endpoint="([^"]*)",service="[^"]*",status="(\d+)"\} (\S+)$', exposition, re.M):
        calls.setdefault(endpoint, Counter())[status] += int(float(value))
    return calls
