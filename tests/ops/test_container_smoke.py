"""The container, built and run for real with Debian's podman (rootful), as an operator would.

The base image is made offline with debootstrap and cached (tests/ops/podman.py); the project's
Dockerfile is built with `podman build --format docker` (the OCI format would drop HEALTHCHECK),
using this machine's access to the Python package index (index URL and CA bundle as pip has them
here, passed as the Dockerfile's PIP_INDEX_URL build argument and `pip-ca` secret). The container
then runs with the command the Dockerfile's header gives, and is checked from outside: health,
readiness, the HEALTHCHECK command, discovery with and without a JWT, the documented production
smoke test (`fasciculation-cds jwt`), every fixture, the body limit, metrics over both workers, a
read-only root with nothing written outside the volume, uid 10001 for every process, PHI-free JSON
logs and a clean stop on SIGTERM. Where podman cannot run the tests skip, saying why; with CI set
they fail.
"""
from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization

from hooks.registry import ALL_SERVICES
from tests.auth.support import FIXTURE_FHIR_SERVER, bearer, client_entry, issued, mint, new_key
from tests.auth.support import claims as jwt_claims
from tests.ops import dockerfile, podman
from tests.ops.conftest import SUMMARY, require
from tests.ops.support import REVIEW_SERVICE, ROOT, fixture_requests, json_lines, leaks

pytestmark = pytest.mark.integration

SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
UID = 10001
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
FORBIDDEN_IN_RUNTIME = ("pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack")


@dataclass(frozen=True)
class Image:
    tag: str
    base_seconds: float
    build_seconds: float
    size_bytes: int


@pytest.fixture(scope="module")
def engine() -> podman.Podman:
    try:
        return podman.engine()
    except podman.Unavailable as unavailable:
        require(False, f"container test: {unavailable}")


@pytest.fixture(scope="module")
def image(engine) -> Iterator[Image]:
    podman.prune_old_build_layers(engine)
    base, base_seconds = podman.ensure_base_image(engine)
    tag = f"localhost/fasciculation-cds-test/cds:{uuid.uuid4().hex[:12]}"
    index, ca_bundle = podman.machine_pip_settings()
    build = ["build", "--format", "docker", "--pull=never", "--layers", "--build-arg", f"PYTHON_IMAGE={base}"]
    if index:
        build += ["--build-arg", f"PIP_INDEX_URL={index}"]
    if ca_bundle:
        build += ["--secret", f"id=pip-ca,src={ca_bundle}"]
    started = time.monotonic()
    engine.run(*build, "--tag", tag, str(ROOT), timeout=1200)
    built = Image(tag, base_seconds, time.monotonic() - started, engine.inspect("image", tag)["Size"])
    yield built
    engine.run("rmi", "--force", tag, check=False)  # the build layers stay cached for the next run
    base = f"made in {built.base_seconds:.0f} s" if built.base_seconds else "cached"
    SUMMARY.append(f"container test: base image {base}, build {built.build_seconds:.1f} s, "
                   f"image {built.size_bytes / 1e6:.0f} MB")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Container:
    engine: podman.Podman
    name: str
    volume: str
    port: int
    public_base: str
    key: object
    key_file: Path
    clients_file: Path
    secrets: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jwt(self, path: str) -> str:
        token = mint(self.key, jwt_claims(aud=self.public_base + path))
        self.secrets.append(token)
        return token

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine.run("exec", self.name, *command, check=check, timeout=60)

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict:
        return self.engine.inspect("container", self.name)["State"]


def header_run_command(engine: podman.Podman, image: Image, *, name: str, volume: str, port: int,
                       secret: str, config_dir: Path) -> tuple[list[str], str]:
    """The Dockerfile header's `docker run`, with this test's volume, port, secret, files and image."""
    argv = dockerfile.header_command(ROOT / "Dockerfile", "run")
    assert argv[:2] == ["docker", "run"] and argv[-1] == "fasciculation-cds", argv
    options, public_base = [], None
    for index, arg in enumerate(argv[2:-1], start=2):
        previous = argv[index - 1]
        if previous == "-v" and arg.startswith("cds-data:"):
            arg = volume + arg.removeprefix("cds-data")
        elif previous == "-v" and arg.startswith("$PWD/"):
            arg = str(config_dir) + arg.removeprefix("$PWD")
        elif previous == "-p":
            assert arg == "8080:8080", arg
            arg = f"127.0.0.1:{port}:8080"  # every server binds to 127.0.0.1 here
        elif previous == "-e" and arg == "CDS_PATIENT_KEY_SECRET=...":
            arg = f"CDS_PATIENT_KEY_SECRET={secret}"
        elif previous == "-e" and arg.startswith("CDS_PUBLIC_BASE_URL="):
            public_base = arg.partition("=")[2]
        options.append(arg)
    assert public_base and "--read-only" in options and "--stop-timeout" in options, options
    # podman's --read-only mounts tmpfs on /tmp, /var/tmp and /run unless told not to; docker does not.
    extra = ["--detach", "--name", name, "--read-only-tmpfs=false", "-e", "CDS_WORKERS=2", "-e", "CDS_THREADS=2",
             # everything the service could ever log goes through the PHI scan
             "-e", "CDS_LOG_LEVEL=DEBUG"]
    return engine.command("run", *extra, *options, image.tag), public_base


@pytest.fixture
def container(engine, image, tmp_path) -> Iterator[Container]:
    name = f"cds-test-{uuid.uuid4().hex[:10]}"
    volume = f"{name}-data"
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    tmp_path.chmod(0o755)  # uid 10001 in the container reads the bind-mounted file
    key = new_key("ES384", kid="smoke-test-1")
    clients_file = config_dir / "trusted-clients.yaml"
    client = client_entry(key, name="smoke-test", fhir_servers=[FIXTURE_FHIR_SERVER])  # the fixtures' fhirServer
    clients_file.write_text(yaml.safe_dump({"clients": [client]}))
    clients_file.chmod(0o644)
    key_file = tmp_path / "smoke-test.pem"
    key_file.write_bytes(key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    patient_key_secret, admin_token = secrets.token_hex(32), secrets.token_hex(32)
    port = free_port()
    command, public_base = header_run_command(engine, image, name=name, volume=volume, port=port,
                                              secret=patient_key_secret, config_dir=config_dir)
    command[-1:-1] = ["-e", f"CDS_ADMIN_TOKEN={admin_token}"]
    result = subprocess.run(command, env=engine.env, capture_output=True, text=True, timeout=120)
    box = Container(engine, name, volume, port, public_base, key, key_file, clients_file,
                    [patient_key_secret, admin_token])
    try:
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 60
        while True:
            if not box.state()["Running"]:
                pytest.fail(f"the container stopped (exit {box.state()['ExitCode']}):\n{box.logs()[-5000:]}")
            try:
                if requests.get(box.url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz within 60 s:\n{box.logs()[-5000:]}")
            time.sleep(0.2)
        yield box
    finally:
        engine.run("rm", "--force", "--time", "0", name, check=False)
        engine.run("volume", "rm", "--force", volume, check=False)


def test_the_image_runs_as_uid_10001_keeps_its_healthcheck_and_ships_no_installer(engine, image):
    inspected = engine.inspect("image", image.tag)
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{UID}"
    final = dockerfile.parse(ROOT / "Dockerfile").final
    assert inspected["Healthcheck"]["Test"] == ["CMD", *final.exec_form("HEALTHCHECK")]  # kept: --format docker
    assert config["StopSignal"] == "SIGTERM" and "8080/tcp" in config["ExposedPorts"]
    assert list(config["Volumes"]) == ["/var/lib/fasciculation-cds"]
    assert "CDS_MODE=production" in config["Env"]
    # pip, setuptools and wheel are build tools: neither the service's Python nor the system's has them.
    probe = ("import importlib.util, shutil, sys; print(sys.executable, "
             f"[m for m in {FORBIDDEN_IN_RUNTIME!r} if importlib.util.find_spec(m)], "
             "[t for t in ('pip', 'pip3', 'wheel', 'easy_install') if shutil.which(t)])")
    for python in ("python", "/usr/bin/python3"):
        found = engine.run("run", "--rm", "--no-healthcheck", "--read-only", image.tag, python, "-c", probe).stdout
        assert found.strip().endswith("[] []"), found
    assert image.size_bytes < 400e6, f"the image is {image.size_bytes / 1e6:.0f} MB"


def test_the_container_serves_as_the_dockerfile_header_runs_it_and_stops_cleanly(engine, container):
    box = container
    started = time.monotonic()
    # Health and readiness: knowledge, configuration, the embedded store in the volume.
    assert requests.get(box.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(box.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and {"knowledge", "config", "database"} <= set(ready.json()["checks"]), ready.text
    # The image's HEALTHCHECK, run by podman (no systemd schedules it here).
    assert engine.run("healthcheck", "run", box.name, check=False).returncode == 0
    assert box.state()["Health"]["Status"] == "healthy"

    # Production mode: discovery needs a JWT; the documented smoke test mints one with the CLI.
    refused = requests.get(box.url + "/cds-services", timeout=5)
    assert refused.status_code == 401 and refused.json()["resourceType"] == "OperationOutcome"
    discovery = requests.get(box.url + "/cds-services", headers=bearer(smoke_test_jwt(box, "/cds-services")), timeout=5)
    assert discovery.status_code == 200 and [s["id"] for s in discovery.json()["services"]] == [
        service.id for service in ALL_SERVICES]  # the patient-view review first, then order-select, order-sign

    # Every fixture request, each with its own JWT; a red flag does not age with the fixtures' dates.
    fixtures = fixture_requests()
    for fixture, body in fixtures:
        token = smoke_test_jwt(box, SERVICE_PATH) if fixture == "02-twitch-with-weakness" else box.jwt(SERVICE_PATH)
        response = requests.post(box.url + SERVICE_PATH, json=body, headers=bearer(token), timeout=10)
        assert response.status_code == 200, (fixture, response.text)
        if fixture == "02-twitch-with-weakness":
            assert "neurology-referral" in {c["source"]["topic"]["code"] for c in response.json()["cards"]}
            card = response.json()["cards"][0]
    feedback = requests.post(box.url + SERVICE_PATH + "/feedback", headers=bearer(box.jwt(SERVICE_PATH + "/feedback")),
                             json={"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                                 "outcomeTimestamp": "2026-12-05T09:00:00Z"}]}, timeout=10)
    assert feedback.status_code == 200 and feedback.json() == {}, feedback.text
    page = requests.get(box.url + "/analytics", headers=bearer(box.secrets[1]), timeout=10)
    assert page.status_code == 200 and "<svg" in page.text, page.text[:500]

    # The body limit holds behind gunicorn and podman's port, with and without a Content-Length.
    big = b'{"hook": "patient-view", "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    for data in (big, iter([big[i:i + 65536] for i in range(0, len(big), 65536)])):
        too_large = requests.post(box.url + SERVICE_PATH, data=data, timeout=20, headers={
            "Content-Type": "application/json", **bearer(box.jwt(SERVICE_PATH))})
        assert too_large.status_code == 413 and too_large.json()["resourceType"] == "OperationOutcome"

    # Metrics add up over both workers, whose files are in the volume.
    files = box.exec("ls", "/var/lib/fasciculation-cds/run/prometheus").stdout.split()
    assert len({re.sub(r"\D", "", name) for name in files if name.startswith("counter_")}) >= 2, files
    scraped = requests.get(box.url + "/metrics", timeout=5).text
    answered = re.search(rf'^cds_requests_total{{endpoint="service",service="{REVIEW_SERVICE}",status="200"}} (\S+)$',
                         scraped, re.M)
    assert answered and float(answered.group(1)) == len(fixtures), scraped[:3000]
    assert re.search(r'^cds_auth_failures_total{reason="missing_token"} 1\.0$', scraped, re.M)

    # Read-only root: nothing is writable but the volume, and nothing was written outside it.
    inspected = engine.inspect("container", box.name)
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True and inspected["Config"]["StopTimeout"] == 30
    attempts = box.exec("sh", "-c", "for d in / /opt/fasciculation-cds /etc /tmp /var/tmp /run; do "
                                    "touch $d/.written 2>&1; done; touch /var/lib/fasciculation-cds/.written && echo ok")
    assert attempts.stdout.count("Read-only file system") == 6 and attempts.stdout.endswith("ok\n"), attempts.stdout
    changed = {line.split()[-1] for line in engine.run("diff", box.name).stdout.splitlines() if line.strip()}
    assert changed <= {"/etc", "/etc/fasciculation-cds", "/etc/fasciculation-cds/trusted-clients.yaml"}, changed
    # Every process is uid 10001, and the store in the volume belongs to it.
    uids = box.exec("sh", "-c", "grep -h '^Uid:' /proc/[0-9]*/status").stdout.split("\n")
    assert {tuple(line.split()[1:]) for line in uids if line} == {(str(UID),) * 4}, uids
    listing = box.exec("stat", "-c", "%u %a %n", "/var/lib/fasciculation-cds",
                       "/var/lib/fasciculation-cds/fasciculation-cds.sqlite3").stdout.splitlines()
    assert [line.split()[:2] for line in listing] == [[str(UID), "700"], [str(UID), "644"]], listing

    # SIGTERM (podman stop, within --stop-timeout 30): a graceful stop with exit status 0.
    stopping = time.monotonic()
    engine.run("stop", box.name, timeout=60, check=False)
    stop_seconds = time.monotonic() - stopping
    state = box.state()
    assert not state["Running"] and state["ExitCode"] == 0 and stop_seconds < 25, (state, stop_seconds)
    log = box.logs()
    lines = list(json_lines(log))  # every line is JSON, gunicorn's own included
    assert any(line.get("logger") == "gunicorn.error" and "Handling signal: term" in line["message"] for line in lines)
    assert any(line.get("logger") == "gunicorn.error" and "Shutting down: Master" in line["message"] for line in lines)
    calls = [line for line in lines if line.get("event") == "service_call"]
    assert len(calls) == len(fixtures) + 2 and all({"hookInstance", "service", "status", "duration_ms"} <= set(line)
                                                   for line in calls)
    found = leaks(log, secrets=box.secrets)
    assert not found, f"patient data or secrets in the container's log: {found[:10]}"
    SUMMARY.append(f"container test: served every fixture and stopped in {time.monotonic() - started:.1f} s "
                   f"(SIGTERM to exit 0: {stop_seconds:.1f} s)")


def smoke_test_jwt(box: Container, path: str) -> str:
    """The production smoke test of docs/operations.md: a token from `fasciculation-cds jwt`."""
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "jwt", "--key", str(box.key_file), "--kid", box.key.kid,
         "--iss", client_entry()["iss"], "--aud", box.public_base + path, "--clients", str(box.clients_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    token = issued(result.stdout.strip())
    box.secrets.append(token)
    return token


def compose_options(service: dict, volume_prefix: str) -> list[str]:
    """The podman run options for a compose service's security settings and mounts (named volumes renamed)."""
    options = ["--read-only"] if service.get("read_only") else []
    options += ["--user", service["user"]]
    options += [f"--cap-drop={cap}" for cap in service.get("cap_drop", [])]
    options += [f"--security-opt={opt}" for opt in service.get("security_opt", [])]
    options += [f"--tmpfs={mount}" for mount in service.get("tmpfs", [])]
    for mount in service.get("volumes", []):
        source, _, rest = mount.partition(":")
        source = str((COMPOSE.parent / source).resolve()) if source.startswith(".") else volume_prefix + source
        options += ["--volume", f"{source}:{rest}"]
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    return [*options, "--stop-timeout", grace.group(1)]


def test_migrations_run_with_only_database_url_under_the_compose_settings(engine, image):
    """compose's settings as podman runs them: the `migrate` command, then `db status` with a replica's
    options and mounts (its own volume, the trusted-clients folder), and nothing configured but the database."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prefix = f"cds-test-{uuid.uuid4().hex[:10]}-"
    target = "/var/lib/fasciculation-cds"
    database = ["--env", f"DATABASE_URL=sqlite:///{target}/migrated.sqlite3"]
    replica = compose_options(services["cds-1"], prefix)
    assert f"{prefix}cds-1-run:{target}" in replica  # the replica's own volume, shared here with the migration
    migrate = [*compose_options(services["migrate"], prefix), "--volume", f"{prefix}cds-1-run:{target}"]
    try:
        upgraded = engine.run("run", "--rm", "--no-healthcheck", "--read-only-tmpfs=false", *migrate, *database,
                              image.tag, *services["migrate"]["command"], check=False)
        assert upgraded.returncode == 0 and "upgraded empty -> " in upgraded.stdout, upgraded.stderr
        status = engine.run("run", "--rm", "--no-healthcheck", "--read-only-tmpfs=false", *replica, *database,
                            image.tag, "fasciculation-cds", "db", "status", check=False)
        assert status.returncode == 0 and "(current)" in status.stdout, status.stderr
    finally:
        volumes = engine.run("volume", "ls", "--quiet", "--filter", f"name={prefix}", check=False).stdout.split()
        for volume in volumes:
            engine.run("volume", "rm", "--force", volume, check=False)


def test_a_bad_configuration_stops_the_container_naming_every_problem_on_one_line(engine, image):
    result = engine.run("run", "--rm", "--no-healthcheck", "--read-only", image.tag, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("fasciculation-cds: 3 configuration problems: ")
    for name in ("CDS_TRUSTED_CLIENTS_FILE", "CDS_PUBLIC_BASE_URL", "CDS_PATIENT_KEY_SECRET"):
        assert f"{name}: required when CDS_MODE=production" in result.stderr
