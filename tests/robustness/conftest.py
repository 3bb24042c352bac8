"""Helpers for the robustness tests: a production-mode server (gunicorn, as the container runs it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.auth.support import FIXTURE_FHIR_SERVER, SigningKey, claims, client_entry, mint, new_key, write_clients
from tests.ops.conftest import redis_or_skip
from tests.ops.support import leaks
from tests.servers import ServiceProcess, production_env

PUBLIC_BASE = "https://cds.robustness.test"


@dataclass
class LiveService:
    """A production-mode server and what a trusted EHR and an administrator need to call it."""

    process: ServiceProcess
    key: SigningKey
    admin_token: str

    @property
    def url(self) -> str:
        return self.process.url

    def jwt(self, path: str) -> str:
        """A fresh CDS Hooks JWT (new jti) for the URL path called."""
        return mint(self.key, claims(aud=PUBLIC_BASE + path))


def start_live_service(directory: Path, name: str, **overrides: str) -> LiveService:
    key = new_key("ES384")
    clients = write_clients(directory, client_entry(key, fhir_servers=[FIXTURE_FHIR_SERVER]))
    env = production_env(directory, clients, PUBLIC_BASE, REDIS_URL=redis_or_skip(), CDS_WORKERS="2",
                         **overrides)
    process = ServiceProcess(name, env, directory)
    try:
        process.wait_ready()
    except Exception:
        process.stop()
        raise
    return LiveService(process, key, env["CDS_ADMIN_TOKEN"])


def stop_live_service(service: LiveService) -> str:
    """Stop it (SIGTERM) and check its log: a clean exit, no unhandled error, no secret or patient data."""
    code = service.process.stop()
    log = service.process.stderr()
    assert code == 0, log[-5000:]
    assert '"unhandled_error"' not in log, _unhandled(log)
    found = leaks(log, secrets=[service.admin_token, service.process.env["CDS_PATIENT_KEY_SECRET"]])
    assert not found, f"patient data or secrets in the server's log: {found[:10]}"
    return log


def _unhandled(log: str) -> str:
    lines = [line for line in log.splitlines() if "unhandled_error" in line]
    return f"{len(lines)} unhandled error(s), first: {lines[0][:3000]}"

