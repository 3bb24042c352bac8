"""One source for every benchmark figure in the docs: the latest full run in bench/results/.

    .venv/bin/python -m bench.sizing            # show what the docs should say
    .venv/bin/python -m bench.sizing --write    # rewrite the generated blocks in the docs
    .venv/bin/python -m bench.sizing --check    # exit 1 when the docs and the latest run disagree

Two blocks are generated, each between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`:
`sizing` in docs/operations.md (CPU per call, calls per second per core, latency, memory per worker)
and `results` in docs/performance.md (every scenario and concurrency against the ceilings, in process,
targets). The README points to them and repeats no figure. tests/bench/test_sizing_docs.py fails when
a newer full run is committed without `--write`, or when someone edits a block by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DOCS = {"sizing": ROOT / "docs" / "operations.md", "results": ROOT / "docs" / "performance.md"}
SCENARIO_NAMES = {"a": "typical chart with cards (a)", "b": "2,000-result chart (b)",
                  "c": "no relevant symptom (c)", "d": "prefetch absent, 5 keys fetched (d)"}
SIZING_CONNECTIONS = 8  # what a pod under steady load sees; the sizing uses the runs at this concurrency


def is_full_run(report: dict[str, Any]) -> bool:
    services = {(r["scenario"], r["connections"]) for r in report.get("runs", []) if r["app"] == "service"}
    return (report.get("format") == 2 and not report.get("quick")
            and {("a", 1), ("c", 1), ("a", SIZING_CONNECTIONS), ("c", SIZING_CONNECTIONS)} <= services)


def latest_full_run(results_dir: Path = RESULTS_DIR) -> tuple[Path, dict[str, Any]]:
    runs = []
    for path in results_dir.glob("bench-*.json"):
        report = json.loads(path.read_text())
        if is_full_run(report):
            runs.append((report["created"], path, report))
    if not runs:
        raise SystemExit(f"no full benchmark run (format 2) in {results_dir}: run `python -m bench` first")
    _, path, report = max(runs)
    return path, report


def _service(report: dict[str, Any], scenario: str, connections: int) -> dict[str, Any] | None:
    return next((r for r in report["runs"] if r["app"] == "service" and r["scenario"] == scenario
                 and r["connections"] == connections and r["alg"] == "RS384"), None)


def _n(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _source(path: Path, report: dict[str, Any]) -> str:
    machine, load = report["machine"], report["machine_load"]
    label = f", label `{report['label']}`" if report.get("label") else ""
    return (f"From `bench/results/{path.name}` ({report['created'][:16].replace('T', ' ')} UTC{label}): "
            f"{machine['cpus']} cores ({machine['cpu_model'] or 'unknown CPU'}), Python {machine['python']}; "
            f"other processes used a median {_n(load['other_processes_cpu_pct']['median'])} % "
            f"(at most {_n(load['other_processes_cpu_pct']['max'])} %) of the machine's CPU during the runs, "
            f"load average {load['loadavg']['before'][0]} before and {load['loadavg']['after'][0]} after.")


def render_sizing(path: Path, report: dict[str, Any]) -> str:
    lines = [_source(path, report), "",
             f"| chart | server CPU per call ({SIZING_CONNECTIONS} connections) | calls/s per core "
             "| p50 at 1 connection | in-process CPU per call |",
             "|---|---|---|---|---|"]
    cpu: dict[str, float] = {}
    for scenario in ("a", "c", "b", "d"):
        run, alone = _service(report, scenario, SIZING_CONNECTIONS), _service(report, scenario, 1)
        if run is None or not run.get("server_cpu_ms_per_request"):
            continue
        cpu[scenario] = run["server_cpu_ms_per_request"]
        in_process = report["in_process"].get(scenario, {}).get("service", {}).get("cpu_ms_median")
        lines.append(f"| {SCENARIO_NAMES[scenario]} | {_n(cpu[scenario], 2)} ms | {_n(1000 / cpu[scenario], 0)} "
                     f"| {_n(alone['p50_ms'] if alone else None, 1)} ms | "
                     f"{_n(in_process, 2) + ' ms' if in_process else '-'} |")
    memory = report["worker_memory"]
    peak = max((w.get("vmhwm_mb", 0) for w in memory.get("after_b", [])), default=None)
    rest = max((w.get("vmrss_mb", 0) for w in memory.get("after_a", [])), default=None)
    lines += ["", f"Memory: {_n(rest, 0)} MB resident per worker after the typical charts, a peak of "
                  f"{_n(peak, 0)} MB per worker after the 2,000-result charts (VmHWM)."]
    if "a" in cpu and "c" in cpu:
        mixed = 0.1 * cpu["a"] + 0.9 * cpu["c"]
        lines += ["", f"Planning figure: if one chart opening in ten has a relevant symptom, a call costs "
                      f"0.1 × {_n(cpu['a'], 2)} + 0.9 × {_n(cpu['c'], 2)} = {_n(mixed, 2)} ms of CPU, so "
                      f"**one core answers about {_n(1000 / mixed, 0)} calls/s**. Divide the peak rate of chart "
                      f"openings by that, per core, and keep the headroom described below."]
    return "\n".join(lines)


def render_results(path: Path, report: dict[str, Any]) -> str:
    lines = [_source(path, report), "",
             "| scenario | conns | service calls/s | ceiling calls/s | ratio | no-parse calls/s | ratio "
             "| service p50 / p99 ms | ceiling p50 / p99 ms | server CPU ms per call: service / ceiling / no-parse "
             "| errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    runs = {(r["app"], r["scenario"], r["connections"], r["alg"]): r for r in report["runs"]}
    for ratio in report["ratios"]:
        key = (ratio["scenario"], ratio["connections"])
        service = runs[("service", *key, ratio["alg"])]
        ceiling = runs.get(("ceiling", *key, None), {})
        alg = "" if ratio["alg"] == "RS384" else f" ({ratio['alg']})"
        lines.append(
            f"| ({ratio['scenario']}){alg} | {ratio['connections']} | {_n(ratio['service_rps'])} | "
            f"{_n(ratio['ceiling_rps'], 0)} | {ratio['ratio']:.1%} | {_n(ratio['noparse_rps'], 0)} | "
            f"{ratio['noparse_ratio']:.1%} | {_n(service['p50_ms'])} / {_n(service['p99_ms'])} | "
            f"{_n(ceiling.get('p50_ms'))} / {_n(ceiling.get('p99_ms'))} | "
            f"{_n(ratio['service_cpu_ms_per_request'], 2)} / {_n(ratio['ceiling_cpu_ms_per_request'], 2)} / "
            f"{_n(ratio['noparse_cpu_ms_per_request'], 2)} | {service['errors']} |")
    if report["in_process"]:
        lines += ["", "In process (`bench.profile`, WSGI calls, each a different chart; CPU per call, median):", "",
                  "| scenario | charts | service | ceiling (parse) |", "|---|---|---|---|"]
        for name, figures in report["in_process"].items():
            lines.append(f"| ({name}) | {figures['service']['charts']} | {_n(figures['service']['cpu_ms_median'], 3)} ms "
                         f"| {_n(figures['ceiling']['cpu_ms_median'], 3)} ms |")
    lines += ["", "| target | where | value | limit | |", "|---|---|---|---|---|"]
    for target in report["targets"]:
        lines.append(f"| {target['target']} | {target['where']} | {target['value']} | {target['limit']} | "
                     f"{'met' if target['met'] else '**missed**'} |")
    trip = report["fhir_round_trip"].get("one_round_trip_ms")
    if trip:
        lines += ["", f"One FHIR round trip for (d), the slowest key's median: {trip} ms."]
    return "\n".join(lines)


RENDERERS = {"sizing": render_sizing, "results": render_results}


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- bench:{name}:begin -->)\n?(.*?)\n?(<!-- bench:{name}:end -->)", re.DOTALL)


def current_block(name: str) -> str | None:
    match = block_pattern(name).search(DOCS[name].read_text())
    return match.group(2) if match else None


def write_block(name: str, content: str) -> None:
    text = DOCS[name].read_text()
    pattern = block_pattern(name)
    if not pattern.search(text):
        raise SystemExit(f"{DOCS[name]}: no <!-- bench:{name}:begin --> ... end block to fill")
    DOCS[name].write_text(pattern.sub(lambda m: f"{m.group(1)}\n{content}\n{m.group(3)}", text, count=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated blocks in the docs")
    action.add_argument("--check", action="store_true", help="exit 1 when the docs differ from the latest run")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    path, report = latest_full_run(args.results_dir)
    stale = []
    for name, render in RENDERERS.items():
        content = render(path, report)
        if args.write:
            write_block(name, content)
        elif args.check:
            if current_block(name) != content:
                stale.append(f"{DOCS[name].relative_to(ROOT)} ({name})")
        else:
            print(f"--- {DOCS[name].relative_to(ROOT)}: {name}\n{content}\n")
    if stale:
        print(f"out of date with bench/results/{path.name}: {', '.join(stale)}; run `python -m bench.sizing --write`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
