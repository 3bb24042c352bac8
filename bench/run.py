"""The benchmark: the service against two trivial Flask ceilings, same gunicorn config, same load.

    .venv/bin/python -m bench               # full run (~15 minutes on 2 cores), results in bench/results/
    .venv/bin/python -m bench --quick       # seconds per run, for CI: correctness, not numbers

One command: generates each scenario's set of distinct patients (bench/generate.py: 200 charts of one
size class each), makes an RS384 signing key and a trusted-clients file, starts the FHIR test server
(tests/fhir_server, Node.js) for scenario (d) and loads its patients, then starts three apps under
gunicorn with `service/gunicorn_conf.py` and the production environment: the ceiling (parses the body,
answers no card), the no-parse ceiling (reads the body only) and the service. It checks every chart's
answer, then for each scenario and concurrency drives the three apps back to back with wrk
(bench/post.lua: a different chart and patient id with every call, every service call with its own
pre-signed JWT) after a warm-up. Finally it measures the CPU of a call in process (bench/profile.py).
Prints a table and writes JSON to bench/results/ (bench/report.py); `python -m bench.sizing` turns the
latest full run into the sizing table of docs/operations.md.

Nothing here asserts a timing; targets are reported as met or missed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import generate
from bench.report import LoadResult, build_report, print_table, write_report
from bench.tokens import (PUBLIC_BASE_URL, TOKEN_LIFETIME_SECONDS, SigningKey, TokenMinter, audience,
                          write_trusted_clients)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
LUA_SCRIPT = BENCH_DIR / "post.lua"
RESULTS_DIR = BENCH_DIR / "results"
SERVICE_PATH = f"/cds-services/{generate.SERVICE_ID}"
FHIR_DELAY_MS = 100
# The FHIR test server (Medplum's in-memory repository) scans every resource of a type on each search:
# with all 200 patients of (d) on one server, a search took 92 ms instead of 4 ms, and (d) measured the
# test server. So the patients are spread over servers of at most this many each (~13 ms a search).
FHIR_PATIENTS_PER_SERVER = 25
WRK_TIMEOUT = "10s"
# The apps measured back to back, in this order, and the WSGI app each ceiling runs.
APPS = ("ceiling", "ceiling-noparse", "service")
CEILING_APPS = {"ceiling": "bench.ceiling_app:app", "ceiling-noparse": "bench.ceiling_app:app_noparse"}
CHECK_STAMP_BASE = 0xFFF << 36  # stamps of the answer checks: never those of a load run (RUN < 0xfff)
QUICK_CHARTS = 25


@dataclass
class Options:
    quick: bool
    scenarios: tuple[str, ...]
    connections: tuple[int, ...]
    warmup_s: int
    duration_s: int
    charts: int
    profile_calls: int
    results_dir: Path
    database_url: str | None
    redis_url: str | None
    es384: bool
    keep_workdir: bool
    label: str
    as_of: str


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs at 1 and 8 connections (CI check)")
    parser.add_argument("--scenarios", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    parser.add_argument("--connections", help="comma-separated (default 1,8,32; quick 1,8)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per run (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds measured per run (default 10; quick 1)")
    parser.add_argument("--charts", type=int, help=f"patients per scenario (default {generate.DEFAULT_CHARTS}; "
                                                   f"quick {QUICK_CHARTS})")
    parser.add_argument("--profile-calls", type=int, help="in-process calls per scenario (default 300; quick 40)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--database-url", help="DATABASE_URL for the card log (default: SQLite in a temp dir)")
    parser.add_argument("--redis-url", help="REDIS_URL for the jti replay cache (default: in memory per worker)")
    parser.add_argument("--no-es384", action="store_true", help="skip the secondary ES384 measurement")
    parser.add_argument("--keep-workdir", action="store_true", help="keep request files, tokens and logs")
    parser.add_argument("--label", default="", help="added to the result file name, e.g. 'before'")
    parser.add_argument("--as-of", default=datetime.now(UTC).date().isoformat(),
                        help="date the synthetic charts are current on (default today, UTC)")
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    unknown = set(scenarios) - set(generate.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    charts = args.charts or (QUICK_CHARTS if args.quick else generate.DEFAULT_CHARTS)
    if charts < 2:
        parser.error("--charts must be at least 2")
    default_connections = "1,8" if args.quick else "1,8,32"
    return Options(
        quick=args.quick, scenarios=scenarios,
        connections=tuple(int(c) for c in (args.connections or default_connections).split(",")),
        warmup_s=args.warmup if args.warmup is not None else (1 if args.quick else 3),
        duration_s=args.duration if args.duration is not None else (1 if args.quick else 10),
        charts=charts, profile_calls=args.profile_calls or (40 if args.quick else 300),
        results_dir=args.results_dir, database_url=args.database_url, redis_url=args.redis_url,
        es384=not args.no_es384, keep_workdir=args.keep_workdir, label=args.label, as_of=args.as_of,
    )


# -- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A gunicorn master in its own process group, stopped (group and all) by stop()."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.port = int(env["CDS_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=self._log, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        from tests.servers import wait_until_ready  # the test suite's server helpers, shared
        problem = wait_until_ready(self.url, self.process, timeout, also=lambda: len(self.workers()) >= 1)
        if problem:
            raise RuntimeError(f"{self.name} {problem}:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def worker_memory(self) -> list[dict[str, Any]]:
        return [{"pid": pid, **memory_of(pid)} for pid in self.workers()]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.process.returncode


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    except OSError:
        pass
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def memory_of(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                values[name.lower() + "_mb"] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return values


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's wrk with apt-get", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
            subprocess.run(install, capture_output=True, timeout=600, check=True)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    raise SystemExit("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu), then run again")


def _times(pid: int) -> tuple[int, int, int, int]:
    """utime, stime, cutime, cstime of a process (clock ticks; cutime/cstime: its reaped children),
    zeros when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        return utime, stime, cutime, cstime
    except (OSError, IndexError, ValueError):
        return 0, 0, 0, 0


def cpu_ticks(pid: int) -> int:
    return sum(_times(pid)[:2])


def reaped_ticks(pid: int) -> int:
    return sum(_times(pid)[2:])


def machine_busy_ticks() -> int:
    """CPU time spent by everything on the machine (clock ticks, all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def own_ticks() -> int:
    """CPU time of this process and its descendants (servers, the FHIR server, token signers, wrk),
    those still running and those already reaped (a recycled gunicorn worker's time is in its master's
    cutime/cstime, wrk's in this process's)."""
    total, stack, seen = 0, [os.getpid()], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if not Path(f"/proc/{pid}").exists():
            continue
        total += sum(_times(pid))
        stack.extend(children_of(pid))
    return total


@contextmanager
def background_load() -> Iterator[dict[str, float]]:
    """Share of the machine's CPUs used by other processes (not the benchmark's) while the block ran:
    on a shared machine, the figure to read next to each measurement."""
    result: dict[str, float] = {}
    hz = os.sysconf("SC_CLK_TCK")
    busy, own = machine_busy_ticks(), own_ticks()
    started = time.monotonic()
    yield result
    elapsed = time.monotonic() - started
    other = (machine_busy_ticks() - busy) - (own_ticks() - own)
    result["background_cpu_pct"] = round(min(100.0, max(0.0, other / (elapsed * hz * (os.cpu_count() or 1)) * 100)), 1)


# -- load ------------------------------------------------------------------------------------------

class Load:
    def __init__(self, wrk: str, workdir: Path):
        self.wrk = wrk
        self.workdir = workdir
        self._serial = 0  # the RUN of bench/post.lua: every run's stamps are its own

    def run(self, url: str, manifest: Path, connections: int, seconds: int, *, tokens: list[int] | None,
            minter: TokenMinter | None, max_requests: int = 0, server: Server | None = None) -> dict[str, Any]:
        """One wrk run, one thread; tokens: per-thread token counts (None: no Authorization header)."""
        self._serial += 1
        if self._serial >= 0xFFF:
            raise RuntimeError("more wrk runs than bench/post.lua has stamps for")
        result_file = self.workdir / f"wrk-{self._serial}.json"
        prefix = "-"
        if tokens is not None:
            assert minter is not None
            token_prefix = self.workdir / f"tokens-{self._serial}"
            list(minter.write_files(token_prefix, tokens))
            prefix = str(token_prefix)
        command = [self.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
                   "-s", str(LUA_SCRIPT), url, "--", SERVICE_PATH, str(manifest), prefix, str(result_file),
                   str(self._serial), str(max_requests)]
        before = {pid: cpu_ticks(pid) for pid in server.workers()} if server else {}
        reaped_before = reaped_ticks(server.process.pid) if server else 0
        with background_load() as load:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        after = {pid: cpu_ticks(pid) for pid in server.workers()} if server else {}
        if completed.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}\n{completed.stderr}")
        outcome = json.loads(result_file.read_text())
        if server:
            # gunicorn hands each persistent connection to whichever worker accepts it first: how the
            # work was split between the workers explains much of the spread at 8 and 32 connections.
            spent = [max(0, after[pid] - before.get(pid, 0)) for pid in after]
            # A worker recycled during the run (max_requests) took its CPU time to the master's
            # cutime/cstime when it was reaped: all of it, so what it had spent before the run is taken off.
            recycled = set(before) - set(after)
            reaped = reaped_ticks(server.process.pid) - reaped_before - sum(before[pid] for pid in recycled)
            total = sum(spent) + max(0, reaped)
            load["workers_recycled"] = len(recycled)
            load["worker_cpu_split"] = [round(t / sum(spent), 2) if sum(spent) else 0.0 for t in spent]
            # The servers' own CPU per answered request: the one figure free of the load generator
            # and of the machine's other tenants, so the ratio of the service's to the ceiling's is
            # the steadiest comparison of the two.
            hz = os.sysconf("SC_CLK_TCK")
            load["server_cpu_ms_per_request"] = (round(total / hz * 1000 / outcome["requests"], 3)
                                                 if outcome.get("requests") else None)
        for path in self.workdir.glob(f"tokens-{self._serial}.*"):
            path.unlink()  # spent or not, never handed out again
        return {**outcome, **load}


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class Context:
    options: Options
    workdir: Path
    load: Load
    chart_sets: dict[str, generate.ChartSet]
    env: dict[str, str]
    minters: dict[str, TokenMinter] = field(default_factory=dict)
    results: list[LoadResult] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def server_env(workdir: Path, clients_file: Path, options: Options) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "CDS_MODE": "production",
        "CDS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients_file),
        "CDS_PATIENT_KEY_SECRET": os.urandom(32).hex(),
        # Tokens are signed before each load run, so they live longer than an EHR's (900 s by default).
        "CDS_JWT_MAX_LIFETIME_SECONDS": str(TOKEN_LIFETIME_SECONDS),
        "CDS_OPEN_FHIR_SERVERS": "",
        "CDS_DATA_DIR": str(workdir / "data"),
    }
    if options.redis_url:
        env["REDIS_URL"] = options.redis_url
    return env


def start_server(ctx: Context, app: str) -> Server:
    port = free_port()
    env = {**ctx.env, "CDS_PORT": str(port), "CDS_RUNTIME_DIR": str(ctx.workdir / f"run-{app}")}
    if app == "service":
        command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    else:  # exactly what `serve` execs, with a ceiling app in place of the service
        command = [sys.executable, "-m", "gunicorn", "--config", "python:service.gunicorn_conf",
                   "--bind", f"127.0.0.1:{port}", CEILING_APPS[app]]
    server = Server(app, command, env, ctx.workdir / f"{app}.log")
    server.wait_ready()
    return server


def refusals(log_path: Path) -> list[dict[str, Any]]:
    """The service's calls not answered 200, from its JSON log lines: which status, how often, and
    which prefetch keys failed (a 412), so an error in a run can be explained after the fact."""
    counts: dict[tuple[int, tuple[str, ...], str], int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "service_call" and entry.get("status") != 200:
            key = (entry.get("status"), tuple(entry.get("prefetch_failed") or ()), entry.get("message", ""))
            counts[key] = counts.get(key, 0) + 1
    return [{"status": status, "prefetch_failed": list(failed), "message": message, "calls": calls}
            for (status, failed, message), calls in sorted(counts.items(), key=lambda item: -item[1])]


def check_answers(ctx: Context, server: Server, app: str, scenario: str, minter: TokenMinter | None) -> dict[str, Any]:
    """The service's answer to every chart of the scenario is what the chart was built for; a ceiling's
    to the first. Each check call carries a stamp of its own, like every call of a load run."""
    files = ctx.chart_sets[scenario].files if app == "service" else ctx.chart_sets[scenario].files[:1]
    expected = generate.EXPECTED_TOPICS[scenario] if app == "service" else set()
    tokens = minter.mint(len(files)) if minter is not None else [None] * len(files)
    cards, times, topics = [], [], set()
    with requests.Session() as session:
        for index, (path, token) in enumerate(zip(files, tokens)):
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = "Bearer " + token
            body = generate.stamped(path.read_bytes(), CHECK_STAMP_BASE + index)
            started = time.perf_counter()
            response = session.post(server.url + SERVICE_PATH, data=body, headers=headers, timeout=30)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{app} answered {path.name} with HTTP {response.status_code}: "
                                   f"{response.text[:500]}\n{server.log_tail()}")
            answer = {card["source"]["topic"]["code"] for card in response.json()["cards"]}
            if answer != expected:
                raise RuntimeError(f"{app} answered {path.name} with cards {sorted(answer)}, not the "
                                   f"{sorted(expected)} the chart is built for (bench/generate.py EXPECTED_TOPICS)")
            cards.append(len(response.json()["cards"]))
            topics |= answer
    times.sort()
    return {"status": 200, "charts": len(files), "cards": round(sum(cards) / len(cards), 2),
            "topics": sorted(topics), "ms_median": round(times[len(times) // 2], 1)}


def measure(ctx: Context, server: Server, app: str, scenario: str, connections: int,
            minter: TokenMinter | None) -> LoadResult:
    options = ctx.options
    manifest = ctx.chart_sets[scenario].manifest
    ceilings = [r.rps for r in ctx.results if r.app != "service" and r.scenario == scenario
                and r.connections == connections]
    # Upper bound on what a run can use: nothing answers faster than the trivial apps.
    bound_rps = max(ceilings) * 1.3 + 50 if ceilings else 6000.0
    if minter is None:
        cap = int(bound_rps * 2 * (options.warmup_s + options.duration_s)) + 1000
        ctx.load.run(server.url, manifest, connections, options.warmup_s, tokens=None, minter=None, max_requests=cap)
        raw = ctx.load.run(server.url, manifest, connections, options.duration_s, tokens=None, minter=None,
                           max_requests=cap, server=server)
        return LoadResult(app, scenario, connections, None, raw)
    warm = ctx.load.run(server.url, manifest, connections, options.warmup_s,
                        tokens=[int(bound_rps * options.warmup_s) + 20], minter=minter)
    warm_rps = warm["requests"] / (warm["duration_us"] / 1e6)
    budget = int(min(bound_rps, max(warm_rps * 2.0, 20.0)) * options.duration_s) + 50
    for attempt in (1, 2):
        raw = ctx.load.run(server.url, manifest, connections, options.duration_s, tokens=[budget], minter=minter,
                           server=server)
        if not raw["tokens_exhausted"]:
            break
        ctx.notes.append(f"{app} {scenario} c{connections}: {budget} tokens ran out (attempt {attempt}); "
                         "measured again with the ceiling-bound budget")
        budget = int(bound_rps * options.duration_s) + 50
    return LoadResult(app, scenario, connections, minter.key.alg, raw)


def fhir_round_trips(base: str, patient_id: str, token: str, rounds: int = 7) -> dict[str, float]:
    """Median time of one FHIR GET per fetched key, one at a time over a kept-alive connection."""
    import statistics

    from hooks.declaration import render_template
    service = generate.SERVICE
    context = {"patientId": patient_id, "userId": generate.USER_ID}
    medians = {}
    with requests.Session() as session:
        session.trust_env = False
        for key in generate.FETCHED_KEYS:
            url = base.rstrip("/") + "/" + render_template(service.prefetch[key], context)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = session.get(url, headers={"Authorization": f"Bearer {token}",
                                                     "Accept": "application/fhir+json"}, timeout=10)
                response.raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
            medians[key] = round(statistics.median(times), 1)
    return medians


@contextmanager
def fhir_servers_for_d(ctx_notes: list[str], charts: int) -> Iterator[list[Any]]:
    """The FHIR test servers (d)'s patients live on: none when Node.js is missing (then (d) is skipped)."""
    try:
        from tests.fhirserver import FhirServerUnavailable, FhirTestServer
    except ImportError as error:  # pragma: no cover - the repository always has it
        ctx_notes.append(f"scenario d skipped: {error}")
        yield []
        return
    servers: list[Any] = []
    try:
        for _ in range(-(-charts // FHIR_PATIENTS_PER_SERVER)):
            servers.append(FhirTestServer().start())
    except FhirServerUnavailable as error:
        ctx_notes.append(f"scenario d skipped: the FHIR test server needs Node.js ({error})")
        for server in servers:
            server.stop()
        yield []
        return
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextmanager
def fresh_postgres_schema(url: str) -> Iterator[str]:
    """A schema of its own on the given PostgreSQL database, dropped afterwards: the benchmark's card
    log never mixes with anything else in that database."""
    from tests.servers import postgres_schema
    with postgres_schema(url, "cds_bench") as database_url:
        yield database_url


def write_chart_sets(options: Options, workdir: Path, scenarios: tuple[str, ...], fhir: list[Any],
                     fhir_bases: list[str], fhir_token: str) -> dict[str, generate.ChartSet]:
    as_of = datetime.fromisoformat(options.as_of).date()
    sets = {}
    for name in scenarios:
        extra: dict[str, Any] = {}
        if name == "d":
            extra = {"fhir_servers": [(base, server.load_resources) for base, server in zip(fhir_bases, fhir)],
                     "fhir_authorization": {"access_token": fhir_token, "token_type": "Bearer", "expires_in": 3600,
                                            "scope": "user/*.read", "subject": "bench"}}
        sets[name] = generate.write_set(name, as_of, options.charts, workdir / "requests", **extra)
    return sets


def in_process_profile(options: Options, workdir: Path) -> dict[str, Any]:
    """bench.profile in a process of its own, after the load runs (nothing else of ours running)."""
    scenarios = [s for s in options.scenarios if s in ("a", "b", "c")]
    if not scenarios:
        return {}
    out = workdir / "profile.json"
    command = [sys.executable, "-m", "bench.profile", "--scenarios", ",".join(scenarios),
               "--calls", str(options.profile_calls), "--json", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
        raise RuntimeError(f"bench.profile failed: {completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    print(completed.stdout.strip(), flush=True)
    return json.loads(out.read_text())


def run(options: Options) -> dict[str, Any]:
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="fasciculation-bench-"))
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        if not options.keep_workdir:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        notes: list[str] = []
        fhir_token = "bench-fhir-" + os.urandom(12).hex()
        fhir = stack.enter_context(fhir_servers_for_d(notes, options.charts)) if "d" in options.scenarios else []
        scenarios = tuple(s for s in options.scenarios if s != "d" or fhir)
        fhir_bases = [server.fault_base("delay", FHIR_DELAY_MS) for server in fhir]
        chart_sets = write_chart_sets(options, workdir, scenarios, fhir, fhir_bases, fhir_token)

        keys = [SigningKey.generate("RS384")] + ([SigningKey.generate("ES384")] if options.es384 else [])
        # The prefetched scenarios name generate.FHIR_SERVER: a signed call may name only a registered base.
        clients_file = write_trusted_clients(workdir / "trusted-clients.json", keys, [generate.FHIR_SERVER, *fhir_bases])
        ctx = Context(options, workdir, Load(wrk, workdir), chart_sets,
                      server_env(workdir, clients_file, options), notes=notes)
        for key in keys:
            ctx.minters[key.alg] = TokenMinter(key, audience(generate.SERVICE_ID))
            stack.callback(ctx.minters[key.alg].close)
        if options.database_url:
            ctx.env["DATABASE_URL"] = stack.enter_context(fresh_postgres_schema(options.database_url))
            migrate = subprocess.run([sys.executable, "-m", "service.cli", "db", "upgrade"], cwd=ROOT,
                                     env={**ctx.env}, capture_output=True, text=True, timeout=120)
            if migrate.returncode != 0:
                raise RuntimeError(f"db upgrade failed: {migrate.stdout}{migrate.stderr}")

        round_trip: dict[str, Any] = {}
        if fhir:  # patient 0 lives on the first server
            per_key = fhir_round_trips(fhir_bases[0], "bench-d0000", fhir_token)
            round_trip = {"per_key_median_ms": per_key, "one_round_trip_ms": max(per_key.values()),
                          "delay_ms": FHIR_DELAY_MS, "servers": len(fhir),
                          "patients_per_server": -(-options.charts // len(fhir))}

        # All servers up at once (an idle one costs nothing), each scenario and concurrency measured on
        # the ceilings and then at once on the service: a shared machine's background load then weighs
        # on both sides of each ratio alike.
        servers = {}
        try:
            for app in APPS:
                servers[app] = start_server(ctx, app)
            minters = {"ceiling": None, "ceiling-noparse": None, "service": ctx.minters["RS384"]}
            for scenario in scenarios:
                for app in APPS:
                    ctx.checks[f"{app}/{scenario}"] = check_answers(ctx, servers[app], app, scenario, minters[app])
                for connections in options.connections:
                    for app in APPS:
                        for server in fhir:
                            server.clear_log()
                        result = measure(ctx, servers[app], app, scenario, connections, minters[app])
                        ctx.results.append(result)
                        print(result.line(), flush=True)
                ctx.memory[f"after_{scenario}"] = servers["service"].worker_memory()
            if options.es384:
                for scenario in [s for s in ("a", "c") if s in scenarios]:
                    connections = 8 if 8 in options.connections else options.connections[-1]
                    result = measure(ctx, servers["service"], "service", scenario, connections, ctx.minters["ES384"])
                    ctx.results.append(result)
                    print(result.line(), flush=True)
            for app, server in servers.items():
                ctx.memory[f"{app}_final"] = server.worker_memory()
        finally:
            for app, server in servers.items():
                code = server.stop()
                if code not in (0, None):
                    ctx.notes.append(f"{app} exited with {code} on SIGTERM")
        for refused in refusals(servers["service"].log_path):
            ctx.notes.append(f"service answered {refused['calls']} call(s) with HTTP {refused['status']}"
                             + (f" (prefetch failed: {', '.join(refused['prefetch_failed'])})"
                                if refused["prefetch_failed"] else "") + f": {refused['message']}")
        in_process = in_process_profile(options, workdir)
        report = build_report(ctx, started, round_trip, wrk, in_process,
                              {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in os.getloadavg()]})
    return report


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop every server


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    report = run(options)
    print_table(report)
    path = write_report(report, options.results_dir, options.label)
    print(f"\nresults: {path}")
    errors = sum(r["errors"] for r in report["runs"])
    return 1 if errors or any(r["tokens_exhausted"] for r in report["runs"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
