"""Issue 12: an element the rules do not read can never change a card.

Hypothesis adds, anywhere inside any resource of any fixture chart, elements the rules never read:
extensions (with and without url), narrative, meta (lastUpdated as a bare date), vendor fields,
primitive-element extensions (`_status`), element ids, coding versions, empty notes and identifiers,
and empty strings where an optional text is absent. Every fixture's cards must stay identical. At
c2304de most of these failed whole-resource R4B validation and the resource was dropped.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards import review
from tests.conftest import FIXTURE_AS_OF
from tests.robustness.fhir_strategies import FIXTURE_CHARTS, JSON

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("CDS_PROPERTY_EXAMPLES", "300"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXTENSION = st.fixed_dictionaries({}, optional={"url": st.text(max_size=30), "valueString": st.text(max_size=20),
                                                "valueCode": st.just(""), "extension": st.just([{}])})
VENDOR_NAMES = st.sampled_from(["cernerResultDetail", "epicInternalId", "x_vendor", "fhir_comments", "_status",
                                "_effectiveDateTime", "_code", "zzUnknownElement"])
# (name, value) pairs that may be added to any object inside a resource
NESTED_NOISE = st.one_of(
    st.tuples(st.just("extension"), st.lists(EXTENSION, max_size=3)),
    st.tuples(VENDOR_NAMES, JSON),
    st.tuples(st.just("id"), st.one_of(st.text(max_size=12), st.just(""))),
)
CODING_NOISE = st.one_of(st.tuples(st.just("version"), st.text(max_size=10)),
                         st.tuples(st.just("userSelected"), st.booleans()),
                         st.tuples(st.just("display"), st.just("")))
# (name, value) pairs added at the top of a resource
TOP_NOISE = st.one_of(
    st.tuples(st.just("meta"), st.fixed_dictionaries({}, optional={
        "lastUpdated": st.sampled_from(["2026-11-10", "yesterday", ""]), "versionId": st.text(max_size=5),
        "tag": st.lists(st.fixed_dictionaries({"code": st.text(max_size=5)}), max_size=2)})),
    st.tuples(st.just("text"), st.fixed_dictionaries({"status": st.sampled_from(["generated", "x"]),
                                                      "div": st.text(max_size=40)})),
    st.tuples(st.just("note"), st.sampled_from([[{}], [{"authorString": ""}]])),
    st.tuples(st.just("identifier"), st.sampled_from([[{"value": ""}], [{}], [{"system": "urn:x", "value": "1"}]])),
    st.tuples(st.just("language"), st.just("")),
    st.tuples(st.just("extension"), st.lists(EXTENSION, min_size=1, max_size=3)),
    st.tuples(VENDOR_NAMES, JSON),
)


def objects_in(node: Any, inside_coding: bool = False):
    """(object, whether it is a Coding) for every JSON object nested in a resource, itself excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, dict):
            if value.get("resourceType") is None:  # contained resources keep their own ids
                yield value, key == "coding" or inside_coding and isinstance(node, list)
            yield from objects_in(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield item, key == "coding"
                    yield from objects_in(item)


def _without_uuids(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_uuids(value) for key, value in node.items() if key != "uuid"}
    if isinstance(node, list):
        return [_without_uuids(item) for item in node]
    return node


def cards_of(chart: list[dict], patient_id: str) -> str:
    """The cards, every word of them, without the per-call uuids."""
    cards = review(chart, patient_id=patient_id, now=FIXTURE_AS_OF).cards
    return json.dumps(_without_uuids(cards), sort_keys=True)


_BASELINES = {patient_id: cards_of(chart, patient_id) for patient_id, chart in FIXTURE_CHARTS}


def _add(target: dict, name: str, value: Any) -> None:
    if name not in target:  # only new elements: an element the rules read keeps its value
        target[name] = copy.deepcopy(value)  # sampled values are shared between examples: never mutate them


@PROPERTY
@given(data=st.data(), index=st.integers(0, len(FIXTURE_CHARTS) - 1))
def test_unread_elements_never_change_a_fixtures_cards(data, index):
    patient_id, chart = FIXTURE_CHARTS[index]
    chart = copy.deepcopy(chart)
    for _ in range(data.draw(st.integers(1, 8))):
        resource = data.draw(st.sampled_from(chart))
        if data.draw(st.booleans()):
            _add(resource, *data.draw(TOP_NOISE))
            continue
        nested = list(objects_in(resource))
        if not nested:
            continue
        target, is_coding = data.draw(st.sampled_from(nested))
        _add(target, *data.draw(CODING_NOISE if is_coding and data.draw(st.booleans()) else NESTED_NOISE))
    assert cards_of(chart, patient_id) == _BASELINES[patient_id]


def test_the_noise_reaches_codings_and_nested_objects():
    """The strategy really touches used elements' neighbourhoods (a test that cannot fail is worthless)."""
    _, chart = FIXTURE_CHARTS[0]
    flags = [is_coding for resource in chart for _, is_coding in objects_in(resource)]
    assert any(flags) and not all(flags)
