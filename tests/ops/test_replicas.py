"""Two replicas, one PostgreSQL and one Redis: what one replica learns, the other knows.

Two `fasciculation-cds serve` processes (gunicorn, production mode) on different ports share a
fresh PostgreSQL schema (DATABASE_URL) and Redis (REDIS_URL), as two pods behind one proxy do.
Feedback written through the first is reported by the second's analytics, and a JWT that the
first accepted is refused as a replay by the second.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.auth.support import bearer, claims, client_entry, mint, write_clients
from tests.ops.conftest import require
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests, leaks

pytestmark = pytest.mark.integration

PUBLIC_BASE = "https://cds.replicas.test"
SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"
POSTGRES_CANDIDATES = (
    os.environ.get("CDS_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL, dropped afterwards (CI has one; elsewhere skip)."""
    problems = []
    server = None
    for url in filter(None, POSTGRES_CANDIDATES):
        engine = create_engine(sqlalchemy_url(url), connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            server = url
            break
        except OperationalError as error:
            problems.append(f"{engine.url.render_as_string(hide_password=True)}: {type(error.orig).__name__}")
        finally:
            engine.dispose()
    require(server is not None, "PostgreSQL is not reachable (" + "; ".join(problems) + ")")
    schema = f"cds_replicas_{uuid.uuid4().hex[:12]}"
    engine = create_engine(sqlalchemy_url(server))
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("fasciculation-cds")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "service.cli", *args]


class Replica:
    def __init__(self, name: str, env: dict[str, str], tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory = tmp_path / name
        directory.mkdir()
        self.stderr_path = directory / "stderr.log"
        env = {**env, "CDS_PORT": str(self.port), "CDS_DATA_DIR": str(directory / "data"),
               "CDS_RUNTIME_DIR": str(directory / "run")}
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command("serve"), env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=stderr, stderr=stderr)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"replica stopped:\n{self.stderr()}"
            try:
                response = requests.get(self.url + "/readyz", timeout=2)
                if response.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        pytest.fail(f"replica not ready in 30 s:\n{self.stderr()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def test_two_replicas_share_feedback_and_refuse_a_replayed_jwt(tmp_path, postgres_url, redis_url, es384):
    admin_token = secrets.token_hex(32)
    patient_key_secret = secrets.token_hex(32)
    clients_file = write_clients(tmp_path, client_entry(es384))
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

    first, second = Replica("first", env, tmp_path), Replica("second", env, tmp_path)
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
