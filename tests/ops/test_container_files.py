"""The Dockerfile and .dockerignore: hadolint-clean, and built the way docs/operations.md says."""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SETTINGS
from tests.ops import dockerfile
from tests.ops.support import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def image() -> dockerfile.Dockerfile:
    return dockerfile.parse(DOCKERFILE)


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: install the test lock (scripts/install --test)"
    return found


def test_hadolint_finds_nothing(tmp_path):
    # An empty configuration in an empty directory: no local or user config can hide a rule.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    result = subprocess.run([hadolint(), "--config", str(config), "--failure-threshold", "style",
                             "--format", "tty", "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_hadolint_ignore_is_justified_on_its_line():
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        if "hadolint" in line and "ignore" in line:
            justification = re.sub(r"#\s*hadolint\s+ignore=[\w,]+", "", line).strip(" #-:")
            assert len(justification) > 10, f"Dockerfile:{number}: say why the rule is ignored"


def test_multi_stage_with_a_slim_pinned_python_base(image):
    assert len(image.stages) >= 2
    for stage in image.stages:
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base), stage.base
    assert image.final.all("COPY")[0].startswith("--from=build ")


def test_dependencies_are_installed_from_the_hash_pinned_lock(image):
    build = image.stages[0]
    runs = " ".join(build.all("RUN"))
    assert "--require-hashes -r requirements.lock" in runs
    assert "--no-deps" in runs  # the project itself pulls in nothing unpinned
    assert "pip install" not in " ".join(image.final.all("RUN"))


def test_runs_as_a_fixed_non_root_user(image):
    user = image.final.last("USER")
    assert user and re.fullmatch(r"[1-9]\d{3,}(:[1-9]\d{3,})?", user), user
    assert "useradd" in " ".join(image.final.all("RUN"))


def test_production_mode_one_volume_and_everything_written_inside_it(image):
    env = image.final.env()
    assert env["CDS_MODE"] == "production"
    volumes = [volume for line in image.final.all("VOLUME") for volume in json.loads(line)]
    assert len(volumes) == 1
    volume = volumes[0]
    for name in ("CDS_DATA_DIR", "CDS_RUNTIME_DIR", "TMPDIR"):
        assert env[name] == volume or env[name].startswith(volume + "/"), name
    known = {setting.env for setting in SETTINGS}
    assert {name for name in env if name.startswith("CDS_")} <= known, "ENV sets a CDS_ variable the service ignores"


def test_exposes_the_port_it_listens_on_and_checks_its_health(image):
    env = image.final.env()
    assert image.final.all("EXPOSE") == [env["CDS_PORT"]]
    assert env["CDS_HOST"] == "0.0.0.0"
    healthcheck = image.final.exec_form("HEALTHCHECK")
    assert healthcheck[0] == "python" and "/healthz" in healthcheck[-1]
    assert "--interval=" in image.final.last("HEALTHCHECK")


def test_the_command_is_gunicorn_through_serve(image):
    command = image.final.exec_form("CMD")
    assert command == ["fasciculation-cds", "serve"]
    assert image.final.last("ENTRYPOINT") is None


def copied_sources(image) -> list[str]:
    sources = []
    for stage in image.stages:
        for args in stage.all("COPY"):
            parts = [part for part in args.split() if not part.startswith("--")]
            if args.startswith("--from="):
                continue
            sources.extend(parts[:-1])
    return sources


def dockerignore_excludes(path: str) -> bool:
    """Docker's rules: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes for candidate in candidates) or \
                any(fnmatch.fnmatchcase(part, pattern.removeprefix("**/")) for part in parts if pattern.startswith("**/")):
            excluded = not negate
    return excluded


def test_dockerignore_sends_what_the_build_copies_and_nothing_private(image):
    sources = copied_sources(image)
    assert {"requirements.lock", "pyproject.toml", "README.md", "service", "hooks", "cards"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignore_excludes(source), f".dockerignore leaves out {source}, which the build copies"
    for private in (".git/config", ".venv/bin/python", "tests/conftest.py", "fixtures/README.md",
                    "tests/fhir_server/node_modules/x", "deploy/kubernetes/secret.yaml", "var/store.sqlite3",
                    "service/__pycache__/config.cpython-311.pyc"):
        assert dockerignore_excludes(private), private


def test_the_stop_timeout_given_outlasts_gunicorns_graceful_shutdown():
    from tests.ops.test_deploy_manifests import graceful_timeout
    command = dockerfile.header_command(DOCKERFILE, "run")
    stop_timeout = int(command[command.index("--stop-timeout") + 1])
    assert stop_timeout > graceful_timeout() and "--read-only" in command


def test_a_package_index_and_a_proxy_ca_can_be_given_to_the_build(image):
    build = image.stages[0]
    assert build.last("ARG").startswith("PIP_INDEX_URL=")
    install = next(run for run in build.all("RUN") if "--require-hashes" in run)
    assert install.startswith("--mount=type=secret,id=pip-ca ") and "PIP_CERT=/run/secrets/pip-ca" in install
    header = DOCKERFILE.read_text().split("\nARG ", 1)[0]
    assert "--build-arg PIP_INDEX_URL=" in header and "--secret id=pip-ca," in header
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "PIP_INDEX_URL" in operations and "id=pip-ca" in operations


def test_pip_setuptools_and_wheel_leave_both_the_installation_and_the_base():
    image = dockerfile.parse(DOCKERFILE)
    assert "pip uninstall --yes --quiet setuptools wheel pip" in " ".join(image.stages[0].all("RUN"))
    assert "pip uninstall --yes --quiet pip setuptools wheel" in " ".join(image.final.all("RUN"))
