"""The real-world-shaped corpus (fixtures/realworld.py): US Core, Synthea, Oracle Health and Epic style
charts give exactly their expected cards through the service, and say what the expected text says."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from fixtures.realworld import SCENARIOS, write
from service import create_app
from tests.cards.cardcheck import assert_cards
from tests.conftest import make_settings

CORPUS = Path(__file__).parents[1] / "fixtures" / "realworld"
URL = "/cds-services/fasciculation-cramp-review"


def load(kind: str, name: str) -> dict:
    return json.loads((CORPUS / kind / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_chart_gives_its_expected_cards(name):
    expected = load("expected", name)
    as_of = datetime.fromisoformat(expected["asOf"].replace("Z", "+00:00"))
    app = create_app(make_settings(locale=expected["locale"]), clock=lambda: as_of)
    response = app.test_client().post(URL, json=load("requests", name))
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    assert_cards(cards)
    actual = [(card["source"]["topic"]["code"], card["indicator"]) for card in cards]
    assert actual == [(card["topic"], card["indicator"]) for card in expected["cards"]], expected["title"]
    for card, wanted in zip(cards, expected["cards"]):
        text = card["summary"] + "\n" + card["detail"]
        for fragment in wanted["contains"]:
            assert fragment in text, f"{name}: {wanted['topic']} lacks {fragment!r}:\n{text}"


def test_the_corpus_files_are_what_the_builder_writes(tmp_path):
    write(tmp_path)
    for path in sorted(tmp_path.rglob("*.json")):
        assert path.read_text() == (CORPUS / path.relative_to(tmp_path)).read_text(), path.name
