"""Cards shaped for the calling client's registration (issue 15, item 10; service/client_profile.py).

Oracle Health's registration lists allowed links (links not on it are removed from cards) and its
documentation describes CDS Hooks 1.0 responses, where `selectionBehavior` is only `at-most-one`.
A trusted client's entry may name the link hosts it allows and ask for 1.0-compatible cards, in
either shape: `at-most-one` on the same card, or one suggestion per card. Every card stays valid
CDS Hooks (the card schema), and the card log holds exactly the cards sent.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service.client_profile import SUMMARY_LIMIT, _led_by, link_allowed
from service.schemas import CardSchema
from service.store.models import IssuedCard
from tests.auth.support import FIXTURE_FHIR_SERVER, bearer, claims, client_entry, mint, new_key, write_clients
from tests.store.support import (FEEDBACK_PATH, SERVICE_PATH, TEST_SECRET, accepted, app_for, fixture_request,
                                 store_settings)

PUBLIC_BASE = "https://cds.hospital.test"
NOW = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
KEY = new_key("ES384")
NO_LABS = "04-no-labs"  # work-up card with three orderable suggestions (the BMP includes calcium), and a referral card
QUININE = "13-night-cramps-quinine"  # cards with links to several hosts
CARD_SCHEMA = CardSchema()


def cards_for(tmp_path, fixture: str, **profile) -> tuple[list[dict], object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    clients = write_clients(tmp_path, client_entry(KEY, fhir_servers=[FIXTURE_FHIR_SERVER], **profile))
    app = app_for(store_settings(tmp_path / "data", mode="production", public_base_url=PUBLIC_BASE,
                                 trusted_clients_file=str(clients), patient_key_secret=TEST_SECRET),
                  clock=lambda: NOW)
    response = app.test_client().post(SERVICE_PATH, json=fixture_request(fixture),
                                      headers=bearer(mint(KEY, claims(aud=PUBLIC_BASE + SERVICE_PATH))))
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    for card in cards:
        assert CARD_SCHEMA.validate(card) == {}, card
    return cards, app


def logged_uuids(app) -> set[str]:
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.connect() as connection:
        return set(connection.scalars(select(IssuedCard.card_uuid)))


def urls(cards: list[dict]) -> set[str]:
    return ({link["url"] for card in cards for link in card.get("links", [])}
            | {card["source"][name] for card in cards for name in ("url", "icon") if name in card["source"]})


def test_without_a_profile_the_cards_are_cds_hooks_2_0_as_written(tmp_path):
    cards, _ = cards_for(tmp_path, NO_LABS)
    [workup] = [card for card in cards if len(card.get("suggestions", [])) > 1]
    assert workup["selectionBehavior"] == "any"
    unfiltered, _ = cards_for(tmp_path / "q", QUININE)
    assert len({link_host(url) for url in urls(unfiltered)}) > 2


def link_host(url: str) -> str:
    return url.split("/")[2]


def test_links_to_hosts_not_allowed_are_removed(tmp_path):
    full, _ = cards_for(tmp_path / "full", QUININE)
    cards, app = cards_for(tmp_path / "filtered", QUININE, allowed_link_hosts=["doi.org", "*.nice.org.uk"])
    kept = urls(cards)
    assert kept and all(link_host(url) in ("doi.org",) or link_host(url).endswith(".nice.org.uk") for url in kept)
    assert kept == {url for url in urls(full) if link_host(url) == "doi.org" or link_host(url).endswith(".nice.org.uk")}
    assert all(card.get("links", True) != [] for card in cards)  # an emptied list goes, never []
    assert [card["summary"] for card in cards] == [card["summary"] for card in full]
    assert logged_uuids(app) == {card["uuid"] for card in cards}


def test_an_empty_allow_list_removes_every_link(tmp_path):
    cards, _ = cards_for(tmp_path, QUININE, allowed_link_hosts=[])
    assert urls(cards) == set() and all("links" not in card for card in cards)


def test_cds_hooks_1_0_at_most_one_keeps_each_card_with_its_suggestions(tmp_path):
    full, _ = cards_for(tmp_path / "full", NO_LABS)
    cards, app = cards_for(tmp_path / "v1", NO_LABS, cds_hooks_1_0_cards="at-most-one")
    assert [card["summary"] for card in cards] == [card["summary"] for card in full]
    with_suggestions = [card for card in cards if "suggestions" in card]
    assert with_suggestions and all(card["selectionBehavior"] == "at-most-one" for card in with_suggestions)
    assert all(sum(bool(s.get("isRecommended")) for s in card["suggestions"]) <= 1 for card in with_suggestions)
    [workup] = [card for card in cards if len(card.get("suggestions", [])) > 1]
    assert [s["label"] for s in workup["suggestions"]] == ["Order BMP", "Order TSH", "Order CK"]
    assert logged_uuids(app) == {card["uuid"] for card in cards}


def test_cds_hooks_1_0_one_suggestion_per_card_splits_the_orders(tmp_path):
    full, _ = cards_for(tmp_path / "full", NO_LABS)
    cards, app = cards_for(tmp_path / "v1", NO_LABS, cds_hooks_1_0_cards="one-suggestion-per-card")
    [workup] = [card for card in full if len(card.get("suggestions", [])) > 1]
    split = [card for card in cards if card["source"] == workup["source"]]
    def without_uuid(suggestion: dict) -> dict:  # uuids are fresh on every call
        return {key: value for key, value in suggestion.items() if key != "uuid"}

    assert [[without_uuid(s) for s in card["suggestions"]] for card in split] == [
        [without_uuid(suggestion)] for suggestion in workup["suggestions"]]
    assert all(card["selectionBehavior"] == "at-most-one" for card in cards if "suggestions" in card)
    # Each order on its own card, led by its label; this summary fits whole (long ones are cut: below).
    assert [card["summary"] for card in split] == [f"{s['label']}: {workup['summary']}" for s in workup["suggestions"]]
    assert all(card["detail"] == workup["detail"] for card in split)
    assert len({card["uuid"] for card in cards}) == len(cards) == len(full) + 2
    # Every card sent is in the card log, so feedback on any of them is recognised.
    assert logged_uuids(app) == {card["uuid"] for card in cards}
    response = app.test_client().post(FEEDBACK_PATH, json={"feedback": [accepted(
        split[2]["uuid"], suggestions=(split[2]["suggestions"][0]["uuid"],))]},
        headers=bearer(mint(KEY, claims(aud=PUBLIC_BASE + FEEDBACK_PATH))))
    assert response.status_code == 200


def test_both_adjustments_together(tmp_path):
    cards, _ = cards_for(tmp_path, NO_LABS, cds_hooks_1_0_cards="one-suggestion-per-card",
                         allowed_link_hosts=["doi.org"])
    assert all(link_host(url) == "doi.org" for url in urls(cards))
    assert all(len(card.get("suggestions", [])) <= 1 for card in cards)


def test_unsigned_development_calls_are_not_adjusted(tmp_path):
    app = app_for(store_settings(tmp_path), clock=lambda: NOW)
    cards = app.test_client().post(SERVICE_PATH, json=fixture_request(NO_LABS)).get_json()["cards"]
    assert any(card.get("selectionBehavior") == "any" for card in cards)


def test_a_long_summary_is_cut_at_a_word_and_marked():
    summary = "Blood tests needed before calling the twitching or cramp benign: BMP, calcium, TSH, CK, magnesium, " \
              "phosphate and creatine kinase missing or out of date."
    led = _led_by("Order magnesium", summary)
    assert len(led) <= SUMMARY_LIMIT and led.startswith("Order magnesium: Blood tests needed") and led.endswith("…")
    assert " ".join(led.removesuffix("…").split(" ")[2:]) in summary


@pytest.mark.parametrize("url,hosts,allowed", [
    ("https://doi.org/10.1/x", ["doi.org"], True),
    ("https://DOI.org/10.1/x", ["doi.org"], True),
    ("https://cks.nice.org.uk/x", ["*.nice.org.uk"], True),
    ("https://nice.org.uk/x", ["*.nice.org.uk"], False),
    ("https://evilnice.org.uk/x", ["*.nice.org.uk"], False),
    ("https://doi.org.evil.test/x", ["doi.org"], False),
    ("https://user@doi.org/x", ["doi.org"], True),
    ("not a url", ["doi.org"], False),
])
def test_link_hosts_match_exactly_or_as_subdomains(url, hosts, allowed):
    assert link_allowed(url, hosts) is allowed


@pytest.mark.parametrize("profile,fragment", [
    ({"allowed_link_hosts": "doi.org"}, "allowed_link_hosts must be a list"),
    ({"allowed_link_hosts": ["https://doi.org/"]}, "is not a host name"),
    ({"allowed_link_hosts": ["*."]}, "is not a host name"),
    ({"cds_hooks_1_0_cards": "yes"}, "must be one of at-most-one, one-suggestion-per-card"),
    ({"audiences": "https://x.test"}, "audiences must be a list"),
])
def test_a_bad_profile_is_refused_at_start(tmp_path, profile, fragment):
    from service.auth import load_trusted_clients
    from service.config import ConfigError
    with pytest.raises(ConfigError) as raised:
        load_trusted_clients(write_clients(tmp_path, client_entry(KEY, **profile)))
    assert fragment in str(raised.value)
