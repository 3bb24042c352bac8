"""CPU time per service call, in process: the numbers behind each optimisation in docs/performance.md.

    .venv/bin/python -m bench.profile                         # CPU ms per call, scenarios a, b, c
    .venv/bin/python -m bench.profile --scenarios a --cprofile 25    # where the time goes (stdlib cProfile)
    .venv/bin/python -m bench.profile --json out.json         # the figures as JSON (python -m bench uses it)
    .venv/bin/python -m bench.profile --review                # reading + reviewing the chart alone (cards.review)

The service app is built as in production (CDS_MODE=production, an RS384 trusted client, the SQLite card
log in a temporary directory, JSON log lines at INFO, Prometheus multiprocess metrics, the collector and
allocator settings of service/gunicorn_conf.py) and called as gunicorn calls it, through WSGI, one call
at a time: each call a different patient (the scenario's charts in turn, every one stamped with its own
patient id, as under load) with its own pre-signed JWT. Only the application's work is timed: the WSGI
environ is built before the clock starts, as gunicorn's HTTP parser would have. The ceiling app (orjson
parse, `{"cards": []}`) is timed the same way on the same bodies: the floor in process.

CPU time (time.thread_time) is what other processes on a shared machine disturb least, so it is the
figure to compare before and after a change; the load benchmark (`python -m bench`) gives end to end.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import generate
from bench.tokens import (PUBLIC_BASE_URL, TOKEN_LIFETIME_SECONDS, SigningKey, TokenMinter, audience,
                          write_trusted_clients)

WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PATH = f"/cds-services/{generate.SERVICE_ID}"
PROFILE_STAMP_BASE = 0xFFE << 36  # stamps of their own, never those of a load run (bench/post.lua)


def build_app(workdir: Path, key: SigningKey):
    """The service app in production mode, its card log in `workdir`, trusting `key`."""
    # The charts name generate.FHIR_SERVER: a signed call may name only a base registered for its client.
    clients = write_trusted_clients(workdir / "trusted-clients.json", [key], [generate.FHIR_SERVER])
    from service import create_app
    from service.config import Settings
    settings = Settings.from_env({
        "CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients), "CDS_PATIENT_KEY_SECRET": os.urandom(32).hex(),
        "CDS_JWT_MAX_LIFETIME_SECONDS": str(TOKEN_LIFETIME_SECONDS),
        "CDS_DATA_DIR": str(workdir / "data"), "CDS_OPEN_FHIR_SERVERS": "",
        "CDS_LOG_LEVEL": os.environ.get("CDS_LOG_LEVEL", "INFO"),
    })
    return create_app(settings)


def environ_for(body: bytes, token: str | None) -> dict[str, Any]:
    """What gunicorn hands the app for one POST (its HTTP parsing is not the app's CPU)."""
    environ = {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": PATH, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8080",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_ACCEPT": "application/json",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


def call(app: WSGI, environ: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    result = app(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return status[0], body


def bodies_for(name: str, count: int) -> list[bytes]:
    import orjson
    today = datetime.now(UTC).date()
    return [orjson.dumps(scenario.request) for scenario in generate.build_set(name, today, count)]


def measure(app: WSGI, bodies: list[bytes], calls: int, tokens: list[str] | None, stamp_base: int,
            profiler: Any = None) -> dict[str, Any]:
    """CPU and wall time of `calls` calls, the bodies in turn, each stamped for one call only."""
    cpu, wall, cards = [], [], 0
    for number in range(calls):
        body = generate.stamped(bodies[number % len(bodies)], stamp_base + number)
        environ = environ_for(body, tokens[number] if tokens else None)
        if profiler is not None:
            profiler.enable()
        c0, w0 = time.thread_time(), time.perf_counter()
        status, answer = call(app, environ)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
        if profiler is not None:
            profiler.disable()
        if not status.startswith("200"):
            raise RuntimeError(f"HTTP {status}: {answer[:500]!r}")
        cards += len(json.loads(answer)["cards"])
    cpu.sort()
    return {"calls": calls, "charts": min(calls, len(bodies)), "cpu_ms_median": round(statistics.median(cpu), 3),
            "cpu_ms_p10": round(cpu[len(cpu) // 10], 3), "cpu_ms_p90": round(cpu[len(cpu) * 9 // 10], 3),
            "cpu_ms_mean": round(statistics.fmean(cpu), 3), "wall_ms_median": round(statistics.median(wall), 3),
            "cards_per_call": round(cards / calls, 2)}


def profile(scenarios: list[str], calls: int, *, cprofile: int = 0, pyinstrument: bool = False,
            log_to: str = os.devnull, server_tuning: bool = True, echo: Callable[[str], None] = print) -> dict[str, Any]:
    import logging
    workdir = Path(tempfile.mkdtemp(prefix="fasciculation-profile-"))
    if "prometheus_client" not in sys.modules:  # metrics as under gunicorn: one file per process
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "prometheus")
        (workdir / "prometheus").mkdir()
    log_file = open(log_to, "w")  # noqa: SIM115
    sys.stderr, real_stderr = log_file, sys.stderr  # the JSON log handler writes to sys.stderr
    results: dict[str, Any] = {}
    try:
        key = SigningKey.generate("RS384")
        app = build_app(workdir, key)
        sys.stderr = real_stderr
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is real_stderr:
                handler.setStream(log_file)
        from bench.ceiling_app import app as ceiling
        if server_tuning:  # as service/gunicorn_conf.py does in the server
            from service import server_tuning as tuning
            tuning.tune_collector()
            tuning.limit_malloc_arenas()
            tuning.freeze_preloaded()
        minter = TokenMinter(key, audience(generate.SERVICE_ID))
        try:
            for name in scenarios:
                n = max(10, calls // 10) if name == "b" else calls
                warm = 10 if name == "b" else 30
                bodies = bodies_for(name, min(n, generate.DEFAULT_CHARTS))
                tokens = minter.mint(n + warm)
                measure(app, bodies[::-1], warm, tokens[n:], PROFILE_STAMP_BASE + (1 << 32))  # warm-up
                profiler = _profiler(cprofile, pyinstrument)
                service = measure(app, bodies, n, tokens[:n], PROFILE_STAMP_BASE, profiler)
                floor = measure(ceiling.wsgi_app, bodies, n, None, PROFILE_STAMP_BASE)
                sizes = [len(body) for body in bodies]
                results[name] = {"bytes_min": min(sizes), "bytes_max": max(sizes), "service": service, "ceiling": floor}
                echo(f"{name}: {len(bodies)} charts of {min(sizes):,}-{max(sizes):,} bytes, {n} calls, "
                     f"{service['cards_per_call']} cards a call: service CPU median {service['cpu_ms_median']:.3f} ms "
                     f"(p10 {service['cpu_ms_p10']:.3f}, p90 {service['cpu_ms_p90']:.3f}); ceiling (parse) "
                     f"{floor['cpu_ms_median']:.3f} ms")
                _report_profiler(profiler, cprofile, echo)
        finally:
            minter.close()
    finally:
        sys.stderr = real_stderr
        log_file.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _profiler(cprofile: int, pyinstrument: bool) -> Any:
    if cprofile:
        import cProfile
        return cProfile.Profile(time.thread_time)
    if pyinstrument:
        from pyinstrument import Profiler

        class _Adapter:  # enable()/disable() around each call, like cProfile
            def __init__(self) -> None:
                self.profiler = Profiler(interval=0.0002)

            def enable(self) -> None:
                self.profiler.start() if not self.profiler.is_running else self.profiler.resume()

            def disable(self) -> None:
                self.profiler.stop()
        return _Adapter()
    return None


def _report_profiler(profiler: Any, cprofile: int, echo: Callable[[str], None]) -> None:
    if profiler is None:
        return
    if cprofile:
        import pstats
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(cprofile)
        echo(stream.getvalue())
    else:
        echo(profiler.profiler.output_text(unicode=True, color=False, show_all=False, short_mode=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="a,b,c")
    parser.add_argument("--calls", type=int, default=300, help="calls per scenario (b: a tenth)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="print the N functions with the most CPU of their own (cProfile, thread time)")
    parser.add_argument("--pyinstrument", action="store_true", help="a call tree per scenario (pip install pyinstrument)")
    parser.add_argument("--log-to", default=os.devnull, help="where the service's log lines go")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-server-tuning", action="store_true",
                        help="leave the collector as Python sets it (gunicorn_conf.py tunes it)")
    parser.add_argument("--review", action="store_true",
                        help="CPU of reading and reviewing each chart in process (cards.review), no HTTP, no JWT")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - {"a", "b", "c"}
    if unknown:
        parser.error(f"in process only a, b and c (d fetches over HTTP): {', '.join(sorted(unknown))}")
    if args.review:
        return review_cpu(args.scenarios.split(","), args.calls)
    results = profile(args.scenarios.split(","), args.calls, cprofile=args.cprofile, pyinstrument=args.pyinstrument,
                      log_to=args.log_to, server_tuning=not args.no_server_tuning)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def review_cpu(names: list[str], calls: int) -> int:
    """Issue 12's budget: reading + reviewing the typical chart (a) <= 1.5 ms of CPU. The request is
    parsed once per call (as the service does) outside the measured span; the span is review() alone:
    raw resources in, cards out. The scenario's distinct charts in turn, as in `profile` (issue 14)."""
    import orjson

    from cards import review
    from service.fhir_client import bundle_resources
    for name in names:
        runs = max(10, calls // 10) if name == "b" else calls
        bodies = bodies_for(name, min(runs, generate.DEFAULT_CHARTS))
        cpu = []
        for index in range(runs + 20):
            request = orjson.loads(bodies[index % len(bodies)])
            resources = [resource for value in request["prefetch"].values() if value
                         for resource in (bundle_resources(value) if value.get("resourceType") == "Bundle" else [value])]
            started = time.thread_time()
            result = review(resources, patient_id=request["context"]["patientId"], now=datetime.now(UTC))
            if index >= 20:  # the first 20 warm the caches
                cpu.append((time.thread_time() - started) * 1000)
        cpu.sort()
        print(f"{name}: review() of {len(resources)} resources, {len(result.cards)} cards, {runs} calls: CPU median "
              f"{statistics.median(cpu):.3f} ms, p10 {cpu[len(cpu) // 10]:.3f} ms, p90 {cpu[len(cpu) * 9 // 10]:.3f} ms",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
