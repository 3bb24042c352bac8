"""Golden scenarios: every fixture bundle through review(), compared with fixtures/expected/.

Compared per card: topic, indicator and the sorted ``system|code`` of what each suggestion creates.
Card order is not significant (the expected files say so), so both sides are compared as sorted lists.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from cards import ReviewOptions, review
from tests.cards.cardcheck import assert_cards

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SCENARIOS = sorted(path.stem for path in (FIXTURES / "expected").glob("*.json")) if FIXTURES.is_dir() else []


def _resources(scenario: str) -> list[dict]:
    bundle = json.loads((FIXTURES / "patients" / f"{scenario}.json").read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle.get("entry", []) if "resource" in entry]


def suggestion_code(code: dict) -> str:
    """``system|code`` of a ServiceRequest.code, or ``text|<text>`` for a text-only order (UK U&E)."""
    if code.get("coding"):
        return f"{code['coding'][0]['system']}|{code['coding'][0]['code']}"
    return f"text|{code['text']}"


def _card_key(card: dict) -> tuple:
    codes = sorted(suggestion_code(action["resource"]["code"])
                   for suggestion in card.get("suggestions", ())
                   for action in suggestion["actions"])
    return card["source"]["topic"]["code"], card["indicator"], tuple(codes)


def card_text(card: dict) -> str:
    """What a clinician reads: summary, detail, source and link labels (the golden text checks)."""
    labels = [card["source"]["label"], *(link["label"] for link in card.get("links", ()))]
    for suggestion in card.get("suggestions", ()):
        labels.append(suggestion["label"])
        for action in suggestion["actions"]:
            resource = action["resource"]
            labels += [action["description"], *(note["text"] for note in resource.get("note", ())),
                       *(reason.get("text", "") for reason in resource.get("reasonCode", ()))]
    return "\n".join([card["summary"], card["detail"], *labels])


def assert_card_texts(cards: list[dict], expected: dict) -> None:
    """Each expected card's `contains` sentences are on its card; its `excludes` never are."""
    for wanted in expected["cards"]:
        texts = [card_text(c) for c in cards if c["source"]["topic"]["code"] == wanted["topic"]]
        for fragment in wanted.get("contains", ()):
            assert any(fragment in text for text in texts), f"{wanted['topic']} lacks {fragment!r}:\n{texts}"
        for fragment in wanted.get("excludes", ()):
            assert not any(fragment in text for text in texts), f"{wanted['topic']} holds {fragment!r}"


def assert_truthful(result) -> None:
    """Issue 13: "normal work-up" never beside a result outside its range; "already diagnosed" never for a
    suspected diagnosis; reassurance never beside a red flag, a result outside its range or a data gap."""
    text = "\n".join(card_text(c) for c in result.cards)
    if "normal work-up" in text:
        out = [r for r in result.view.labs.values() if r.analyte != "abi" and r.direction in ("low", "high")]
        assert not out, f"'normal work-up' beside {[(r.analyte, r.value) for r in out]}"
    if "already diagnosed" in text:
        assert all(not f.suspected for f in result.view.findings_of("motor_neuron_disease"))
    topics = {c["source"]["topic"]["code"] for c in result.cards}
    if "reassurance" in topics:
        assert not topics & {"neurology-referral", "abnormal-result", "workup-incomplete"}, topics
        assert not result.view.incomplete("patient", "conditions", "findings", "labs", "medications")


def _expected_key(card: dict) -> tuple:
    return card["topic"], card["indicator"], tuple(sorted(card.get("suggestions", ())))


def test_the_scenarios_are_present() -> None:
    assert SCENARIOS, "fixtures/ holds no scenario: the scenario tests below would not run"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_matches_expected_cards(scenario: str) -> None:
    expected = json.loads((FIXTURES / "expected" / f"{scenario}.json").read_text(encoding="utf-8"))
    resources = _resources(scenario)
    patient_id = next(r["id"] for r in resources if r.get("resourceType") == "Patient")
    now = datetime.fromisoformat(expected["asOf"].replace("Z", "+00:00"))
    result = review(resources, patient_id=patient_id, now=now, options=ReviewOptions(locale=expected["locale"]))
    assert_cards(result.cards)
    assert sorted(_card_key(card) for card in result.cards) == sorted(_expected_key(card) for card in expected["cards"]), \
        expected["rationale"]
    assert result.skipped_resources == 0
    assert_card_texts(result.cards, expected)
    assert_truthful(result)
