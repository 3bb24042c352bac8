"""Hypothesis strategies for FHIR-shaped JSON: valid-looking resources the rules read, broken ones,
and anything at all, with dates in every FHIR precision and time zone."""
from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from cards import FINDING_CODES, LAB_LOINC_CODES, load_knowledge

_KNOWLEDGE = load_knowledge()
SYSTEM_URIS = {short: uri for uri, short in _KNOWLEDGE.system_by_uri.items()}
CONCEPT_CODINGS = sorted({(SYSTEM_URIS.get(system, system), code) for system, code in _KNOWLEDGE.concept_by_code})
RXNORM = sorted(_KNOWLEDGE.ingredients_by_rxnorm)
ATC = sorted(_KNOWLEDGE.ingredients_by_atc)
UNITS = sorted({*_KNOWLEDGE.unit_aliases, *_KNOWLEDGE.unit_aliases.values(), "kg", "%", "mmHg", "", "1", "{ratio}"})
RESOURCE_TYPES = ("Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "ServiceRequest",
                  "Bundle", "OperationOutcome", "Encounter", "AllergyIntolerance", "Procedure", "Basic")

# -- JSON of any shape ---------------------------------------------------------------------------

HUGE_STRINGS = st.builds(lambda char, size: char * size, st.characters(codec="utf-8"), st.integers(2_000, 100_000))
STRINGS = st.one_of(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40), st.text(max_size=40),
                    st.sampled_from(["", " ", "null", "None", "<b>x</b>", "\n", "\x00"]), HUGE_STRINGS)
NUMBERS = st.one_of(st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([0, -0.0, 1e308, -1e-308, 0.1, 2 ** 53 + 1]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                    max_leaves=12)


def deeply_nested(value: Any, depth: int) -> Any:
    for index in range(depth):
        value = [value] if index % 2 else {"nested": value}
    return value


DEEP = st.builds(deeply_nested, JSON, st.integers(50, 400))
ANYTHING = st.one_of(JSON, DEEP)

# -- dates in every FHIR precision ---------------------------------------------------------------

ZONES = st.one_of(st.just("Z"), st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                                          st.integers(0, 14), st.sampled_from([0, 30, 45])))


@st.composite
def fhir_dates(draw) -> str:
    """FHIR date, dateTime or instant at year, month, day, minute-less, second and fraction precision."""
    year = draw(st.integers(1, 9999))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    precision = draw(st.sampled_from(["year", "month", "day", "seconds", "fraction"]))
    if precision == "year":
        return f"{year:04d}"
    if precision == "month":
        return f"{year:04d}-{month:02d}"
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if precision == "day":
        return date
    time = f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}"
    if precision == "fraction":
        time += "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=1, max_size=9)))
    return f"{date}T{time}{draw(ZONES)}"


RECENT_DATES = st.builds(lambda d, zone: f"2026-{d // 28 + 1:02d}-{d % 28 + 1:02d}T08:30:00{zone}",
                         st.integers(0, 28 * 11 - 1), ZONES)
DATES = st.one_of(fhir_dates(), RECENT_DATES, st.sampled_from(["2026", "2026-11", "2026-11-14", "not a date",
                                                               "2026-13-45", "2026-11-15T25:00:00Z"]), STRINGS)


def maybe(strategy, other=ANYTHING):
    """Usually the well-typed value, sometimes something of another type, sometimes nothing."""
    return st.one_of(strategy, strategy, strategy, other, st.just(_MISSING))


_MISSING = object()


def resource(resource_type: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, **{k: v for k, v in fields.items() if v is not _MISSING}}


def codeable(codings) -> Any:
    return st.builds(lambda pairs, text: {"coding": [{"system": s, "code": c} for s, c in pairs],
                                          **({"text": text} if text is not None else {})},
                     st.lists(codings, max_size=3), st.one_of(st.none(), st.text(max_size=20)))


QUANTITY = st.builds(lambda value, unit, comparator: {k: v for k, v in {
    "value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit,
    "comparator": comparator}.items() if v is not _MISSING},
    maybe(NUMBERS), maybe(st.sampled_from(UNITS)), st.one_of(st.just(_MISSING), st.sampled_from(["<", ">", "<=", "x"])))
STATUS = st.sampled_from(["final", "amended", "corrected", "preliminary", "entered-in-error", "cancelled",
                          "active", "completed", "stopped", "unknown", "draft", "on-hold", ""])
SUBJECT = maybe(st.sampled_from([{"reference": "Patient/p1"}, {"reference": "Patient/other"}, {}]))


def patients():
    return st.builds(lambda birth, gender, pid: resource("Patient", id=pid, birthDate=birth, gender=gender),
                     maybe(DATES), maybe(st.sampled_from(["male", "female", "other", "unknown"])),
                     maybe(st.sampled_from(["p1", "p2"])))


def conditions():
    return st.builds(
        lambda code, clinical, verification, onset, severity, subject: resource(
            "Condition", code=code, clinicalStatus=clinical, verificationStatus=verification, onsetDateTime=onset,
            severity=severity, subject=subject),
        maybe(codeable(st.sampled_from(CONCEPT_CODINGS))),
        maybe(codeable(st.sampled_from([("http://terminology.hl7.org/CodeSystem/condition-clinical", c)
                                        for c in ("active", "recurrence", "resolved", "inactive", "x")]))),
        maybe(codeable(st.sampled_from([("http://terminology.hl7.org/CodeSystem/condition-ver-status", c)
                                        for c in ("confirmed", "provisional", "refuted", "entered-in-error")]))),
        maybe(DATES), maybe(codeable(st.sampled_from([("http://snomed.info/sct", c) for c in
                                                      ("24484000", "6736007", "255604002")]))), SUBJECT)


def observations():
    """Valid-looking laboratory and finding Observations: the codes the rules read, random units and dates."""
    codes = st.one_of(st.sampled_from([("http://loinc.org", code) for code in LAB_LOINC_CODES]),
                      st.sampled_from([tuple(code.split("|", 1)) if "|" in code else ("http://snomed.info/sct", code)
                                       for code in FINDING_CODES]),
                      st.sampled_from(CONCEPT_CODINGS))
    return st.builds(
        lambda code, status, value, effective, issued, interpretation, components, subject: resource(
            "Observation", status=status, code=code, valueQuantity=value, effectiveDateTime=effective, issued=issued,
            interpretation=interpretation, component=components, subject=subject),
        maybe(codeable(codes)), maybe(STATUS), maybe(QUANTITY), maybe(DATES), maybe(DATES),
        maybe(st.lists(codeable(st.sampled_from([("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                                  c) for c in ("H", "L", "HH", "LL", "N", "A")])), max_size=2)),
        st.one_of(st.just(_MISSING), st.lists(st.fixed_dictionaries({"code": codeable(codes), "valueQuantity": QUANTITY}),
                                              max_size=2)),
        SUBJECT)


def medications(resource_type: str):
    codings = st.one_of(st.sampled_from([("http://www.nlm.nih.gov/research/umls/rxnorm", c) for c in RXNORM]),
                        st.sampled_from([("http://www.whocc.no/atc", c) for c in ATC]))
    dosage = st.fixed_dictionaries({"text": st.one_of(st.text(max_size=30), ANYTHING)}, optional={
        "doseAndRate": st.lists(st.fixed_dictionaries({"doseQuantity": QUANTITY}), max_size=2),
        "route": codeable(st.sampled_from([("http://snomed.info/sct", "26643006"), ("x", "y")]))})
    date_field = "authoredOn" if resource_type == "MedicationRequest" else "effectiveDateTime"
    return st.builds(
        lambda code, status, date, dosages, intent, subject: resource(
            resource_type, medicationCodeableConcept=code, status=status, dosageInstruction=dosages,
            dosage=dosages, intent=intent, subject=subject, **{date_field: date}),
        maybe(codeable(codings)), maybe(STATUS), maybe(DATES), maybe(st.lists(dosage, max_size=2)),
        maybe(st.sampled_from(["order", "plan", "proposal"])), SUBJECT)


def service_requests():
    codes = st.one_of(st.sampled_from([("http://loinc.org", code) for code in LAB_LOINC_CODES]),
                      st.just(("http://snomed.info/sct", "183521007")))
    return st.builds(lambda code, status, intent, authored, subject: resource(
        "ServiceRequest", code=code, status=status, intent=intent, authoredOn=authored, subject=subject),
        maybe(codeable(codes)), maybe(STATUS), maybe(st.sampled_from(["order", "plan"])), maybe(DATES), SUBJECT)


def broken_resources():
    """A known resource type with random fields, or an unknown type, or not a resource at all."""
    return st.one_of(
        st.builds(lambda rt, body: {**body, "resourceType": rt}, st.sampled_from(RESOURCE_TYPES),
                  st.dictionaries(st.sampled_from(["code", "status", "valueQuantity", "subject", "effectiveDateTime",
                                                   "medicationCodeableConcept", "dosageInstruction", "component",
                                                   "clinicalStatus", "birthDate", "entry", "id", "meta"]),
                                  ANYTHING, max_size=5)),
        st.builds(lambda rt: {"resourceType": rt}, st.one_of(st.text(max_size=20), NUMBERS, st.none())),
        ANYTHING)


SYMPTOM_CODINGS = sorted({(SYSTEM_URIS.get(system, system), code) for (system, code), concept
                          in _KNOWLEDGE.concept_by_code.items() if concept in ("fasciculation", "muscle_cramp", "myokymia")})


def symptomatic_base():
    """An adult with an active, confirmed twitch or cramp: the charts the rules have most to say about."""
    return st.builds(
        lambda birth, gender, coding, onset: [
            {"resourceType": "Patient", "id": "p1", "birthDate": birth, "gender": gender},
            {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "onsetDateTime": onset,
             "code": {"coding": [{"system": coding[0], "code": coding[1]}]},
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                            "code": "active"}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                "code": "confirmed"}]}}],
        st.sampled_from(["1950", "1961-07", "1975-03-02", "1988-12-31", "2000-01-01"]),
        st.sampled_from(["male", "female"]), st.sampled_from(SYMPTOM_CODINGS), RECENT_DATES)


RESOURCES = st.one_of(patients(), conditions(), conditions(), observations(), observations(),
                      medications("MedicationStatement"), medications("MedicationRequest"), service_requests(),
                      broken_resources())
def _fixture_charts() -> list[tuple[str, list[dict[str, Any]]]]:
    from tests.ops.support import fixture_bundles
    charts = []
    for bundle in fixture_bundles():
        resources = [entry["resource"] for entry in bundle.get("entry", []) if "resource" in entry]
        patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        charts.append((patient_id, resources))
    return charts


FIXTURE_CHARTS = _fixture_charts()


@st.composite
def mutated_fixture_charts(draw) -> list[dict[str, Any]]:
    """A fixture patient's chart with some fields replaced by anything, dropped, or resources added."""
    patient_id, chart = copy.deepcopy(draw(st.sampled_from(FIXTURE_CHARTS)))
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(chart))
        field = draw(st.sampled_from(sorted(target)))
        if field == "resourceType" and draw(st.booleans()):
            continue
        if draw(st.booleans()):
            del target[field]
        else:
            target[field] = draw(ANYTHING)
    return patient_id, chart + draw(st.lists(RESOURCES, max_size=5))


# (patient id, resources): random resources, a symptomatic adult among random resources, or a
# fixture patient's chart with some fields broken.
CHARTS = st.one_of(st.tuples(st.just("p1"), st.lists(RESOURCES, max_size=25)),
                   st.tuples(st.just("p1"), st.builds(lambda base, rest: base + rest, symptomatic_base(),
                                                      st.lists(RESOURCES, max_size=20))),
                   mutated_fixture_charts())
