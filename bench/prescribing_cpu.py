"""CPU time per call of the prescribing services (order-select, order-sign), in process, beside patient-view.

    .venv/bin/python -m bench.prescribing_cpu             # 200 calls per case
    .venv/bin/python -m bench.prescribing_cpu --calls 50 --json out.json

The app is bench.profile's (production mode, a trusted RS384 client, the SQLite card log, JSON logs) and
is called through WSGI as gunicorn calls it, one call at a time, each with its own pre-signed JWT. The
bodies are the sandbox-shaped fixtures of fixtures/prescribing.py (fhirServer set to the bench client's
registered base), and the patient-view fixture of the same chart as the baseline measured in the same
run: report ratios, not absolute milliseconds, across machines.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench import generate
from bench.profile import build_app, call, environ_for
from bench.tokens import SigningKey, TokenMinter, audience

ROOT = Path(__file__).resolve().parents[1]
# (label, service id, request file): the baseline first.
CASES = (
    ("patient-view, chart 06 (baseline)", "fasciculation-cramp-review", "requests/06-thiazide-low-k.json"),
    ("order-select, quinine for cramp (1 card)", "twitch-cramp-prescribing-select",
     "requests/prescribing/rx01-quinine-cramp-select.json"),
    ("order-select, gabapentin before work-up (1 card, 3 orders)", "twitch-cramp-prescribing-select",
     "requests/prescribing/rx06-gabapentin-before-workup.json"),
    ("order-select, albuterol with cramp and low K (1 card)", "twitch-cramp-prescribing-select",
     "requests/prescribing/rx09-albuterol-cramp-low-potassium.json"),
    ("order-sign, unrelated medicine (no card, chart not read)", "twitch-cramp-prescribing-sign",
     "requests/prescribing/rx10-unrelated-medicine.json"),
    ("order-sign, carbamazepine in pregnancy (2 cards)", "twitch-cramp-prescribing-sign",
     "requests/prescribing/rx08-carbamazepine-in-pregnancy.json"),
)


def measure(calls: int) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-rx-"))
    key = SigningKey.generate("RS384")
    minters = {service_id: TokenMinter(key, audience(service_id), processes=1) for _, service_id, _ in CASES}
    try:
        app = build_app(workdir, key)
        results = []
        for label, service_id, relative in CASES:
            path = f"/cds-services/{service_id}"
            tokens = minters[service_id].mint(calls + 5)
            template = json.loads((ROOT / "fixtures" / relative).read_text())
            template["fhirServer"] = generate.FHIR_SERVER
            cpu, statuses = [], set()
            for number in range(calls + 5):  # the first five warm the caches, and are not counted
                template["hookInstance"] = str(uuid.uuid4())
                environ = environ_for(json.dumps(template).encode(), tokens[number])
                environ["PATH_INFO"] = path
                c0 = time.thread_time()
                status, _ = call(app, environ)
                if number >= 5:
                    cpu.append((time.thread_time() - c0) * 1000)
                statuses.add(status)
            if statuses != {"200 OK"}:
                raise RuntimeError(f"{label}: {statuses}")
            cpu.sort()
            results.append({"case": label, "calls": calls, "cpu_ms_median": round(statistics.median(cpu), 3),
                            "cpu_ms_p90": round(cpu[len(cpu) * 9 // 10], 3)})
        base = results[0]["cpu_ms_median"]
        for result in results:
            result["ratio_to_baseline"] = round(result["cpu_ms_median"] / base, 2)
        return results
    finally:
        for minter in minters.values():
            minter._pool.shutdown()  # noqa: SLF001
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args.calls)
    for result in results:
        print(f"{result['case']:<62} median {result['cpu_ms_median']:7.2f} ms  p90 {result['cpu_ms_p90']:7.2f} ms  "
              f"x{result['ratio_to_baseline']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
