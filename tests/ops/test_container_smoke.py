"""The container, without a container engine: the image's recipe replayed on this machine.

No container engine runs on CI, so this builds what the Dockerfile builds and runs it the way
the image runs it: the project's wheel installed into a fresh virtual environment from the
hash-pinned lock, that installation made read-only, and the Dockerfile's own CMD (read from the
Dockerfile, with its ENV) started as a non-root user whose only writable directory is a temporary
"volume". Then health, readiness, discovery, every fixture request, the body limit, metrics
from several workers, PHI-free JSON logs, and a clean stop on SIGTERM.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.auth.support import FIXTURE_FHIR_SERVER, bearer, claims, client_entry, mint, new_key, write_clients
from tests.ops import dockerfile
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests, json_lines, leaks

pytestmark = pytest.mark.integration

PUBLIC_BASE = "https://cds.smoke.test"
SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
RUN_AS = "nobody"


@dataclass(frozen=True)
class Installation:
    image: dockerfile.Dockerfile
    app_dir: Path  # the image's /opt/fasciculation-cds: a virtual environment, read-only
    work: Path
    build_seconds: float


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def installation() -> Iterator[Installation]:
    """Build the wheel and install it like the Dockerfile's build stage; once per session."""
    started = time.monotonic()
    image = dockerfile.parse(ROOT / "Dockerfile")
    work = Path(tempfile.mkdtemp(prefix="cds-container-"))
    work.chmod(0o755)  # the unprivileged user must reach the installation inside
    try:
        source = work / "src"
        source.mkdir()
        for stage in image.stages[:-1]:  # exactly the files the build stage copies
            for args in stage.all("COPY"):
                *items, _ = [part for part in args.split() if not part.startswith("--")]
                for item in items:
                    origin = ROOT / item
                    if origin.is_dir():
                        shutil.copytree(origin, source / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                    else:
                        shutil.copy2(origin, source / item)
        venv_path = Path(_image_venv(image))
        app_dir = work / venv_path.name
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
             "-q", "-w", str(work / "dist"), str(source)])
        wheels = list((work / "dist").glob("fasciculation_cds-*.whl"))
        assert len(wheels) == 1, wheels
        run([interpreter_for_everyone(source / "requirements.lock"), "-m", "venv", str(app_dir)])
        pip = [str(app_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        run([*pip, "install", "--require-hashes", "-r", str(source / "requirements.lock")])
        run([*pip, "install", "--no-deps", str(wheels[0])])
        for path in [app_dir, *app_dir.rglob("*")]:  # chmod -R a-w
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
        yield Installation(image, app_dir, work, time.monotonic() - started)
    finally:
        for path in [work, *work.rglob("*")]:
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o700)
        shutil.rmtree(work, ignore_errors=True)


def interpreter_for_everyone(lock: Path) -> str:
    """A Python of the lock's version that an unprivileged user can run (the image has one in /usr/local).

    This interpreter may live under a home directory no other user may enter (pyenv under /root);
    then a system Python of the same minor version stands in, as the image's does.
    """
    version = re.search(r"pip-compile with Python (\d+\.\d+)", lock.read_text()).group(1)
    candidates = [getattr(sys, "_base_executable", sys.executable), sys.executable,
                  f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in candidates:
        if not Path(candidate).is_file():
            continue
        real = Path(os.path.realpath(candidate))
        if os.geteuid() == 0 and not all(p.stat().st_mode & 0o001 for p in [real, *real.parents]):
            continue  # not for everyone: some directory on the way is closed to other users
        reported = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        if reported == version:
            return candidate
    pytest.skip(f"no Python {version} here that an unprivileged user may run")


def _image_venv(image: dockerfile.Dockerfile) -> str:
    """The image's installation directory: where PATH's first entry (.../bin) lives."""
    path = image.final.env()["PATH"].split(":")[0]
    assert path.endswith("/bin"), path
    return path.removesuffix("/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    volume: Path
    stderr_path: Path
    key: object
    secrets: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jwt(self, path: str) -> str:
        token = mint(self.key, claims(aud=PUBLIC_BASE + path))
        self.secrets.append(token)
        return token

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_container(installation: Installation, tmp_path: Path, **overrides: str) -> Server:
    image = installation.image.final
    uid = pwd.getpwnam(RUN_AS).pw_uid if os.geteuid() == 0 else os.geteuid()
    gid = pwd.getpwnam(RUN_AS).pw_gid if os.geteuid() == 0 else os.getegid()
    volume_in_image = json.loads(image.last("VOLUME"))[0]
    volume = installation.work / f"volume-{secrets.token_hex(4)}"
    volume.mkdir(mode=0o700)
    os.chown(volume, uid, gid)
    config = installation.work / f"config-{secrets.token_hex(4)}"
    config.mkdir(mode=0o755)
    key = new_key("ES384")
    clients = write_clients(config, client_entry(key, fhir_servers=[FIXTURE_FHIR_SERVER]))
    clients.chmod(0o644)
    patient_key_secret = secrets.token_hex(32)
    admin_token = secrets.token_hex(32)

    # The image's ENV, with its paths mapped onto this machine, then what an operator passes (-e).
    venv_in_image = _image_venv(installation.image)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    for name, value in image.env({"PATH": env["PATH"]}).items():
        env[name] = (value.replace(volume_in_image, str(volume)).replace(venv_in_image, str(installation.app_dir)))
    port = free_port()
    env.update({
        "CDS_HOST": "127.0.0.1",  # the image's 0.0.0.0 is the container's own network
        "CDS_PORT": str(port),
        "CDS_PUBLIC_BASE_URL": PUBLIC_BASE,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients),
        "CDS_PATIENT_KEY_SECRET": patient_key_secret,
        "CDS_ADMIN_TOKEN": admin_token,
        "CDS_WORKERS": "2",
        "CDS_THREADS": "2",
        "CDS_LOG_LEVEL": "DEBUG",  # everything the service could ever log goes through the PHI scan
        "HOME": "/nonexistent",
        **overrides,
    })
    command = image.exec_form("CMD")
    workdir = image.last("WORKDIR").replace(venv_in_image, str(installation.app_dir))
    drop = (["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--"]
            if os.geteuid() == 0 else [])
    stderr_path = tmp_path / f"server-{port}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([*drop, *command], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                   stdout=stderr, stderr=stderr)
    server = Server(process, port, volume, stderr_path, key, [patient_key_secret, admin_token])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server stopped (exit {process.returncode}):\n{server.stderr()}"
        try:
            if requests.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"no /healthz within 30 s:\n{server.stderr()}")


def stop(server: Server, timeout: float = 30) -> float:
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"not stopped {timeout} s after SIGTERM:\n{server.stderr()}")
    return time.monotonic() - started


@pytest.fixture
def container(installation, tmp_path) -> Iterator[Server]:
    server = start_container(installation, tmp_path)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def test_the_image_recipe_serves_every_fixture_and_stops_cleanly(installation, container):
    server = container
    started = time.monotonic()
    assert installation.build_seconds < 120, f"building the installation took {installation.build_seconds:.0f} s"

    # Health and readiness: knowledge, configuration, the embedded store in the volume.
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert {"knowledge", "config", "database"} <= set(ready.json()["checks"])
    # The image's HEALTHCHECK command works as written.
    healthcheck = installation.image.final.exec_form("HEALTHCHECK")
    env = {"PATH": f"{installation.app_dir}/bin:/usr/bin:/bin", "CDS_PORT": str(server.port)}
    assert subprocess.run(healthcheck, env=env, timeout=30).returncode == 0

    # Production mode: discovery needs a JWT, then lists the service.
    assert requests.get(server.url + "/cds-services", timeout=5).status_code == 401
    discovery = requests.get(server.url + "/cds-services", headers=bearer(server.jwt("/cds-services")), timeout=5)
    assert discovery.status_code == 200
    assert [s["id"] for s in discovery.json()["services"]] == [REVIEW_SERVICE]

    # Every fixture request, each with its own JWT.
    fixtures = fixture_requests()
    for name, request in fixtures:
        response = requests.post(server.url + SERVICE_PATH, json=request,
                                 headers=bearer(server.jwt(SERVICE_PATH)), timeout=10)
        assert response.status_code == 200, (name, response.text)
        assert isinstance(response.json()["cards"], list)
        if name == "02-twitch-with-weakness":  # a red flag does not age with the fixtures' dates
            assert "neurology-referral" in {c["source"]["topic"]["code"] for c in response.json()["cards"]}

    # The analytics page renders from the installed package (templates and migrations are in the wheel).
    page = requests.get(server.url + "/analytics", headers=bearer(server.secrets[1]), timeout=10)
    assert page.status_code == 200 and "<svg" in page.text, page.text[:500]

    # The body limit holds behind gunicorn, with and without a Content-Length.
    big = b'{"hook": "patient-view", "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    too_large = requests.post(server.url + SERVICE_PATH, data=big, timeout=10,
                              headers={"Content-Type": "application/json", **bearer(server.jwt(SERVICE_PATH))})
    assert too_large.status_code == 413 and too_large.json()["resourceType"] == "OperationOutcome"
    chunked = requests.post(server.url + SERVICE_PATH, data=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                            headers={"Content-Type": "application/json", **bearer(server.jwt(SERVICE_PATH))},
                            timeout=10)
    assert chunked.status_code == 413 and chunked.json()["resourceType"] == "OperationOutcome"

    # Metrics add up over both workers.
    files = list((server.volume / "run" / "prometheus").glob("counter_*.db"))
    assert len({re.sub(r"\D", "", f.name) for f in files}) >= 2, "both workers should have counted requests"
    scraped = requests.get(server.url + "/metrics", timeout=5).text
    answered = re.search(rf'^cds_requests_total{{endpoint="service",service="{REVIEW_SERVICE}",status="200"}} '
                         r"(\S+)$", scraped, re.M)
    assert answered and float(answered.group(1)) == len(fixtures), scraped[:3000]
    assert re.search(r'^cds_auth_failures_total{reason="missing_token"} 1\.0$', scraped, re.M)
    assert re.search(r'^cds_requests_total{endpoint="service",service="' + REVIEW_SERVICE + r'",status="413"} 2\.0$',
                     scraped, re.M)
    assert "cds_request_duration_seconds_bucket" in scraped and "cds_cards_total" in scraped

    # Nothing was written outside the volume: the installation is read-only and untouched.
    assert not [p for p in installation.app_dir.rglob("*") if p.stat().st_mode & 0o222 and not p.is_symlink()]
    assert (server.volume / "run").is_dir()

    # SIGTERM: a graceful stop, exit status 0, well inside the Kubernetes grace period.
    assert stop(server) < 25
    assert server.process.returncode == 0, server.stderr()
    stderr = server.stderr()
    lines = list(json_lines(stderr))  # every line is JSON, gunicorn's own included
    assert any(line.get("logger") == "gunicorn.error" and "Shutting down" in line["message"] for line in lines)
    calls = [line for line in lines if line.get("event") == "service_call"]
    assert len(calls) == len(fixtures) + 2
    assert all({"hookInstance", "service", "status", "duration_ms"} <= set(line) for line in calls)
    found = leaks(stderr, secrets=server.secrets)
    assert not found, f"patient data or secrets in the server's log: {found[:10]}"
    print(f"container smoke: install {installation.build_seconds:.1f} s, run {time.monotonic() - started:.1f} s")


def test_a_bad_configuration_stops_the_container_with_one_line(installation, tmp_path):
    image = installation.image.final
    env = {"PATH": f"{installation.app_dir}/bin:/usr/bin:/bin", **{
        name: value for name, value in image.env().items() if name.startswith("CDS_MODE")}}
    result = subprocess.run(image.exec_form("CMD"), env=env, capture_output=True, text=True, timeout=60,
                            cwd=installation.app_dir)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "CDS_TRUSTED_CLIENTS_FILE" in result.stderr or "CDS_PUBLIC_BASE_URL" in result.stderr
