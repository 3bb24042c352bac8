"""The synthetic fixtures under fixtures/ are well-formed, consistent and reproducible.

Checks the generated files themselves (not the service): FHIR R4 validity (fhir.resources R4B models,
unknown fields forbidden), id uniqueness across every scenario, CDS Hooks request shape and prefetch
content, the expected-card vocabulary, and that ``python -m fixtures.build`` regenerates the committed
tree byte for byte.
"""
from __future__ import annotations

import json
import os
import re
import sys
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fhir.resources.R4B import get_fhir_model_class  # noqa: E402

from fixtures import build  # noqa: E402
from hooks.fasciculation_review import SERVICE as PATIENT_VIEW  # noqa: E402

FIXTURES = ROOT / "fixtures"
PATIENTS = FIXTURES / "patients"
REQUESTS = FIXTURES / "requests"
EXPECTED = FIXTURES / "expected"

SCENARIO_IDS = sorted(p.stem for p in EXPECTED.glob("*.json"))
# The request files carry exactly the keys the patient-view service declares (hooks/fasciculation_review.py).
PREFETCH_KEYS = set(PATIENT_VIEW.prefetch)
# Every patient-view card topic the knowledge defines (texts.yaml; the rx-* topics belong to the
# prescribing services, whose fixtures live in fixtures/*/prescribing/): each must be expected somewhere.
_TEXTS = yaml.safe_load((ROOT / "cards" / "knowledge" / "texts.yaml").read_text(encoding="utf-8"))
TOPICS = {topic for topic in _TEXTS["topics"] if not topic.startswith("rx-")}
INDICATORS = {"info", "warning", "critical"}
AS_OF = "2026-11-15T09:00:00Z"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
SCENARIO_ID = re.compile(r"^\d{2}[b-z]?-[a-z0-9]+(-[a-z0-9]+)*$")
# A coded suggestion, or (UK U&E and bone profile: no verified order code) a text-only one.
SUGGESTION = re.compile(r"^((http://loinc\.org|http://snomed\.info/sct)\|[0-9][0-9-]*|text\|.+)$")
UK_SCENARIOS = {"22-uk-locale-quinine", "46-uk-no-labs"}
DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def bundle_resources(sid: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in load(PATIENTS / f"{sid}.json")["entry"]]


def patient_of(sid: str) -> dict[str, Any]:
    patients = [r for r in bundle_resources(sid) if r["resourceType"] == "Patient"]
    assert len(patients) == 1, f"{sid}: exactly one Patient expected"
    return patients[0]


def references(value: Any) -> list[str]:
    """Every Reference.reference string inside a resource."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(references(item))
    return found


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def validate_resource(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


# ---------------------------------------------------------------------------
# Inventory
# ---------------------------------------------------------------------------


# Issue 13: each safety defect as a failing case and its safe neighbour (fixtures/safety_*.py).
SAFETY_SCENARIOS = {
    "39-renal-impairment-cramp", "39b-renal-normal-cramp", "40-high-potassium-calcium", "40b-low-ck-note",
    "41-free-t4-high-tsh-normal", "42-female-ck-sex-range", "42b-male-ck-sex-range", "43-ck-low-bound-only",
    "44-newer-preliminary-ck", "44b-newer-preliminary-ck-normal", "45-stale-abnormal-tsh", "45b-stale-ck-red-flag",
    "46-uk-no-labs", "47-partial-bmp", "48-order-names-other-tests", "48b-order-names-serum-tests",
    "49-suspected-als", "49b-suspected-health-anxiety", "49c-health-anxiety-workup-open", "50-foot-drop", "50b-old-hemiplegia",
    "51-generalised-fasciculation", "51b-calf-three-ways", "52-pregnancy-z34", "52b-pregnancy-status-observation",
    "52c-suspected-pregnancy", "53-weakness-not-detected", "53b-weakness-on-exam", "53c-weakness-code-negated-text",
    "54-fasciculation-not-seen", "55-rls-with-weakness", "56-already-on-gabapentin", "57-complex-chart-budget",
}
RULE_COVERAGE_SCENARIOS = {
    "23-facial-myokymia", "24-myokymia-diplopia", "25-blepharospasm", "26-widespread-fasciculation",
    "27-florid-fasciculation", "28-fasciculation-severe-cramp", "29-beta2-agonist", "30-cholinesterase-inhibitor",
    "31-steroid-high-dose", "31b-inhaled-budesonide", "32-existing-neuro-referral", "33-labs-already-ordered",
    "34-fasciculation-observation-only", "35-health-anxiety-recent", "36-cramp-low-sodium", "37-cramp-high-tsh",
    "38-subclinical-low-tsh",
}


def test_scenario_inventory():
    assert len(SCENARIO_IDS) == 79
    for folder in (PATIENTS, REQUESTS):
        assert sorted(p.stem for p in folder.glob("*.json")) == SCENARIO_IDS, folder.name
    assert all(SCENARIO_ID.match(sid) for sid in SCENARIO_IDS)
    assert {"01-benign-calf-twitch", "20-negative-no-symptom", "21-existing-als", "22-uk-locale-quinine"} <= set(SCENARIO_IDS)
    assert RULE_COVERAGE_SCENARIOS <= set(SCENARIO_IDS) and SAFETY_SCENARIOS <= set(SCENARIO_IDS)
    assert [scn.sid for scn in build.build_scenarios()] == SCENARIO_IDS


def test_every_topic_is_expected_somewhere():
    """Every card topic (and the no-cards outcome) is the expected result of at least one scenario."""
    seen = set()
    empty = []
    for sid in SCENARIO_IDS:
        cards = load(EXPECTED / f"{sid}.json")["cards"]
        seen |= {c["topic"] for c in cards}
        if not cards:
            empty.append(sid)
    assert seen == TOPICS
    assert empty, "at least one scenario must expect no cards"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_is_json_with_trailing_newline(path: Path):
    text = path.read_text(encoding="utf-8")
    json.loads(text)
    assert text.endswith("}\n") and not text.endswith("\n\n")


def test_no_reference_to_shared_material():
    for path in [*FIXTURES.rglob("*.json"), *FIXTURES.rglob("*.py"), FIXTURES / "README.md"]:
        text = path.read_text(encoding="utf-8")
        assert "/work/shared" not in text and "../shared" not in text, path


# ---------------------------------------------------------------------------
# Patient bundles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_transaction_bundle_is_valid_fhir(sid: str):
    bundle = load(PATIENTS / f"{sid}.json")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient", "Patient first, before what references it"
    pid = patient_of(sid)["id"]
    own = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    full_urls = set()
    for entry in bundle["entry"]:
        assert set(entry) == {"fullUrl", "resource", "request"}
        resource = entry["resource"]
        validate_resource(resource)
        assert FHIR_ID.match(resource["id"]), resource["id"]
        assert resource["id"].startswith(f"s{sid.split('-')[0]}-"), resource["id"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert entry["fullUrl"].startswith("urn:uuid:")
        uuid.UUID(entry["fullUrl"].removeprefix("urn:uuid:"))
        full_urls.add(entry["fullUrl"])
        if resource["resourceType"] != "Patient":
            assert resource.get("subject") == {"reference": f"Patient/{pid}"}, resource["id"]
        for ref in references(resource):
            assert ref in own, f"{resource['id']} references {ref}, which is not in the bundle"
    assert len(full_urls) == len(bundle["entry"])


def test_resource_ids_unique_across_all_scenarios():
    seen: dict[str, str] = {}
    for sid in SCENARIO_IDS:
        for resource in bundle_resources(sid):
            assert resource["id"] not in seen, f"{resource['id']} in {seen.get(resource['id'])} and {sid}"
            seen[resource["id"]] = sid


def test_patients_are_distinct_synthetic_adults_or_marked_minor():
    names, mrns = set(), set()
    for sid in SCENARIO_IDS:
        patient = patient_of(sid)
        name = patient["name"][0]
        full = (tuple(name["given"]), name["family"])
        assert name["family"].startswith("Fixture-"), "names must be recognisably synthetic"
        [identifier] = patient["identifier"]
        assert identifier["system"] == "urn:oid:2.16.840.1.113883.19.5"
        assert identifier["value"].startswith("MRN-FX-")
        assert full not in names and identifier["value"] not in mrns
        names.add(full)
        mrns.add(identifier["value"])
        assert patient["gender"] in {"male", "female"}
        age = build.age_at_as_of(patient["birthDate"])
        assert (age < 18) == (sid == "01b-adolescent-twitch"), (sid, age)


def test_no_date_after_as_of():
    limit = datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    for sid in SCENARIO_IDS:
        for text in strings(load(PATIENTS / f"{sid}.json")):
            if DATE_LIKE.match(text):
                moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else None
                if moment is None:
                    assert date.fromisoformat(text) <= limit.date(), (sid, text)
                else:
                    assert moment <= limit, (sid, text)


def test_conditions_carry_icd10cm_and_statuses():
    for sid in SCENARIO_IDS:
        for r in bundle_resources(sid):
            if r["resourceType"] != "Condition":
                continue
            systems = [c["system"] for c in r["code"]["coding"]]
            assert "http://hl7.org/fhir/sid/icd-10-cm" in systems, r["id"]
            assert r["clinicalStatus"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/condition-clinical"
            assert r["verificationStatus"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/condition-ver-status"
            assert "onsetDateTime" in r and "recordedDate" in r


def test_no_date_on_a_window_edge():
    """README: no fixture date sits on the 12-month, 6-month or 30-day window edge."""
    edges = {build.ago(months=12), build.ago(months=6), build.ago(days=30)}
    for sid in SCENARIO_IDS:
        for text in strings(load(PATIENTS / f"{sid}.json")):
            if DATE_LIKE.match(text):
                assert text[:10] not in edges, (sid, text)


def test_medications_are_coded_with_rxnorm_or_atc_and_text():
    systems = {"http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc"}
    for sid in SCENARIO_IDS:
        for r in bundle_resources(sid):
            if r["resourceType"] in ("MedicationRequest", "MedicationStatement"):
                med = r["medicationCodeableConcept"]
                assert med["coding"] and med["text"], r["id"]
                assert {c["system"] for c in med["coding"]} <= systems, r["id"]


def test_lab_quantities_use_ucum_system():
    for sid in SCENARIO_IDS:
        for r in bundle_resources(sid):
            if r["resourceType"] == "Observation":
                coded = "valueCodeableConcept" in r  # a pregnancy status (52b) or an exam finding
                assert ("valueQuantity" in r) != ("dataAbsentReason" in r) or coded or \
                    r["code"]["coding"][0]["system"] == build.SCT
                if "valueQuantity" in r:
                    assert r["valueQuantity"]["system"] == "http://unitsofmeasure.org", r["id"]


# ---------------------------------------------------------------------------
# CDS Hooks requests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_request_shape_and_prefetch(sid: str):
    request = load(REQUESTS / f"{sid}.json")
    patient = patient_of(sid)
    pid = patient["id"]
    assert list(request) == ["hookInstance", "hook", "fhirServer", "context", "prefetch"]
    assert request["hook"] == "patient-view"
    assert request["fhirServer"] == "https://ehr.example.org/fhir/R4"
    assert request["context"] == {"userId": "Practitioner/dr-fixture", "patientId": pid}
    assert "fhirAuthorization" not in request
    prefetch = request["prefetch"]
    assert set(prefetch) == PREFETCH_KEYS
    assert prefetch["patient"] == patient
    validate_resource(prefetch["patient"])

    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in bundle_resources(sid)}
    prefetched: set[str] = {f"Patient/{pid}"}
    for key in PREFETCH_KEYS - {"patient"}:
        bundle = prefetch[key]
        get_fhir_model_class("Bundle").model_validate(bundle)
        assert bundle["type"] == "searchset"
        entries = bundle.get("entry")
        if bundle["total"] == 0:
            assert "entry" not in bundle, f"{key}: an empty searchset has no entry key"
            continue
        assert len(entries) == bundle["total"]
        for entry in entries:
            resource = entry["resource"]
            ref = f"{resource['resourceType']}/{resource['id']}"
            assert entry["fullUrl"] == f"https://ehr.example.org/fhir/R4/{ref}"
            assert entry["search"] == {"mode": "match"}
            assert resource.get("subject") == {"reference": f"Patient/{pid}"}, "only this patient's data"
            assert by_ref.get(ref) == resource, f"{ref} must be identical to the patient bundle copy"
            assert build.prefetch_key_for(resource) == key
            assert ref not in prefetched
            prefetched.add(ref)
        if key in ("observations", "findings"):
            dates = [e["resource"]["effectiveDateTime"] for e in entries]
            assert dates == sorted(dates, reverse=True), f"{key} sorted by date descending"
        if key == "serviceRequests":
            assert all(e["resource"]["status"] == "active" for e in entries)
    # completeness: everything the service's queries would return is prefetched
    for ref, resource in by_ref.items():
        if build.prefetch_key_for(resource) is not None:
            assert ref in prefetched, f"{ref} missing from the prefetch"


def test_prefetch_key_mapping():
    loinc_obs = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]}}
    sct_obs = {"resourceType": "Observation", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "446841001"}]}}
    assert build.prefetch_key_for(loinc_obs) == "observations"
    assert build.prefetch_key_for(sct_obs) == "findings"
    assert build.prefetch_key_for({"resourceType": "ServiceRequest", "status": "active"}) == "serviceRequests"
    assert build.prefetch_key_for({"resourceType": "ServiceRequest", "status": "revoked"}) is None
    assert build.prefetch_key_for({"resourceType": "Encounter"}) is None


def test_hook_instances_are_unique_uuid4():
    seen = set()
    for sid in SCENARIO_IDS:
        value = load(REQUESTS / f"{sid}.json")["hookInstance"]
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4
        assert value not in seen
        seen.add(value)


# ---------------------------------------------------------------------------
# Expected cards
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_expected_file(sid: str):
    doc = load(EXPECTED / f"{sid}.json")
    assert list(doc) == ["scenario", "title", "asOf", "locale", "cards", "rationale"]
    assert doc["scenario"] == sid
    assert doc["asOf"] == AS_OF
    assert doc["locale"] == ("UK" if sid in UK_SCENARIOS else "US")
    assert doc["title"] and doc["rationale"]
    topics = [c["topic"] for c in doc["cards"]]
    assert len(topics) == len(set(topics)), "one card per topic"
    for c in doc["cards"]:
        assert set(c) <= {"topic", "indicator", "suggestions", "contains", "excludes"}
        for key in ("contains", "excludes"):
            assert all(isinstance(text, str) and text for text in c.get(key, [])), (sid, key)
        assert c["topic"] in TOPICS
        assert c["indicator"] in INDICATORS
        if "suggestions" in c:
            assert c["suggestions"], "omit the key instead of an empty list"
            assert c["suggestions"] == sorted(set(c["suggestions"]))
            assert all(SUGGESTION.match(s) for s in c["suggestions"]), c["suggestions"]


def test_expected_cards_follow_contract_rules():
    """Cross-scenario invariants of the card rules (not a re-implementation of them)."""
    for sid in SCENARIO_IDS:
        cards = {c["topic"]: c for c in load(EXPECTED / f"{sid}.json")["cards"]}
        if "neurology-referral" in cards:
            assert "reassurance" not in cards and "treatment-options" not in cards, sid
        if cards.keys() & {"abnormal-result", "workup-incomplete", "data-gap"}:
            assert "reassurance" not in cards, sid
        if "treatment-options" in cards:  # only beside reassurance (issue 13 item 15)
            assert "reassurance" in cards, sid
        assert len(cards) <= 6 or sid == "57-complex-chart-budget" and len(cards) == 6, sid  # the alert budget
        if "workup-incomplete" in cards and not cards["workup-incomplete"].get("suggestions"):
            # Without suggestions the card says why: everything is ordered, pending or unreadable.
            assert cards["workup-incomplete"].get("contains"), sid
        # An abnormal-result card of notes only is informational (issue 13 item 1); warnings otherwise.
        fixed = {"quinine-caution": "warning", "workup-incomplete": "info"}
        for topic, indicator in fixed.items():
            if topic in cards:
                assert cards[topic]["indicator"] == indicator, (sid, topic)
        # Nothing is suggested twice: an active order on the chart is never suggested again.
        active_orders = {
            f"{coding['system']}|{coding['code']}"
            for entry in load(REQUESTS / f"{sid}.json")["prefetch"]["serviceRequests"].get("entry", [])
            for coding in entry["resource"]["code"]["coding"]
        }
        for c in cards.values():
            assert not active_orders & set(c.get("suggestions", [])), (sid, c["topic"])


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------


def test_regeneration_is_byte_identical(tmp_path: Path):
    assert build.main(["--out", str(tmp_path)]) == 0
    generated = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(FIXTURES).as_posix()
        for sub in build.OUTPUT_SUBDIRS
        for p in (FIXTURES / sub).glob("*.json")
    ) + ["README.md"]
    assert generated == sorted(committed)
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), f"{rel} is stale: run python -m fixtures.build"


# ---------------------------------------------------------------------------
# Loadable into a real FHIR server (in-memory test server; skipped without Node.js)
# ---------------------------------------------------------------------------


@pytest.mark.integration
def test_bundles_load_into_one_fhir_server_and_searches_match_prefetch(request: pytest.FixtureRequest):
    try:
        server = request.getfixturevalue("clean_fhir_server")
    except pytest.FixtureLookupError:
        if os.environ.get("CI"):
            pytest.fail("FHIR test-server plugin (tests.fhirserver) not available in CI")
        pytest.skip("FHIR test-server plugin (tests.fhirserver) not available")
    import requests

    for sid in SCENARIO_IDS:
        server.load_bundle(load(PATIENTS / f"{sid}.json"))
    base = server.base_url

    def search(resource_type: str, **params: Any) -> list[dict[str, Any]]:
        resp = requests.get(f"{base}/{resource_type}", params={"_count": 200, **params}, timeout=30)
        resp.raise_for_status()
        return [e["resource"] for e in resp.json().get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]

    def ids(resources: list[dict[str, Any]]) -> list[str]:
        return [r["id"] for r in resources]

    for sid in SCENARIO_IDS:
        prefetch = load(REQUESTS / f"{sid}.json")["prefetch"]
        pid = prefetch["patient"]["id"]
        resp = requests.get(f"{base}/Patient/{pid}", timeout=30)
        assert resp.status_code == 200 and resp.json()["id"] == pid, "ids are kept"

        def prefetched(key: str) -> list[str]:
            return [e["resource"]["id"] for e in prefetch[key].get("entry", [])]

        observations = search("Observation", patient=pid, _sort="-date")
        got = {
            "conditions": ids(search("Condition", patient=pid)),
            "observations": [r["id"] for r in observations if build.prefetch_key_for(r) == "observations"],
            "findings": [r["id"] for r in observations if build.prefetch_key_for(r) == "findings"],
            "medicationStatements": ids(search("MedicationStatement", patient=pid)),
            "medicationRequests": ids(search("MedicationRequest", patient=pid)),
            "serviceRequests": ids(search("ServiceRequest", patient=pid, status="active")),
        }
        for key, found in got.items():
            if key in ("observations", "findings"):
                assert found == prefetched(key), (sid, key)
            else:
                assert sorted(found) == sorted(prefetched(key)), (sid, key)
