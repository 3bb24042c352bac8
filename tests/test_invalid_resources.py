"""Malformed resources: an element the rules do not read is ignored; a used one that is malformed makes the
resource unreadable (shown, never normal); junk never breaks the call."""
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


def test_an_element_the_rules_do_not_read_never_loses_a_result(caplog):
    """Issue 12 reversed the old contract: whole-resource R4B validation no longer decides whether a
    result is used. An unknown element on the TSH is ignored, and the TSH still completes the work-up."""
    client = create_app(make_settings(), clock=lambda: AS_OF).test_client()
    baseline = request_for("01-benign-calf-twitch")
    assert topics(client.post(URL, json=baseline)) == ["reassurance"]

    noisy = copy.deepcopy(baseline)
    tsh_of(noisy)["notAnElementOfObservation"] = True  # R4B would refuse the whole resource
    with caplog.at_level(logging.INFO, logger="service.requests"):
        response = client.post(URL, json=noisy)
    assert topics(response) == ["reassurance"]
    call_lines = [r for r in caplog.records if getattr(r, "event", None) == "service_call"]
    assert call_lines[-1].skipped_resources == 0


def test_a_result_with_an_unreadable_value_is_shown_as_unreadable_never_normal():
    client = create_app(make_settings(), clock=lambda: AS_OF).test_client()
    broken = request_for("01-benign-calf-twitch")
    tsh_of(broken)["valueQuantity"]["value"] = "not-a-number"
    response = client.post(URL, json=broken)
    assert topics(response) == ["workup-incomplete"]
    assert "could not be read (valueQuantity.value is not a number" in response.get_json()["cards"][0]["detail"]


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
