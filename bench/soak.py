"""Soak run: the production-like service at a fixed moderate rate for a long time.

    bench/soak [--duration SECONDS] [--rate PER_SECOND] [--json FILE]     (or .venv/bin/python -m bench.soak)

Starts `fasciculation-cds serve` (gunicorn, as the container runs it) in production mode against a
fresh schema on the machine's PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), then calls it at a
fixed rate: every fixture scenario request in turn, each with its own freshly signed CDS Hooks JWT,
and feedback (accepted or overridden) on cards it issued. It checks, and reports as JSON:

- errors: every answer must be 200 (any other status, time-out or connection error counts);
- memory: resident memory of the gunicorn workers, sampled every second; the growth from the end
  of the warm-up to the end of the run must stay under --max-rss-growth (10 %);
- no feedback lost: the rows in PostgreSQL equal the feedback items the service accepted, and the
  card log holds every card it returned.

Exit status 0 when every check passes, 1 when one fails, 2 when PostgreSQL or Redis cannot be
reached. Only 127.0.0.1 is ever called; the schema is dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.auth.support import FIXTURE_FHIR_SERVER, claims, client_entry, mint, new_key, write_clients  # noqa: E402
from tests.ops.support import REVIEW_SERVICE, fixture_requests  # noqa: E402
from tests.servers import (ServiceFailed, ServiceProcess, find_postgres, migrate, postgres_schema,  # noqa: E402
                           production_env, sqlalchemy_url)

PUBLIC_BASE = "https://cds.soak.test"
SERVICE_PATH = f"/cds-services/{REVIEW_SERVICE}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"
EXIT_FAILED, EXIT_UNAVAILABLE = 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second, service and feedback (default 20)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the memory baseline (default: a third of the duration, at most 60)")
    parser.add_argument("--feedback-every", type=int, default=3,
                        help="every Nth call is a feedback post on cards already issued (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (CDS_WORKERS, default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (CDS_THREADS, default 4)")
    parser.add_argument("--max-rss-growth", type=float, default=0.10,
                        help="largest allowed growth of the workers' memory after warm-up (default 0.10)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server (default: CDS_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--redis-url", default=os.environ.get("CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--seed", type=int, default=20261115, help="seed of the feedback choices")
    parser.add_argument("--json", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 3)
    if not 0 <= args.warmup < args.duration or args.rate <= 0:
        parser.error("need 0 <= --warmup < --duration and --rate > 0")
    return args


@dataclass
class Tally:
    """What the load saw; updated from many threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)  # "service 200", "feedback 400", "service error"
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"service": [], "feedback": []})
    cards_returned: int = 0
    feedback_items_accepted: int = 0
    scenarios: Counter[str] = field(default_factory=Counter)
    issued: list[dict[str, Any]] = field(default_factory=list)  # cards waiting for feedback

    def record(self, kind: str, status: int | str, seconds: float, problem: str | None = None) -> None:
        with self.lock:
            self.calls[f"{kind} {status}"] += 1
            self.latencies[kind].append(seconds)
            if problem is not None and len(self.errors) < 50:
                self.errors.append(problem)


class Load:
    def __init__(self, service: ServiceProcess, key: Any, tally: Tally, seed: int):
        self.service, self.key, self.tally = service, key, tally
        self.scenarios = fixture_requests()
        self.random = random.Random(seed)
        self.session_local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self.session_local, "session", None)
        if session is None:
            session = self.session_local.session = requests.Session()
            session.trust_env = False
        return session

    def _post(self, kind: str, path: str, body: dict[str, Any]) -> requests.Response | None:
        token = mint(self.key, claims(aud=PUBLIC_BASE + path))
        started = time.perf_counter()
        try:
            response = self._session().post(self.service.url + path, json=body, timeout=30,
                                            headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as error:
            self.tally.record(kind, "error", time.perf_counter() - started, f"{kind}: {type(error).__name__}")
            return None
        seconds = time.perf_counter() - started
        problem = None if response.status_code == 200 else f"{kind}: HTTP {response.status_code} {response.text[:300]}"
        self.tally.record(kind, response.status_code, seconds, problem)
        return response

    def service_call(self, index: int) -> None:
        name, request = self.scenarios[index % len(self.scenarios)]
        response = self._post("service", SERVICE_PATH, request)
        if response is None or response.status_code != 200:
            return
        cards = response.json()["cards"]
        with self.tally.lock:
            self.tally.scenarios[name] += 1
            self.tally.cards_returned += len(cards)
            self.tally.issued.extend(cards)

    def feedback_call(self) -> None:
        with self.tally.lock:
            if not self.tally.issued:
                cards = []
            else:
                count = min(len(self.tally.issued), self.random.randint(1, 3))
                cards = [self.tally.issued.pop(self.random.randrange(len(self.tally.issued))) for _ in range(count)]
        if not cards:
            return
        items = [self.feedback_item(card) for card in cards]
        response = self._post("feedback", FEEDBACK_PATH, {"feedback": items})
        if response is not None and response.status_code == 200:
            with self.tally.lock:
                self.tally.feedback_items_accepted += len(items)

    def feedback_item(self, card: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        if card.get("suggestions") and self.random.random() < 0.6:
            chosen = card["suggestions"][: self.random.randint(1, len(card["suggestions"]))]
            return {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": now,
                    "acceptedSuggestions": [{"id": suggestion["uuid"]} for suggestion in chosen]}
        if self.random.random() < 0.3 or not card.get("overrideReasons"):
            return {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now,
                    "overrideReason": {"userComment": "soak: not relevant today"}}
        reason = self.random.choice(card["overrideReasons"])
        return {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now,
                "overrideReason": {"reason": reason}}


class MemorySampler:
    """The workers' resident memory, every second: [(seconds since start, total bytes, {pid: bytes})]."""

    def __init__(self, service: ServiceProcess):
        self.service = service
        self.samples: list[tuple[float, int, dict[int, int]]] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            by_pid = self.service.rss_bytes()
            workers = {pid: rss for pid, rss in by_pid.items() if pid != self.service.pid and rss}
            self.samples.append((time.monotonic() - self._started, sum(workers.values()), workers))
            if self._stop.wait(1.0):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, seconds: float, window: float = 3.0) -> float:
        """The mean total over the `window` seconds up to `seconds` (0 if no sample)."""
        values = [total for at, total, _ in self.samples if seconds - window <= at <= seconds and total]
        return statistics.fmean(values) if values else 0.0


def run_load(load: Load, args: argparse.Namespace) -> float:
    """Fixed-rate (open-loop) schedule; returns the seconds it took."""
    total = int(args.duration * args.rate)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="soak") as pool:
        service_calls = 0
        for index in range(total):
            delay = started + index / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if args.feedback_every and index % args.feedback_every == args.feedback_every - 1:
                pool.submit(load.feedback_call)
            else:
                pool.submit(load.service_call, service_calls)
                service_calls += 1
    return time.monotonic() - started


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def count_rows(database_url: str) -> dict[str, int]:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    for table in ("issued_cards", "card_feedback")}
    finally:
        engine.dispose()


def soak(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    server, problems = (args.database_url, []) if args.database_url else find_postgres()
    if server is None:
        return EXIT_UNAVAILABLE, {"error": "PostgreSQL is not reachable (" + "; ".join(problems) + ")"}
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as error:
        return EXIT_UNAVAILABLE, {"error": f"Redis at {args.redis_url} is not reachable ({type(error).__name__})"}

    with tempfile.TemporaryDirectory(prefix="cds-soak-") as tmp, postgres_schema(server, "cds_soak") as database_url:
        directory = Path(tmp)
        key = new_key("ES384")
        env = production_env(directory, write_clients(directory, client_entry(key, fhir_servers=[FIXTURE_FHIR_SERVER])),
                             PUBLIC_BASE,
                             DATABASE_URL=database_url, REDIS_URL=args.redis_url, CDS_LOG_LEVEL="WARNING",
                             CDS_WORKERS=str(args.workers), CDS_THREADS=str(args.threads))
        migrate(env, directory)
        service = ServiceProcess("soak", env, directory)
        try:
            service.wait_ready()
            tally = Tally()
            sampler = MemorySampler(service).start()
            took = run_load(Load(service, key, tally, args.seed), args)
            time.sleep(1.5)  # a last sample after the final calls
            sampler.stop()
            rows = count_rows(database_url)
            workers_alive = service.process.poll() is None
        finally:
            exit_code = service.stop()
            log = service.stderr()
    return report(args, tally, sampler, rows, took, workers_alive, exit_code, log)


def report(args: argparse.Namespace, tally: Tally, sampler: MemorySampler, rows: dict[str, int], took: float,
           workers_alive: bool, exit_code: int, log: str) -> tuple[int, dict[str, Any]]:
    baseline, final = sampler.at(args.warmup), sampler.at(sampler.samples[-1][0] if sampler.samples else 0)
    growth = (final - baseline) / baseline if baseline else None
    calls = sum(tally.calls.values())
    errors = sum(count for key, count in tally.calls.items() if not key.endswith(" 200"))
    unhandled = log.count('"unhandled_error"')
    result: dict[str, Any] = {
        "duration_s": args.duration, "rate_per_s": args.rate, "warmup_s": args.warmup,
        "workers": args.workers, "threads": args.threads,
        "calls": calls, "achieved_rate_per_s": round(calls / took, 2) if took else None,
        "statuses": dict(sorted(tally.calls.items())), "errors": errors, "error_samples": tally.errors[:10],
        "scenarios_served": len(tally.scenarios), "scenarios_in_fixtures": len(fixture_requests()),
        "latency_ms": {kind: {"p50": _ms(percentile(values, 0.5)), "p95": _ms(percentile(values, 0.95)),
                              "p99": _ms(percentile(values, 0.99)), "max": _ms(max(values, default=None))}
                       for kind, values in tally.latencies.items()},
        "rss_mib": {"after_warmup": _mib(baseline), "end": _mib(final),
                    "peak": _mib(max((total for _, total, _ in sampler.samples), default=0)),
                    "growth_after_warmup": round(growth, 4) if growth is not None else None,
                    "series": " ".join(f"{at:.0f}s:{_mib(total)}" for at, total, _ in
                                       sampler.samples[::max(1, len(sampler.samples) // 30)])},
        "cards_returned": tally.cards_returned, "feedback_items_accepted": tally.feedback_items_accepted,
        "database_rows": rows, "server_exit_code": exit_code, "unhandled_errors_logged": unhandled,
    }
    checks = {
        "no errors": errors == 0 and unhandled == 0,
        "every scenario served": len(tally.scenarios) == len(fixture_requests()) or calls < len(fixture_requests()),
        "rss growth under limit": growth is not None and growth < args.max_rss_growth,
        "no feedback row lost": rows["card_feedback"] == tally.feedback_items_accepted,
        "every card logged": rows["issued_cards"] == tally.cards_returned,
        "server stayed up and stopped cleanly": workers_alive and exit_code == 0,
    }
    result["checks"] = checks
    result["passed"] = all(checks.values())
    return (0 if result["passed"] else EXIT_FAILED), result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _mib(value: float) -> float:
    return round(value / 1024 / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"soak: {args.duration:.0f} s at {args.rate:g} calls/s (warm-up {args.warmup:.0f} s) ...", file=sys.stderr)
    try:
        code, result = soak(args)
    except ServiceFailed as failure:
        code, result = EXIT_FAILED, {"error": str(failure)[-4000:]}
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
