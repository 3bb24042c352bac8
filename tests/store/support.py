"""Helpers for the store tests: apps on a private database, CDS Hooks bodies, real server processes."""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from werkzeug.serving import make_server

from service import create_app
from service.config import Settings
from service.store.models import CardFeedback, IssuedCard
from tests.conftest import FIXTURE_AS_OF, make_settings

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "fixtures" / "requests"
SERVICE_ID = "fasciculation-cramp-review"
SERVICE_PATH = f"/cds-services/{SERVICE_ID}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"
TEST_SECRET = "test-patient-key-secret-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef-xyz"

OPEN_APPS: list[Flask] = []  # closed after each test by tests/store/conftest.py


def store_settings(data_dir: Path, database_url: str | None = None, **changes: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": str(data_dir), "database_url": database_url,
                              "patient_key_secret": TEST_SECRET}
    values.update(changes)
    return make_settings(**values)


def app_for(settings: Settings, *, clock=lambda: FIXTURE_AS_OF, services=None) -> Flask:
    app = create_app(settings, services=services, clock=clock)
    OPEN_APPS.append(app)
    return app


def close_app(app: Flask) -> None:
    app.extensions["fasciculation_cds"].fhir_client.close()
    app.extensions["fasciculation_cds_card_log"].store.close()


def fixture_request(name: str = "01-benign-calf-twitch", **overrides: Any) -> dict[str, Any]:
    body = json.loads((REQUESTS / f"{name}.json").read_text())
    body["hookInstance"] = str(uuid.uuid4())
    body.update(copy.deepcopy(overrides))
    return body


def with_patient(body: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """The same chart under another patient id (context and every prefetched reference)."""
    old = body["context"]["patientId"]
    text_ = json.dumps(body).replace(f'"{old}"', f'"{patient_id}"').replace(f"Patient/{old}", f"Patient/{patient_id}")
    return json.loads(text_)


def accepted(card_uuid: str, at: str = "2026-11-15T09:05:00Z", suggestions: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"card": card_uuid, "outcome": "accepted", "acceptedSuggestions": [{"id": s} for s in suggestions],
            "outcomeTimestamp": at}


def overridden(card_uuid: str, at: str = "2026-11-15T09:05:00Z", code: str | None = "already-addressed",
               display: str = "Already addressed", comment: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at}
    reason: dict[str, Any] = {}
    if code:
        reason["reason"] = {"system": "urn:test:override", "code": code, "display": display}
    if comment:
        reason["userComment"] = comment
    if reason:
        item["overrideReason"] = reason
    return item


def row_counts(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return (connection.scalar(select(func.count()).select_from(IssuedCard)),
                    connection.scalar(select(func.count()).select_from(CardFeedback)))
    finally:
        engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite+pysqlite:///{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_in_thread(app: Flask) -> Iterator[str]:
    """The app under werkzeug's threaded server on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


class ServerProcess:
    """`fasciculation-cds serve` (gunicorn, 2 workers x 4 threads) as a child process."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {**os.environ, "CDS_MODE": "development", "CDS_LOG_LEVEL": "WARNING", "CDS_WORKERS": "2",
                     "CDS_THREADS": "4", "CDS_PATIENT_KEY_SECRET": TEST_SECRET, **env}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"server exited with {self._process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.base_url + "/cds-services", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server on port {self.port} not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CDS_LOG_LEVEL": "ERROR", **env}, timeout=120)


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_.replace("Z", "+00:00")).astimezone(UTC)


def drop_schema(engine_url: str, schema: str) -> None:
    engine = create_engine(engine_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
