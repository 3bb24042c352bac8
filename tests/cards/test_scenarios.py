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


def _card_key(card: dict) -> tuple:
    codes = sorted(f"{coding['system']}|{coding['code']}"
                   for suggestion in card.get("suggestions", ())
                   for action in suggestion["actions"]
                   for coding in action["resource"]["code"]["coding"][:1])
    return card["source"]["topic"]["code"], card["indicator"], tuple(codes)


def _expected_key(card: dict) -> tuple:
    return card["topic"], card["indicator"], tuple(sorted(card.get("suggestions", ())))


@pytest.mark.skipif(not SCENARIOS, reason="fixtures/ not present")
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
