"""Debian's podman, rootful, for the container test: its own containers.conf, storage and cache.

Nothing global is changed. Everything lives under one cache directory (CDS_TEST_CONTAINER_CACHE,
default /var/cache/fasciculation-cds-test), kept between runs so that the base image and the
build's dependency layer are made once:

    containers.conf   the four settings these machines need, and nothing else
    storage.conf      images and containers under storage/, run state under run/
    tmp/              podman's own runtime state and events log (--tmpdir)

No container registry is reachable, so the base image is made offline: `debootstrap --variant=minbase
bookworm` from the Debian mirror apt already uses, plus python3, python3-venv, python-is-python3 and
ca-certificates, imported with `podman import`. Its tag carries a hash of that recipe, so a changed
recipe makes a new base. Two test runs at once (CI and a developer) share the cache safely: podman
locks its storage, and the base image is made under a file lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The machines (and CI) run podman as root, without systemd, on hybrid cgroups, and root may not
# raise resource limits: hence the ulimits, runc, cgroupfs and a file events log.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
TOOLS = ("podman", "debootstrap", "runc")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Files the base image does without: documentation, manuals, translations, apt's package lists.
SLIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/lib/apt/lists",
           "var/cache/apt", "var/cache/debconf/templates.dat-old", "var/log")


class Unavailable(Exception):
    """Podman cannot run here; the message says why (the test skips, or fails under CI)."""


@dataclass(frozen=True)
class Podman:
    cache: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.cache / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.cache / "storage.conf")}

    def command(self, *args: str) -> list[str]:
        return ["podman", "--tmpdir", str(self.cache / "tmp"), *args]

    def run(self, *args: str, timeout: float = 300, check: bool = True, input: bytes | None = None,
            stdin: object = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*args), env=self.env, capture_output=True, timeout=timeout,
                                input=input.decode() if input is not None else None, text=True,
                                stdin=stdin if input is None else None)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} … exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def inspect(self, kind: str, name: str) -> dict:
        return json.loads(self.run(kind, "inspect", name).stdout)[0]

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0


def cache_directory() -> Path:
    return Path(os.environ.get("CDS_TEST_CONTAINER_CACHE") or "/var/cache/fasciculation-cds-test")


def engine() -> Podman:
    """A working rootful podman with the test's own configuration; Unavailable says why not."""
    if os.geteuid() != 0:
        raise Unavailable("the container test runs Debian's podman rootful, as root (scripts/install --test "
                          "installs it when run as root)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed (scripts/install --test installs podman, "
                          "debootstrap and runc with apt-get when run as root)")
    cache = cache_directory()
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    _write_if_changed(cache / "containers.conf", CONTAINERS_CONF)
    _write_if_changed(cache / "storage.conf",
                      f'[storage]\ndriver = "overlay"\ngraphroot = "{cache / "storage"}"\nrunroot = "{cache / "run"}"\n')
    podman = Podman(cache)
    info = podman.run("info", "--format", "json", check=False, timeout=120)
    if info.returncode != 0:
        raise Unavailable(f"podman cannot run here: {' '.join(info.stderr.split())[-500:]}")
    return podman


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


# -- the base image ----------------------------------------------------------------------------------

def debian_mirror(sources: Sequence[Path] = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))) -> str:
    """The Debian archive apt already uses for the main suite (not security, not a third party)."""
    files = [path for source in sources for path in
             ([source] if source.is_file() else sorted(source.glob("*.sources")) + sorted(source.glob("*.list"))
              if source.is_dir() else [])]
    for path in files:
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):  # deb822 .sources
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                uri = fields.get("URIs", "").split()
                if uri and "security" not in uri[0]:
                    return uri[0].rstrip("/")
        for match in re.finditer(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.M):  # one-line .list
            if "security" not in match.group(1):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def base_image_tag(mirror: str) -> str:
    recipe = json.dumps({"suite": SUITE, "variant": "minbase", "packages": BASE_PACKAGES, "slimmed": SLIMMED,
                         "mirror": mirror})
    return f"localhost/fasciculation-cds-test/python:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_base_image(podman: Podman) -> tuple[str, float]:
    """(tag, seconds spent making it: 0 when it was cached)."""
    mirror = debian_mirror()
    tag = base_image_tag(mirror)
    if podman.image_exists(tag):
        return tag, 0.0
    started = time.monotonic()
    with _locked(podman.cache / "base-image.lock"):
        if podman.image_exists(tag):  # another run made it meanwhile
            return tag, time.monotonic() - started
        rootfs = podman.cache / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        try:
            result = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(rootfs),
                 mirror], capture_output=True, text=True, timeout=1200)
            if result.returncode != 0:
                raise AssertionError(f"debootstrap from {mirror} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
            for relative in SLIMMED:
                target = rootfs / relative
                if target.is_dir():
                    for child in target.iterdir():
                        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
                elif target.exists():
                    target.unlink()
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
            podman.run("import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', "-", tag,
                       stdin=tar.stdout, timeout=600)
            assert tar.wait(60) == 0
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    return tag, time.monotonic() - started


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- building the project's image -------------------------------------------------------------------------

def machine_pip_settings() -> tuple[str | None, Path | None]:
    """(package index URL, CA bundle) as pip on this machine has them, for the build's pip to use."""
    def pip_config(name: str) -> str | None:
        result = subprocess.run([sys.executable, "-m", "pip", "config", "get", name], capture_output=True,
                                text=True, timeout=60)
        return result.stdout.strip() or None if result.returncode == 0 else None

    index = os.environ.get("PIP_INDEX_URL") or pip_config("global.index-url")
    if index and not index.startswith(("http://", "https://")):
        index = None  # a local file index is not reachable from inside the build
    cert = os.environ.get("PIP_CERT") or pip_config("global.cert")
    bundle = Path(cert) if cert and Path(cert).is_file() else None
    return index, bundle


def prune_old_build_layers(podman: Podman, older_than_hours: int = 24 * 7) -> None:
    """Keep the cache bounded: untagged build layers older than a week go (a build makes them again)."""
    podman.run("image", "prune", "--force", "--filter", f"until={older_than_hours}h", check=False, timeout=300)
