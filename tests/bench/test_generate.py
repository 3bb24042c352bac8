"""The benchmark's charts (bench/generate.py): many different patients, each the question its scenario asks.

A benchmark that replays one chart measures whatever caches that chart; these tests keep the sets honest:
200 distinct patients per scenario, of one size class, varied the way EHR data varies, every call's
bytes its own once stamped, and every chart answered with the cards its scenario is built for.
"""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import date
from functools import cache

import orjson
import pytest

from bench import generate
from bench.generate import STAMP, build_set, stamped

AS_OF = date(2026, 11, 15)
COUNT = generate.DEFAULT_CHARTS


@cache
def chart_set(name: str, count: int = COUNT) -> tuple[generate.Scenario, ...]:
    return tuple(build_set(name, AS_OF, count))


def resources(request: dict) -> list[dict]:
    found = []
    for value in request["prefetch"].values():
        if value.get("resourceType") == "Bundle":
            found += [entry["resource"] for entry in value.get("entry", [])]
        else:
            found.append(value)
    return found


@pytest.mark.parametrize("name", ["a", "c", "d"])
def test_every_typical_chart_is_a_different_patient_of_the_same_size_class(name):
    charts = chart_set(name)
    assert len({c.request["context"]["patientId"] for c in charts}) == COUNT
    assert len({orjson.dumps(c.request) for c in charts}) == COUNT
    counts = [len(resources(c.request)) + len(c.fhir_resources) for c in charts]
    assert min(counts) >= 0.75 * statistics.median(counts) and max(counts) <= 1.25 * statistics.median(counts)


def test_the_large_charts_hold_2000_results_200_medicines_and_50_conditions():
    for chart in chart_set("b", 5):
        by_type = Counter(r["resourceType"] for r in resources(chart.request))
        assert by_type["Observation"] == 2000 and by_type["Condition"] == 50
        assert by_type["MedicationRequest"] + by_type["MedicationStatement"] == 200


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_a_stamp_makes_every_resource_of_every_call_differ(name):
    chart = chart_set(name, 3)[0]
    body = orjson.dumps(chart.request)
    first, second = orjson.loads(stamped(body, 1)), orjson.loads(stamped(body, 2))
    assert STAMP not in stamped(body, 1).decode()
    assert first["hookInstance"] != second["hookInstance"]
    assert first["context"]["patientId"] == first["prefetch"]["patient"]["id"] != second["context"]["patientId"]
    one, other = resources(first), resources(second)
    assert all(orjson.dumps(a) != orjson.dumps(b) for a, b in zip(one, other))


def test_d_patients_live_on_the_fhir_server_under_fixed_ids_and_only_the_hook_instance_is_stamped():
    chart = chart_set("d", 3)[1]
    assert chart.request["context"]["patientId"] == "bench-d0001"
    assert set(chart.request["prefetch"]) == set(generate.PREFETCH_KEYS) - set(generate.FETCHED_KEYS)
    assert orjson.dumps(chart.request).count(generate.STAMP_BYTES) == 1
    assert {r["resourceType"] for r in chart.fhir_resources} >= {"Patient", "Condition", "Observation",
                                                                 "MedicationRequest"}


def test_the_typical_charts_vary_as_ehr_data_does():
    charts = [resources(c.request) for c in chart_set("a")]
    observations = [r for chart in charts for r in chart if r["resourceType"] == "Observation"]
    forms = {(r["code"]["coding"][0]["code"], r.get("valueQuantity", {}).get("unit")) for r in observations}
    assert len(forms) >= 25  # LOINC codes and unit spellings of US and SI laboratories
    assert {r["status"] for r in observations} >= {"final", "amended", "corrected", "cancelled"}
    assert any("component" in r for r in observations)  # panels with their results as components
    medicines = [r for chart in charts for r in chart if r["resourceType"].startswith("Medication")]
    assert any("contained" in r for r in medicines) and any("medicationCodeableConcept" in r for r in medicines)
    assert len({frozenset(m.get("medicationCodeableConcept", m.get("medicationReference", {})).get("text", "")
                          for m in chart if m["resourceType"].startswith("Medication")) for chart in charts}) == COUNT
    systems = {coding["system"] for chart in charts for r in chart if r["resourceType"] == "Condition"
               for coding in r["code"]["coding"]}
    assert systems == {"http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct"}
    assert len({chart[0]["birthDate"] for chart in charts}) > COUNT * 0.9


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    from bench.profile import build_app
    from bench.tokens import SigningKey, TokenMinter, audience
    key = SigningKey.generate("RS384")
    app = build_app(tmp_path_factory.mktemp("bench-app"), key)
    minter = TokenMinter(key, audience(generate.SERVICE_ID), processes=1)
    yield app.test_client(), minter
    minter.close()


@pytest.mark.parametrize("name, count", [("a", COUNT), ("c", COUNT), ("b", 12)])
def test_every_chart_gets_the_cards_its_scenario_is_built_for(app_client, name, count):
    client, minter = app_client
    tokens = minter.mint(count)
    for number, (chart, token) in enumerate(zip(chart_set(name, count), tokens)):
        response = client.post(f"/cds-services/{generate.SERVICE_ID}",
                                data=stamped(orjson.dumps(chart.request), number),
                                content_type="application/json", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        topics = {card["source"]["topic"]["code"] for card in response.get_json()["cards"]}
        assert topics == generate.EXPECTED_TOPICS[name], (chart.index, sorted(topics))
