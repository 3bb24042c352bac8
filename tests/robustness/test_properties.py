"""Hypothesis: arbitrary FHIR-shaped JSON through the prefetch classification, the patient view and
the rules. The answer is cards or a 4xx / 412 OperationOutcome, never an exception, and every card
passes the card schema.

Seeded (derandomize) so a CI run is reproducible; PROPERTY_EXAMPLES examples per property.
"""
from __future__ import annotations

import copy
import json
import os
import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards import review
from cards.api import ReviewOptions
from cards.knowledge_base import load_knowledge
from cards.chart import collect, may_trigger
from hooks.registry import ALL_SERVICES
from service import create_app
from service.schemas import CardSchema, CardsResponseSchema
from tests.conftest import FIXTURE_AS_OF, make_settings
from tests.robustness.fhir_strategies import ANYTHING, CHARTS, DATES, FIXTURE_CHARTS, RESOURCES, fhir_dates

pytestmark = pytest.mark.fuzz

PROPERTY_EXAMPLES = int(os.environ.get("CDS_PROPERTY_EXAMPLES", "300"))
PROPERTY = settings(max_examples=PROPERTY_EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.filter_too_much])
SERVICE = ALL_SERVICES[0]
URL = f"/cds-services/{SERVICE.id}"
KEYS = tuple(SERVICE.prefetch)
CARD = CardSchema()
RESPONSE = CardsResponseSchema()


MAX_BODY_BYTES = make_settings().max_body_bytes


def post(client, body: dict):
    """POST the body; (response, whether it is over CDS_MAX_BODY_BYTES and so must be a 413)."""
    data = json.dumps(body).encode()
    return client.post(URL, data=data, content_type="application/json"), len(data) > MAX_BODY_BYTES


@pytest.fixture(scope="module")
def client():
    app = create_app(make_settings(), clock=lambda: FIXTURE_AS_OF)
    yield app.test_client()
    app.extensions["fasciculation_cds"].fhir_client.close()


def bundle(resources) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def call(prefetch: dict) -> dict:
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/dr-1", "patientId": "p1"}, "prefetch": prefetch}


def assert_outcome(response, status: int, key: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]
    if key is not None:
        assert any(f"prefetch.{key}" in issue.get("expression", []) for issue in outcome["issue"]), outcome


def assert_cards_response(response) -> list:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    body = response.get_json()
    assert RESPONSE.validate(body) == {}, RESPONSE.validate(body)
    return body["cards"]


# -- (1) the prefetch classification, through HTTP ------------------------------------------------

PREFETCH_VALUES = st.one_of(
    st.none(),  # no data
    st.just("absent"),  # left out: must be fetched, and without fhirServer cannot be
    st.builds(lambda issues: {"resourceType": "OperationOutcome", "issue": issues}, ANYTHING),
    RESOURCES.filter(lambda r: isinstance(r, dict)),
    st.builds(bundle, st.lists(RESOURCES, max_size=6)),
    st.builds(lambda entries: {"resourceType": "Bundle", "entry": entries}, ANYTHING),
    ANYTHING,
)


REQUIRED = {key for key, policy in SERVICE.prefetch_keys.items() if policy.required}
URGENT = {"neurology-referral", "abnormal-result"}


def _not_supported(value) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome" and isinstance(
        value.get("issue"), list) and any(isinstance(i, dict) and i.get("code") == "not-supported" for i in value["issue"])


def expected_outcome(values: dict) -> tuple[int, str | None, set[str]]:
    """service/prefetch.py and prefetch_policy.py: a value that is not a resource is 400; then each
    required key that cannot be obtained (absent or an OperationOutcome, and no FHIR server to ask;
    an unsupported medication search is covered by the other one) makes 412, unless the cards stand."""
    for key in KEYS:
        value = values[key]
        if value is None or value == "absent":
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            return 400, key, set()
    def obtained(key):
        value = values[key]
        return value is None or value != "absent" and value.get("resourceType") != "OperationOutcome"
    missing = set()
    for key in KEYS:
        if obtained(key):
            continue
        alternatives = SERVICE.prefetch_keys[key].alternatives
        if _not_supported(values[key]) and any(obtained(other) for other in alternatives):
            continue
        missing.add(key)
    return (412 if missing & REQUIRED else 200), None, missing & REQUIRED


def _names_another_patient(value, patient_id: str = "p1") -> bool:
    text = json.dumps(value, default=str)
    return '"resourceType": "Patient"' in text or any(
        found != patient_id for found in re.findall(r'Patient/([^"/]*)', text))


@PROPERTY
@given(values=st.fixed_dictionaries({key: PREFETCH_VALUES for key in KEYS}),
       extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k not in KEYS), ANYTHING, max_size=3))
def test_any_prefetch_is_classified_into_cards_400_or_412(client, values, extra):
    prefetch = {key: value for key, value in values.items() if value != "absent"}
    response, oversized = post(client, call({**extra, **prefetch}))
    status, key, missing = expected_outcome(values)
    if oversized:  # huge generated strings: the size limit answers first, and only then
        assert_outcome(response, 413)
    elif status == 400:
        assert_outcome(response, 400, key)
    elif response.status_code == 200:
        cards = assert_cards_response(response)
        topics = {card["source"]["topic"]["code"] for card in cards}
        for card in cards:
            assert CARD.validate(card) == {}
        if missing:  # a required key is missing: the cards stand only with a red flag or abnormal result
            assert topics & URGENT and "data-gap" in topics, topics
    else:
        assert_outcome(response, 412)
        named = {e.removeprefix("prefetch.") for i in response.get_json()["issue"] for e in i.get("expression", [])}
        assert missing <= named, (missing, named)
        # Beyond the modelled keys, only a key emptied of another patient's resources fails.
        assert all(_names_another_patient(values[other]) for other in named - missing), named


# -- (2) the patient view and the rules, directly -------------------------------------------------

NOW = st.one_of(st.just(FIXTURE_AS_OF), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                                     timezones=st.just(UTC)))


@PROPERTY
@given(patient_chart=CHARTS, now=NOW, locale=st.sampled_from(["US", "UK"]),
       reassured=st.one_of(st.none(), st.dates()))
def test_review_of_any_chart_gives_cards_that_pass_the_card_schema(patient_chart, now, locale, reassured):
    patient_id, chart = patient_chart
    before = copy.deepcopy(chart)
    result = review(chart, patient_id=patient_id, now=now,
                    options=ReviewOptions(locale=locale, reassurance_given_on=reassured))
    for card in result.cards:
        assert CARD.validate(card) == {}, (CARD.validate(card), card)
    assert len({card["uuid"] for card in result.cards}) == len(result.cards)
    assert 0 <= result.skipped_resources <= len(chart)
    assert chart == before, "review() must not change the resources it is given"


@PROPERTY
@given(patient_chart=CHARTS, now=NOW)
def test_the_no_symptom_screen_never_rules_out_a_chart_with_a_trigger(patient_chart, now):
    """review() skips the whole pass when may_trigger() says no: that must never hide a trigger."""
    patient_id, chart = patient_chart
    state = collect(chart, patient_id=patient_id, now=now, knowledge=load_knowledge())
    if state.has_trigger:
        assert may_trigger(chart, load_knowledge())


@pytest.mark.parametrize("patient_id, chart", FIXTURE_CHARTS, ids=lambda value: value if isinstance(value, str) else "")
def test_the_screen_agrees_with_the_full_pass_on_every_fixture_chart(patient_id, chart):
    state = collect(chart, patient_id=patient_id, now=FIXTURE_AS_OF, knowledge=load_knowledge())
    assert may_trigger(chart, load_knowledge()) or not state.has_trigger


@PROPERTY
@given(birth=fhir_dates(), onset=DATES, effective=DATES)
def test_dates_in_every_precision_and_zone_never_break_the_review(birth, onset, effective):
    chart = [{"resourceType": "Patient", "id": "p1", "birthDate": birth},
             {"resourceType": "Condition", "onsetDateTime": onset, "clinicalStatus": {"coding": [{"code": "active"}]},
              "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R25.3"}]}},
             {"resourceType": "Observation", "status": "final", "effectiveDateTime": effective,
              "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
              "valueQuantity": {"value": 900, "unit": "U/L"}}]
    for card in review(chart, patient_id="p1", now=FIXTURE_AS_OF).cards:
        assert CARD.validate(card) == {}


# -- (3) the rules through HTTP ------------------------------------------------------------------

@PROPERTY
@given(patient_chart=CHARTS, others=st.fixed_dictionaries({key: st.one_of(st.none(), st.lists(RESOURCES, max_size=4))
                                                           for key in KEYS if key != "patient"}),
       where=st.sampled_from([key for key in KEYS if key != "patient"]))
def test_any_chart_through_http_gives_cards_that_pass_the_card_schema(client, patient_chart, others, where):
    patient_id, chart = patient_chart
    prefetch = {key: None if resources is None else bundle(resources) for key, resources in others.items()}
    # The chart in one key's Bundle (the rules read every key's resources together), its Patient
    # alone; an OperationOutcome there would be refetched (412, property 1).
    prefetch[where] = bundle(chart + (others[where] or []))
    prefetch["patient"] = next((r for r in chart if isinstance(r, dict) and isinstance(r.get("resourceType"), str)
                                and r["resourceType"] != "OperationOutcome"), None)
    body = call(prefetch)
    body["context"]["patientId"] = patient_id
    response, oversized = post(client, body)
    if oversized:  # huge generated strings: the size limit answers first, and only then
        assert_outcome(response, 413)
        return
    if response.status_code == 412:  # only a key whose resources were all about another patient
        named = {e.removeprefix("prefetch.") for i in response.get_json()["issue"] for e in i.get("expression", [])}
        assert named and all(_names_another_patient(prefetch[key], patient_id) for key in named), named
        return
    for card in assert_cards_response(response):
        assert CARD.validate(card) == {}
