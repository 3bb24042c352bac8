"""CPU time per service call, in process: the numbers behind each optimisation in docs/performance.md.

    .venv/bin/python -m bench.profile                      # CPU ms per call for scenarios a, b, c
    .venv/bin/python -m bench.profile --scenarios a --pyinstrument    # where the time goes (pip install pyinstrument)
    .venv/bin/python -m bench.profile --review             # reading + reviewing the chart alone (cards.review)

The service app is built as in production (CDS_MODE=production, an RS384 trusted client, the SQLite card
log in a temporary directory) and called through Flask's test client, one call at a time, each with its
own pre-signed JWT. CPU time (time.thread_time) is what other processes on a shared machine disturb least,
so it is the figure to compare before and after a change; the load benchmark (`python -m bench`) gives
the end-to-end numbers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import generate
from bench.tokens import (PUBLIC_BASE_URL, TOKEN_LIFETIME_SECONDS, SigningKey, TokenMinter, audience,
                          write_trusted_clients)


def build_app(workdir: Path, key: SigningKey):
    clients = write_trusted_clients(workdir / "trusted-clients.json", [key], [generate.FHIR_SERVER])
    os.environ.setdefault("CDS_LOG_LEVEL", "INFO")
    from service import create_app
    from service.config import Settings
    settings = Settings.from_env({
        "CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients), "CDS_PATIENT_KEY_SECRET": os.urandom(32).hex(),
        "CDS_JWT_MAX_LIFETIME_SECONDS": str(TOKEN_LIFETIME_SECONDS),
        "CDS_DATA_DIR": str(workdir / "data"), "CDS_OPEN_FHIR_SERVERS": "",
        "CDS_LOG_LEVEL": os.environ["CDS_LOG_LEVEL"],
    })
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="a,b,c")
    parser.add_argument("--calls", type=int, default=300, help="calls per scenario (b: a tenth)")
    parser.add_argument("--pyinstrument", action="store_true", help="print a pyinstrument profile per scenario")
    parser.add_argument("--log-to", default=os.devnull, help="where the service's log lines go")
    parser.add_argument("--no-server-tuning", action="store_true",
                        help="leave the collector as Python sets it (gunicorn_conf.py tunes it)")
    parser.add_argument("--review", action="store_true",
                        help="CPU of reading and reviewing each chart in process (cards.review), no HTTP, no JWT")
    args = parser.parse_args(argv)
    if args.review:
        return review_cpu(args.scenarios.split(","), args.calls)

    import logging
    import sys
    workdir = Path(tempfile.mkdtemp(prefix="fasciculation-profile-"))
    log_file = open(args.log_to, "w")  # noqa: SIM115
    sys.stderr, real_stderr = log_file, sys.stderr  # the JSON log handler writes to sys.stderr
    try:
        key = SigningKey.generate("RS384")
        app = build_app(workdir, key)
        sys.stderr = real_stderr
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is real_stderr:
                handler.setStream(log_file)
        if not args.no_server_tuning:  # as service/gunicorn_conf.py does in the server
            from service import server_tuning
            server_tuning.tune_collector()
            server_tuning.limit_malloc_arenas()
            server_tuning.freeze_preloaded()
        client = app.test_client()
        minter = TokenMinter(key, audience(generate.SERVICE_ID))
        today = datetime.now(UTC).date()
        path = f"/cds-services/{generate.SERVICE_ID}"
        for name in args.scenarios.split(","):
            body = generate.write(generate.build(name, today), workdir / "requests").read_bytes()
            calls = max(10, args.calls // 10) if name == "b" else args.calls
            tokens = minter.mint(calls + 20)
            for token in tokens[:20]:  # warm-up
                response = client.post(path, data=body, content_type="application/json",
                                       headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.get_data(as_text=True)[:500]
            cards = len(response.get_json()["cards"])
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler
                profiler = Profiler(interval=0.0002)
                profiler.start()
            cpu, wall = [], []
            for token in tokens[20:]:
                c0, w0 = time.thread_time(), time.perf_counter()
                response = client.post(path, data=body, content_type="application/json",
                                       headers={"Authorization": f"Bearer {token}"})
                cpu.append((time.thread_time() - c0) * 1000)
                wall.append((time.perf_counter() - w0) * 1000)
                assert response.status_code == 200
            if profiler is not None:
                profiler.stop()
            cpu.sort()
            print(f"{name}: {len(body):>9,} bytes, {cards} cards, {calls} calls: CPU median "
                  f"{statistics.median(cpu):.3f} ms, p10 {cpu[len(cpu) // 10]:.3f} ms, mean "
                  f"{statistics.fmean(cpu):.3f} ms; wall median {statistics.median(wall):.3f} ms", flush=True)
            if profiler is not None:
                print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=True))
        minter.close()
    finally:
        sys.stderr = real_stderr
        log_file.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def review_cpu(names: list[str], calls: int) -> int:
    """Issue 12's budget: reading + reviewing the typical chart (a) <= 1.5 ms of CPU. The request is
    parsed once per call (as the service does) outside the measured span; the span is review() alone:
    raw resources in, cards out."""
    import orjson

    from cards import review
    from service.fhir_client import bundle_resources
    today = datetime.now(UTC).date()
    for name in names:
        body = orjson.dumps(generate.build(name, today).request)
        runs = max(10, calls // 10) if name == "b" else calls
        cpu = []
        for index in range(runs + 20):
            request = orjson.loads(body)
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
