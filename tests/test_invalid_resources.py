"""A resource that fails FHIR validation is skipped and counted; the call still succeeds."""
import copy
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from service import create_app
from tests.conftest import make_settings

FIXTURES = Path(__file__).parents[1] / "fixtures"
AS_OF = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
URL = "/cds-services/fasciculation-cramp-review"


def request_for(scenario):
    return json.loads((FIXTURES / "requests" / f"{scenario}.json").read_text())


def topics(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(card["source"]["topic"]["code"] for card in response.get_json()["cards"])


def tsh_of(request):
    entries = request["prefetch"]["observations"]["entry"]
    return next(e["resource"] for e in entries if e["resource"]["code"]["coding"][0]["code"] == "3016-3")


def test_a_result_failing_fhir_validation_is_skipped_counted_and_treated_as_missing(caplog):
    client = create_app(make_settings(), clock=lambda: AS_OF).test_client()
    baseline = request_for("01-benign-calf-twitch")
    assert topics(client.post(URL, json=baseline)) == ["reassurance"]

    broken = copy.deepcopy(baseline)
    tsh_of(broken)["notAnElementOfObservation"] = True  # the R4B model refuses unknown elements
    with caplog.at_level(logging.INFO, logger="service.requests"):
        response = client.post(URL, json=broken)
    # Without a usable TSH the work-up is incomplete, so no reassurance: never "missing = normal".
    assert topics(response) == ["workup-incomplete"]
    call_lines = [r for r in caplog.records if getattr(r, "event", None) == "service_call"]
    assert call_lines[-1].skipped_resources == 1


def test_a_result_with_an_unreadable_value_counts_as_missing():
    client = create_app(make_settings(), clock=lambda: AS_OF).test_client()
    broken = request_for("01-benign-calf-twitch")
    tsh_of(broken)["valueQuantity"]["value"] = "not-a-number"
    assert topics(client.post(URL, json=broken)) == ["workup-incomplete"]


def test_junk_inside_bundles_never_breaks_the_call():
    client = create_app(make_settings(), clock=lambda: AS_OF).test_client()
    request = request_for("02-twitch-with-weakness")
    request["prefetch"]["conditions"]["entry"] += [
        {"resource": {"resourceType": "Condition"}},
        {"resource": {"resourceType": "Condition", "code": "R25.3", "subject": 7}},
        {"resource": {"resourceType": "Observation", "status": ["final"], "code": {"coding": "x"}}},
        {"resource": {"resourceType": "Nonsense", "deep": [[[[{"x": None}]]]]}},
    ]
    assert "neurology-referral" in topics(client.post(URL, json=request))
