"""Two replicas, one PostgreSQL and one Redis: what one replica learns, the other knows.

Two `fasciculation-cds serve` processes (gunicorn, production mode) on different ports share a
fresh PostgreSQL schema (DATABASE_URL) and Redis (REDIS_URL), as two pods behind one proxy do.
Feedback written through the first is reported by the second's analytics, and a JWT that the
first accepted is refused as a replay by the second.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.auth.support import FIXTURE_FHIR_SERVER, bearer, claims, client_entry, mint, write_clients
from tests.ops.conftest import require
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests, leaks
from tests.servers import ServiceProcess, command, find_postgres, postgres_schema

pytestmark = pytest.mark.integration

PUBLIC_BASE = "https://cds.replicas.test"
SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL, dropped afterwards (CI has one; elsewhere skip)."""
    server, problems = find_postgres()
    require(server is not None, "PostgreSQL is not reachable (" + "; ".join(problems) + ")")
    with postgres_schema(server, "cds_replicas") as url:
        yield url


def test_two_replicas_share_feedback_and_refuse_a_replayed_jwt(tmp_path, postgres_url, redis_url, es384):
    admin_token = secrets.token_hex(32)
    patient_key_secret = secrets.token_hex(32)
    clients_file = write_clients(tmp_path, client_entry(es384, fhir_servers=[FIXTURE_FHIR_SERVER]))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CDS_MODE": "production",
        "CDS_PUBLIC_BASE_URL": PUBLIC_BASE,  # both sit behind the same proxy URL
        "CDS_TRUSTED_CLIENTS_FILE": str(clients_file),
        "CDS_PATIENT_KEY_SECRET": patient_key_secret,
        "CDS_ADMIN_TOKEN": admin_token,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "CDS_WORKERS": "1",
        "CDS_THREADS": "2",
    }
    migrate = subprocess.run(command("db", "upgrade"), env={**env, "CDS_DATA_DIR": str(tmp_path / "migrate")},
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    first, second = ServiceProcess("first", env, tmp_path), ServiceProcess("second", env, tmp_path)
    try:
        first.wait_ready()
        second.wait_ready()
        assert {"database", "redis"} <= set(requests.get(second.url + "/readyz", timeout=5).json()["checks"])

        # A call through the first replica, signed with a JWT.
        request = dict(fixture_requests())["02-twitch-with-weakness"]
        token = mint(es384, claims(aud=PUBLIC_BASE + SERVICE_PATH))
        answered = requests.post(first.url + SERVICE_PATH, json=request, headers=bearer(token), timeout=10)
        assert answered.status_code == 200, answered.text
        cards = answered.json()["cards"]
        referral = next(card for card in cards if card["source"]["topic"]["code"] == "neurology-referral")

        # The same JWT replayed to the second replica: refused, because the jti is in the shared Redis.
        replayed = requests.post(second.url + SERVICE_PATH, json=request, headers=bearer(token), timeout=10)
        assert replayed.status_code == 401
        assert replayed.json()["resourceType"] == "OperationOutcome"
        assert 'cds_auth_failures_total{reason="replay"} 1.0' in requests.get(second.url + "/metrics", timeout=5).text

        # Feedback through the first replica ...
        feedback = {"feedback": [{
            "card": referral["uuid"], "outcome": "accepted",
            "acceptedSuggestions": [{"id": s["uuid"]} for s in referral.get("suggestions", [])[:1]],
            "outcomeTimestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}]}
        stored = requests.post(first.url + FEEDBACK_PATH, json=feedback, timeout=10,
                               headers=bearer(mint(es384, claims(aud=PUBLIC_BASE + FEEDBACK_PATH))))
        assert stored.status_code == 200, stored.text

        # ... is reported by the second.
        report = requests.get(second.url + "/analytics.json", headers=bearer(admin_token), timeout=10)
        assert report.status_code == 200, report.text
        kinds = {(kind["service"], kind["topic"]): kind for kind in report.json()["kinds"]}
        reported = kinds[(REVIEW_SERVICE, "neurology-referral")]
        assert reported["shown"] == 1 and reported["accepted"] == 1 and reported["overridden"] == 0
        assert report.json()["totals"]["shown"] == len(cards)
        assert 'cds_feedback_total{outcome="accepted"} 1.0' in requests.get(first.url + "/metrics", timeout=5).text
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0], first.stderr() + second.stderr()
    logs = first.stderr() + second.stderr()
    assert not leaks(logs, secrets=[token, admin_token, patient_key_secret])
