"""The benchmark's requests: for each scenario, a set of distinct synthetic patients of one size class.

    .venv/bin/python -m bench.generate --out DIR [--charts 200] [--as-of 2026-11-21] [--scenarios a,c]

Each scenario is a clinical question asked of many different patients (bench/charts.py makes them look
like what EHRs send), so a cache of anything derived from a chart cannot answer a repeat: the load
cycles through the set, and on top of that every call carries a patient id and hookInstance of its own
(`STAMP`, filled in per call by the load generator and by `stamped()`), so no two calls of a run send
the same resource twice. Dates are relative to `--as-of` (default: today, UTC), so the charts never age;
the same as-of date and chart number give the same bytes (seeded generators, no clock, no uuid4).

Scenarios
    a  typical chart, full prefetch: ~60 lab results over the analytes the rules read (with a panel or
       two), ~10 medicines (a diuretic and an inhaled beta-agonist current), ~5 Conditions (fasciculation
       and cramp): abnormal potassium, work-up incomplete, medication review, cramp management
    b  large chart, full prefetch: 2,000 results over 15 years, 200 medicines, 50 Conditions
    c  the typical chart without a relevant symptom (what most chart openings are): no card
    d  prefetch absent: the request supplies `patient` and `findings`; the service fetches the other 5
       keys from `fhirServer` (each patient's chart of the (a) kind, loaded into the FHIR test server)
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import vocabulary as v
from bench.charts import Chart, ChartMaker
from hooks.fasciculation_review import SERVICE

SERVICE_ID = SERVICE.id
FHIR_SERVER = "https://ehr.bench.example/fhir/R4"
USER_ID = "Practitioner/bench-clinician"
PREFETCH_KEYS = tuple(SERVICE.prefetch)  # patient, conditions, observations, findings, medication*, serviceRequests
FETCHED_KEYS = ("conditions", "observations", "medicationStatements", "medicationRequests", "serviceRequests")
DEFAULT_CHARTS = 200

# Twelve characters replaced in each call by twelve hex digits of its own (bench/post.lua, stamped()).
STAMP = "@@@@@@@@@@@@"
STAMP_BYTES = STAMP.encode()

SCENARIOS = ("a", "b", "c", "d")
TITLES = {
    "a": "typical chart, full prefetch (~60 results, ~10 medicines, ~5 Conditions)",
    "b": "large chart, full prefetch (2,000 results, 200 medicines, 50 Conditions)",
    "c": "no relevant symptom (the typical chart without fasciculation or cramp)",
    "d": "prefetch absent: 5 keys fetched from a FHIR server adding 100 ms per response",
}
# What every chart of a scenario must be answered with (checked by bench/run.py before measuring).
EXPECTED_TOPICS = {
    "a": {"abnormal-result", "workup-incomplete", "medication-review", "cramp-management"},
    "b": {"abnormal-result", "medication-review", "cramp-management"},
    "c": set(),
    "d": {"abnormal-result", "workup-incomplete", "medication-review", "cramp-management"},
}


# -- the chart shapes ----------------------------------------------------------------------------------

def typical_chart(maker: ChartMaker, *, symptomatic: bool) -> Chart:
    """~60 results, ~10 medicines, ~5 Conditions; the newest potassium is low while a diuretic is current,
    TSH and magnesium are old and CK was never measured."""
    rnd = maker.random
    chart = Chart(maker.patient(rnd.randrange(25, 81), rnd.choice(("female", "male"))))
    if symptomatic:
        fasciculation = rnd.choice(v.FASCICULATION)
        cramp = rnd.choice(v.CRAMP)
        chart.add("conditions", maker.condition(fasciculation, rnd.randrange(30, 150),
                                                text=rnd.choice(v.SYMPTOM_TEXTS["fasciculation"])))
        chart.add("conditions", maker.condition(cramp, rnd.randrange(20, 120),
                                                text=rnd.choice(v.SYMPTOM_TEXTS["cramp"])))
    for _ in range(rnd.randrange(3, 6) if symptomatic else rnd.randrange(4, 7)):
        chart.add("conditions", maker.unrelated_condition(rnd.randrange(200, 4000)))

    labs: list[dict[str, Any]] = []
    newest = rnd.randrange(7, 45)
    panels = rnd.randrange(8, 11)
    with_component_panel = set(rnd.sample(range(1, panels), 2))
    for panel in range(panels):
        days_ago = newest + panel * rnd.randrange(100, 140)
        values = {}
        for analyte in ("sodium", "potassium", "urea", "creatinine", "calcium", "albumin"):
            value = round(rnd.uniform(3.0, 3.3), 1) if analyte == "potassium" and panel == 0 else None
            result = maker.lab(analyte, days_ago, value, older=panel > 0)
            labs.append(result)
            values[analyte] = result.get("valueQuantity", {}).get("value")
        if panel in with_component_panel and None not in values.values():
            labs.append(maker.panel(v.ELECTROLYTE_PANEL, days_ago, values))
    for index in range(2):
        days_ago = rnd.randrange(500, 700) + 300 * index
        for analyte in ("tsh", "free_t4", "magnesium"):
            labs.append(maker.lab(analyte, days_ago, older=True))
    for resource in sorted(labs, key=lambda r: r["effectiveDateTime"], reverse=True):
        chart.add("observations", resource)

    chart.add("medicationRequests", maker.medication_request(rnd.choice(v.DIURETICS), "active",
                                                             rnd.randrange(60, 400), may_reference=False))
    chart.add("medicationRequests", maker.medication_request(rnd.choice(v.BETA_AGONISTS), "active",
                                                             rnd.randrange(30, 300), may_reference=False))
    others = rnd.sample(v.OTHER_MEDICINES, rnd.randrange(7, 11))
    for index, medicine in enumerate(others):
        if index % 2 == 0:
            status = rnd.choices(("active", "completed", "stopped", "on-hold"), (6, 2, 1, 1))[0]
            chart.add("medicationRequests", maker.medication_request(medicine, status, rnd.randrange(30, 1500)))
        else:
            status = rnd.choices(("active", "completed", "stopped", "intended"), (5, 3, 1, 1))[0]
            chart.add("medicationStatements", maker.medication_statement(medicine, status, rnd.randrange(60, 2000)))
    for order in rnd.sample(v.OTHER_ORDERS, rnd.randrange(0, 3)):
        chart.add("serviceRequests", maker.service_request(order, rnd.randrange(1, 60)))
    return chart


def large_chart(maker: ChartMaker) -> Chart:
    """2,000 results over 15 years (the laboratory's forms changing over time), 200 medicines,
    50 Conditions; the newest potassium low while a diuretic is current."""
    rnd = maker.random
    chart = Chart(maker.patient(rnd.randrange(55, 86), rnd.choice(("female", "male"))))
    chart.add("conditions", maker.condition(rnd.choice(v.FASCICULATION), rnd.randrange(40, 150),
                                            text=rnd.choice(v.SYMPTOM_TEXTS["fasciculation"])))
    chart.add("conditions", maker.condition(rnd.choice(v.CRAMP), rnd.randrange(20, 120),
                                            text=rnd.choice(v.SYMPTOM_TEXTS["cramp"])))
    chart.add("conditions", maker.condition(v.ASTHMA, rnd.randrange(2000, 5000)))
    for index in range(47):
        chart.add("conditions", maker.unrelated_condition(150 + 110 * index + rnd.randrange(0, 100)))
    labs: list[dict[str, Any]] = []
    analytes = list(v.LATEST)
    for index in range(2000):
        analyte = analytes[index % len(analytes)]
        days_ago = 5 + (index // len(analytes)) * 27 + rnd.randrange(0, 5)
        value = round(rnd.uniform(3.0, 3.3), 1) if analyte == "potassium" and index < len(analytes) else None
        labs.append(maker.lab(analyte, days_ago, value, older=index >= len(analytes)))
    for resource in sorted(labs, key=lambda r: r["effectiveDateTime"], reverse=True):
        chart.add("observations", resource)
    chart.add("medicationRequests", maker.medication_request(rnd.choice(v.DIURETICS), "active", rnd.randrange(60, 400),
                                                             may_reference=False))
    chart.add("medicationRequests", maker.medication_request(rnd.choice(v.BETA_AGONISTS), "active",
                                                             rnd.randrange(30, 300), may_reference=False))
    chart.add("medicationRequests", maker.medication_request(v.CORTICOSTEROIDS[0], "completed",
                                                             rnd.randrange(900, 3000), may_reference=False))
    for index in range(117):
        status = "active" if index % 9 == 0 else rnd.choice(("completed", "stopped"))
        chart.add("medicationRequests", maker.medication_request(rnd.choice(v.OTHER_MEDICINES), status,
                                                                 60 + 45 * index + rnd.randrange(0, 40)))
    for index in range(80):
        status = "active" if index % 8 == 0 else "completed"
        chart.add("medicationStatements", maker.medication_statement(rnd.choice(v.OTHER_MEDICINES), status,
                                                                     90 + 60 * index + rnd.randrange(0, 50)))
    for order in rnd.sample(v.OTHER_ORDERS, rnd.randrange(0, 3)):
        chart.add("serviceRequests", maker.service_request(order, rnd.randrange(1, 60)))
    return chart


# -- requests ------------------------------------------------------------------------------------------

def searchset(resources: list[dict[str, Any]], base: str) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                              "link": [{"relation": "self", "url": f"{base}/_search"}]}
    if resources:
        bundle["entry"] = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in resources]
    return bundle


def request_for(chart: Chart, hook_instance: str, *, prefetch_keys: tuple[str, ...] = PREFETCH_KEYS,
                fhir_server: str = FHIR_SERVER) -> dict[str, Any]:
    prefetch: dict[str, Any] = {}
    for key in prefetch_keys:
        prefetch[key] = chart.patient if key == "patient" else searchset(chart.by_key.get(key, []), fhir_server)
    return {
        "hook": "patient-view",
        "hookInstance": hook_instance,
        "fhirServer": fhir_server,
        "context": {"userId": USER_ID, "patientId": chart.patient["id"]},
        "prefetch": prefetch,
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    index: int  # which patient of the scenario's set
    title: str
    request: dict[str, Any]
    fhir_resources: list[dict[str, Any]] = field(default_factory=list)  # (d): what the FHIR server holds
    fetched_keys: tuple[str, ...] = ()


def build(name: str, as_of: date, index: int = 0, *, fhir_server_for_d: str = "http://127.0.0.1:8089/fhir/R4",
          fhir_authorization: dict[str, Any] | None = None) -> Scenario:
    """Patient number `index` of scenario `name`. Its patient id (and hookInstance) end in STAMP, except
    in (d), whose patients live on the FHIR server under a fixed id (and whose request carries
    `fhir_authorization`, the token for that server)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}")
    prefix = f"{name}{index:04d}"
    patient_id = f"bench-{prefix}" + ("" if name == "d" else f"-{STAMP}")
    hook_instance = f"b{ord(name):07x}-{index:04x}-4000-8000-{STAMP}"
    maker = ChartMaker(patient_id, prefix, as_of, seed=ord(name) * 100_003 + index, quirks=name != "d")
    if name == "b":
        return Scenario(name, index, TITLES[name], request_for(large_chart(maker), hook_instance))
    chart = typical_chart(maker, symptomatic=name != "c")
    if name == "d":
        supplied = tuple(key for key in PREFETCH_KEYS if key not in FETCHED_KEYS)
        request = request_for(chart, hook_instance, prefetch_keys=supplied, fhir_server=fhir_server_for_d)
        if fhir_authorization:
            request["fhirAuthorization"] = fhir_authorization
        return Scenario(name, index, TITLES[name], request, fhir_resources=chart.resources(), fetched_keys=FETCHED_KEYS)
    return Scenario(name, index, TITLES[name], request_for(chart, hook_instance))


def build_set(name: str, as_of: date, count: int = DEFAULT_CHARTS, **kwargs: Any) -> Iterator[Scenario]:
    for index in range(count):
        yield build(name, as_of, index, **kwargs)


def stamped(body: bytes, stamp: int) -> bytes:
    """The body of one call: STAMP replaced by `stamp` as twelve hex digits (as bench/post.lua does)."""
    return body.replace(STAMP_BYTES, f"{stamp:012x}".encode())


def write(scenario: Scenario, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario.name}-{scenario.index:04d}.json"
    path.write_bytes(orjson.dumps(scenario.request))
    return path


@dataclass(frozen=True)
class ChartSet:
    """The request files of one scenario, and a manifest listing them (one path a line) for wrk."""

    name: str
    title: str
    files: list[Path]
    manifest: Path
    fetched_keys: tuple[str, ...] = ()

    @property
    def sizes(self) -> list[int]:
        return [path.stat().st_size for path in self.files]


def write_set(name: str, as_of: date, count: int, directory: Path, *,
              fhir_servers: list[tuple[str, Any]] | None = None, **kwargs: Any) -> ChartSet:
    """Write `count` request files for scenario `name` (kwargs: as build()). For (d), fhir_servers
    lists (base URL, load(resources)) pairs: patient i lives on server i modulo their number."""
    files = []
    fetched: tuple[str, ...] = ()
    for index in range(count):
        base, load = fhir_servers[index % len(fhir_servers)] if fhir_servers else (None, None)
        scenario = build(name, as_of, index, **({"fhir_server_for_d": base} if base else {}), **kwargs)
        files.append(write(scenario, directory / name))
        fetched = scenario.fetched_keys
        if load is not None and scenario.fhir_resources:
            load(scenario.fhir_resources)
    manifest = directory / f"{name}.manifest"
    manifest.write_text("".join(f"{path}\n" for path in files))
    return ChartSet(name, TITLES[name], files, manifest, fetched)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--charts", type=int, default=DEFAULT_CHARTS, help="patients per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--fhir-server", default="http://127.0.0.1:8089/fhir/R4", help="fhirServer of scenario (d)")
    args = parser.parse_args(argv)
    for name in args.scenarios.split(","):
        chart_set = write_set(name, args.as_of, args.charts, args.out, fhir_server_for_d=args.fhir_server)
        sizes = chart_set.sizes
        print(f"{chart_set.manifest}  {len(sizes)} charts, {min(sizes):,}-{max(sizes):,} bytes  {chart_set.title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
