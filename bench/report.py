"""The benchmark's result: one JSON document per run (bench/results/), a table, and the targets.

`FORMAT` 2 is the benchmark of varied charts (bench/generate.py): the ceiling parses the body, a
no-parse ceiling is the second line, and the in-process CPU per call is part of the result. Files
without a format (the runs of November 2026) replayed one chart and are not comparable with these.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

FORMAT = 2
# Targets of the performance issue (#14): ratios and latencies from the same run.
TARGETS = {
    "a_throughput_ratio": 0.25, "a_p50_ms_c1": 4.0, "a_p99_ms_c8": 25.0,
    "b_p50_ms_c1": 40.0, "c_throughput_ratio": 0.70, "d_p50_over_round_trip": 1.5,
    "d_deadline_ms": 2000.0, "rss_mb_after_b": 150.0,
}


@dataclass
class LoadResult:
    app: str  # ceiling | ceiling-noparse | service
    scenario: str
    connections: int
    alg: str | None
    raw: dict[str, Any]

    @property
    def seconds(self) -> float:
        return self.raw["duration_us"] / 1e6

    @property
    def rps(self) -> float:
        return self.raw["requests"] / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(self.raw["errors"].values())

    def summary(self) -> dict[str, Any]:
        latency = self.raw["latency_us"]
        return {
            "app": self.app, "scenario": self.scenario, "connections": self.connections, "alg": self.alg,
            "requests": self.raw["requests"], "seconds": round(self.seconds, 2), "rps": round(self.rps, 1),
            "p50_ms": round(latency["p50"] / 1000, 2), "p90_ms": round(latency["p90"] / 1000, 2),
            "p99_ms": round(latency["p99"] / 1000, 2), "max_ms": round(latency["max"] / 1000, 2),
            "mean_ms": round(latency["mean"] / 1000, 2), "errors": self.errors,
            "error_detail": self.raw["errors"], "tokens_exhausted": self.raw["tokens_exhausted"],
            "background_cpu_pct": self.raw.get("background_cpu_pct"),
            "worker_cpu_split": self.raw.get("worker_cpu_split"),
            "server_cpu_ms_per_request": self.raw.get("server_cpu_ms_per_request"),
            "workers_recycled": self.raw.get("workers_recycled"),
        }

    def line(self) -> str:
        s = self.summary()
        alg = f" {s['alg']}" if s["alg"] and s["alg"] != "RS384" else ""
        return (f"{s['app']:>15}{alg} {s['scenario']} c{s['connections']:<3} {s['rps']:>8.1f} req/s  "
                f"p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>8.2f} ms  errors {s['errors']}  "
                f"server CPU {s['server_cpu_ms_per_request']} ms/req  (workers' split {s['worker_cpu_split']}, "
                f"other processes {s['background_cpu_pct']}% CPU)")


def build_report(ctx: Any, started: datetime, round_trip: dict[str, Any], wrk: str, in_process: dict[str, Any],
                 loadavg: dict[str, list[float]]) -> dict[str, Any]:
    options = ctx.options
    runs = [r.summary() for r in ctx.results]
    by_key = {(r.app, r.scenario, r.connections, r.alg): r for r in ctx.results}
    ratios = []
    for r in ctx.results:
        if r.app != "service":
            continue
        ceiling = by_key.get(("ceiling", r.scenario, r.connections, None))
        noparse = by_key.get(("ceiling-noparse", r.scenario, r.connections, None))
        if ceiling:
            ratios.append({
                "scenario": r.scenario, "connections": r.connections, "alg": r.alg,
                "service_rps": round(r.rps, 1), "ceiling_rps": round(ceiling.rps, 1),
                "ratio": round(r.rps / ceiling.rps, 4) if ceiling.rps else None,
                "noparse_rps": round(noparse.rps, 1) if noparse else None,
                "noparse_ratio": round(r.rps / noparse.rps, 4) if noparse and noparse.rps else None,
                "service_cpu_ms_per_request": r.raw.get("server_cpu_ms_per_request"),
                "ceiling_cpu_ms_per_request": ceiling.raw.get("server_cpu_ms_per_request"),
                "noparse_cpu_ms_per_request": noparse.raw.get("server_cpu_ms_per_request") if noparse else None})
    background = [r["background_cpu_pct"] for r in runs if r["background_cpu_pct"] is not None]
    report = {
        "format": FORMAT,
        "benchmark": "fasciculation-cds patient-view",
        "created": started.isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "quick": options.quick,
        "label": options.label,
        "machine": machine(wrk),
        "machine_load": {
            "loadavg": loadavg,
            "other_processes_cpu_pct": {"median": round(statistics.median(background), 1) if background else None,
                                        "max": max(background, default=None)},
        },
        "config": {
            "gunicorn": gunicorn_config(), "production_mode": True, "jwt_alg": "RS384 (ES384 secondary)",
            "replay_cache": "redis" if options.redis_url else "memory (per worker)",
            "database": "postgresql" if options.database_url else "sqlite (temporary data dir)",
            "connections": list(options.connections), "warmup_s": options.warmup_s,
            "duration_s": options.duration_s, "charts_per_scenario": options.charts, "wrk_threads": 1,
            "wrk_timeout": "10s", "as_of": options.as_of, "fhir_delay_ms": 100,
            "profile_calls": options.profile_calls,
        },
        "scenarios": {name: {"title": chart_set.title, "charts": len(chart_set.files),
                             "request_bytes": {"min": min(chart_set.sizes), "max": max(chart_set.sizes),
                                               "mean": round(statistics.fmean(chart_set.sizes))},
                             "fetched_keys": list(chart_set.fetched_keys),
                             "service_answer": ctx.checks.get(f"service/{name}")}
                      for name, chart_set in ctx.chart_sets.items()},
        "fhir_round_trip": round_trip,
        "runs": runs,
        "ratios": ratios,
        "in_process": in_process,
        "worker_memory": ctx.memory,
        "tokens_minted": {alg: minter.minted for alg, minter in ctx.minters.items()},
        "notes": ctx.notes,
    }
    report["targets"] = evaluate_targets(report)
    return report


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    runs = {(r["app"], r["scenario"], r["connections"], r["alg"]): r for r in report["runs"]}
    ratios = {(r["scenario"], r["connections"]): r["ratio"] for r in report["ratios"] if r["alg"] == "RS384"}
    targets = []

    def add(name: str, value: float | None, limit: float, higher_is_better: bool, where: str) -> None:
        if value is None:
            return
        met = value >= limit if higher_is_better else value <= limit
        targets.append({"target": name, "where": where, "value": value, "limit": limit, "met": met})

    for scenario, key in (("a", "a_throughput_ratio"), ("c", "c_throughput_ratio")):
        values = [ratio for (s, _), ratio in ratios.items() if s == scenario and ratio is not None]
        if values:  # the throughput at the concurrency where the service does best
            add(f"({scenario}) throughput >= {TARGETS[key]:.0%} of the ceiling", max(values), TARGETS[key], True,
                "best concurrency")
    service = lambda s, c: runs.get(("service", s, c, "RS384"))  # noqa: E731
    if service("a", 1):
        add("(a) p50 <= 4 ms at 1 connection", service("a", 1)["p50_ms"], TARGETS["a_p50_ms_c1"], False, "c1")
    if service("a", 8):
        add("(a) p99 <= 25 ms at 8 connections", service("a", 8)["p99_ms"], TARGETS["a_p99_ms_c8"], False, "c8")
    if service("b", 1):
        add("(b) p50 <= 40 ms at 1 connection", service("b", 1)["p50_ms"], TARGETS["b_p50_ms_c1"], False, "c1")
    trip = report["fhir_round_trip"].get("one_round_trip_ms")
    if trip and service("d", 1):
        add("(d) p50 <= 1.5 x one FHIR round trip", round(service("d", 1)["p50_ms"] / trip, 2),
            TARGETS["d_p50_over_round_trip"], False, f"c1, round trip {trip} ms")
        worst = max(r["max_ms"] for k, r in runs.items() if k[0] == "service" and k[1] == "d")
        add("(d) never past the 2 s deadline (max latency)", worst, TARGETS["d_deadline_ms"], False,
            "all concurrencies")
    memory = report["worker_memory"].get("after_b")
    if memory:
        add("peak RSS per worker <= 150 MB after (b)", max(w.get("vmhwm_mb", 0) for w in memory),
            TARGETS["rss_mb_after_b"], False, "VmHWM, largest worker")
    errors = sum(r["errors"] for r in report["runs"])
    targets.append({"target": "no errors", "where": "all runs", "value": errors, "limit": 0, "met": errors == 0})
    return targets


def gunicorn_config() -> dict[str, Any]:
    from service.config import Settings
    settings = Settings.from_env({"CDS_MODE": "development"})
    return {"worker_class": "gthread", "workers": settings.workers, "threads": settings.threads,
            "config": "service/gunicorn_conf.py", "preload_app": True}


def machine(wrk: str) -> dict[str, Any]:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release(), "wrk": version[0] if version else "wrk"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(report: dict[str, Any]) -> None:
    print()
    print(f"{'scenario':<9}{'conns':>5} {'alg':<6}{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f" {'ceiling':>9} {'ratio':>6} {'no-parse':>9} {'ratio':>6} {'CPU ms/req':>10} {'ceiling':>8}")
    for r in report["ratios"]:
        run = next(x for x in report["runs"] if x["app"] == "service" and x["scenario"] == r["scenario"]
                   and x["connections"] == r["connections"] and x["alg"] == r["alg"])
        noparse = f"{r['noparse_ratio']:.1%}" if r["noparse_ratio"] else "-"
        print(f"{r['scenario']:<9}{r['connections']:>5} {r['alg']:<6}{run['rps']:>9.1f} {run['p50_ms']:>8.2f} "
              f"{run['p99_ms']:>8.2f} {run['errors']:>6} {r['ceiling_rps']:>9.1f} {r['ratio']:>6.1%} "
              f"{r['noparse_rps'] or 0:>9.1f} {noparse:>6} {_ms(r['service_cpu_ms_per_request']):>10} "
              f"{_ms(r['ceiling_cpu_ms_per_request']):>8}")
    if report["in_process"]:
        print("\nin process, CPU ms per call (median): " + ", ".join(
            f"({name}) service {figures['service']['cpu_ms_median']:.3f} / ceiling {figures['ceiling']['cpu_ms_median']:.3f}"
            for name, figures in report["in_process"].items()))
    rss = [w.get("vmhwm_mb") for w in report["worker_memory"].get("after_b", [])]
    if rss:
        print(f"peak RSS per worker after (b), VmHWM: {', '.join(f'{v} MB' for v in rss)}")
    trip = report["fhir_round_trip"].get("one_round_trip_ms")
    if trip:
        print(f"one FHIR round trip (slowest key, median): {trip} ms")
    load = report["machine_load"]
    print(f"machine load: loadavg {load['loadavg']['before']} -> {load['loadavg']['after']}; other processes' "
          f"CPU share during the runs: median {load['other_processes_cpu_pct']['median']}%, "
          f"max {load['other_processes_cpu_pct']['max']}%")
    print("\ntargets:")
    for t in report["targets"]:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']} ({t['where']})")
    for note in report["notes"]:
        print(f"  note: {note}")


def write_report(report: dict[str, Any], results_dir: Path, label: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["created"].replace(":", "").replace("-", "").replace("+0000", "Z")
    parts = [f"bench-{stamp}"] + (["quick"] if report["quick"] else []) + ([label] if label else [])
    path = results_dir / ("-".join(parts) + ".json")
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return path
