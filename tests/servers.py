"""Production-like service processes for the integration tests and `bench/soak`.

`ServiceProcess` runs `fasciculation-cds serve` (gunicorn with service/gunicorn_conf.py, the
container's CMD) with the environment it is given; `production_env` builds the production-mode
environment around a trusted client whose key the caller generated; `postgres_schema` gives a fresh
schema on the machine's PostgreSQL. Also the resident memory of a server and its workers (/proc).

No pytest here: `bench/soak` uses it too. A failure to start raises ServiceFailed.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_CANDIDATES = (
    os.environ.get("CDS_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


class ServiceFailed(RuntimeError):
    """The server stopped or did not become ready; the message carries its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float,
                     also: Callable[[], bool] = lambda: True) -> str | None:
    """Poll `url`/readyz until it answers 200 and `also()` holds: None when ready, else what went wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"stopped (exit {process.returncode})"
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200 and also():
                return None
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    return f"was not ready in {timeout:.0f} s"


def command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("fasciculation-cds")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "service.cli", *args]


def production_env(directory: Path, clients_file: Path, public_base: str, **overrides: str) -> dict[str, str]:
    """CDS_MODE=production with this trusted-clients file, fresh secrets, 1 worker; overrides win."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "CDS_MODE": "production",
        "CDS_PUBLIC_BASE_URL": public_base,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients_file),
        "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32),
        "CDS_ADMIN_TOKEN": secrets.token_hex(32),
        "CDS_WORKERS": "1",
        "CDS_THREADS": "2",
        **overrides,
    }


class ServiceProcess:
    """`fasciculation-cds serve` on a free port of 127.0.0.1, its log in directory/name/stderr.log."""

    def __init__(self, name: str, env: dict[str, str], directory: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = directory / name
        home.mkdir()
        self.stderr_path = home / "stderr.log"
        env = {"CDS_DATA_DIR": str(home / "data"), "CDS_RUNTIME_DIR": str(home / "run"), **env,
               "CDS_PORT": str(self.port)}
        self.env = env
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command("serve"), env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=stderr, stderr=stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 30) -> None:
        problem = wait_until_ready(self.url, self.process, timeout)
        if problem:
            raise ServiceFailed(f"the server {problem}:\n{self.stderr()}")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return children_of(self.pid)

    def rss_bytes(self) -> dict[int, int]:
        """Resident memory of the gunicorn master and of each worker, by pid."""
        return {pid: rss_of(pid) for pid in [self.pid, *self.worker_pids()]}

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def children_of(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sorted({int(child) for task in tasks for child in (task / "children").read_text().split()})
    except OSError:
        return []


def rss_of(pid: int) -> int:
    """VmRSS of a process in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- PostgreSQL -----------------------------------------------------------------------------------

def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def find_postgres() -> tuple[str | None, list[str]]:
    """The first reachable candidate server URL, and why the others were not."""
    problems = []
    for url in filter(None, POSTGRES_CANDIDATES):
        engine = create_engine(sqlalchemy_url(url), connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url, problems
        except OperationalError as error:
            problems.append(f"{engine.url.render_as_string(hide_password=True)}: {type(error.orig).__name__}")
        finally:
            engine.dispose()
    return None, problems


@contextmanager
def postgres_schema(server: str, prefix: str) -> Iterator[str]:
    """A fresh schema on `server`, dropped afterwards; yields a DATABASE_URL that uses it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
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


def migrate(env: dict[str, str], directory: Path) -> None:
    """`fasciculation-cds db upgrade` against env's DATABASE_URL."""
    result = subprocess.run(command("db", "upgrade"), env={**env, "CDS_DATA_DIR": str(directory / "migrate")},
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ServiceFailed(f"db upgrade failed:\n{result.stdout}{result.stderr}")
