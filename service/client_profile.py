"""Cards shaped for what the calling EHR's registration accepts: protocol, not clinical content.

The hooks write CDS Hooks 2.0 cards for every caller. A trusted client's entry (deploy/trusted-clients)
may ask for two adjustments, which Oracle Health's registration needs (docs/ehr-integration.md):

`allowed_link_hosts`
    Oracle Health removes from cards every link that is not on the registration's allowed-links list.
    The service removes them first, so that the card the clinician sees is the card the service sent
    and logged: a `links` entry, `source.url` or `source.icon` whose host is not listed (exactly, or
    under a listed `*.domain`) is dropped, and an emptied `links` goes with it (CDS Hooks forbids `[]`).

`cds_hooks_1_0_cards`
    For clients that read CDS Hooks 1.0 responses, where `selectionBehavior` could only be `at-most-one`:
    - `at-most-one`: every card with suggestions says `at-most-one`, and at most one suggestion per
      card stays `isRecommended` (the first that was);
    - `one-suggestion-per-card`: a card with several suggestions becomes one card per suggestion, each
      `at-most-one`, its summary led by the suggestion's label, so each order can still be taken on
      its own. The first card keeps the original uuid, the others get new ones; all are card-logged.

Unsigned calls (development mode) and clients that ask for nothing get the cards unchanged.
"""
from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hooks.declaration import HookResult

if TYPE_CHECKING:
    from service.auth import AuthenticatedClient

SUMMARY_LIMIT = 139  # CDS Hooks: "<140 characters"
_ELLIPSIS = "…"


def adapt_to_client(result: HookResult, caller: AuthenticatedClient | None) -> HookResult:
    client = caller.client if caller is not None else None
    if client is None or (client.allowed_link_hosts is None and client.cds_hooks_1_0_cards is None):
        return result
    cards = [_allowed_links_only(card, client.allowed_link_hosts) for card in result.cards]
    if client.cds_hooks_1_0_cards == "at-most-one":
        cards = [_at_most_one(card) for card in cards]
    elif client.cds_hooks_1_0_cards == "one-suggestion-per-card":
        cards = [split for card in cards for split in _one_suggestion_per_card(card)]
    return dataclasses.replace(result, cards=cards)


# -- links ----------------------------------------------------------------------------------------

def link_allowed(url: Any, hosts: Iterable[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower() if isinstance(url, str) else ""
    return bool(host) and any(host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
                              for allowed in hosts)


def _allowed_links_only(card: Mapping[str, Any], hosts: tuple[str, ...] | None) -> dict[str, Any]:
    card = dict(card)
    if hosts is None:
        return card
    links = [link for link in card.get("links", []) if link_allowed(link.get("url"), hosts)]
    if links:
        card["links"] = links
    else:
        card.pop("links", None)
    source = {name: value for name, value in card.get("source", {}).items()
              if name not in ("url", "icon") or link_allowed(value, hosts)}
    card["source"] = source
    return card


# -- CDS Hooks 1.0 ---------------------------------------------------------------------------------

def _at_most_one(card: dict[str, Any]) -> dict[str, Any]:
    if not card.get("suggestions"):
        return card
    recommended_seen = False
    suggestions = []
    for suggestion in card["suggestions"]:
        suggestion = dict(suggestion)
        if suggestion.get("isRecommended"):
            if recommended_seen:
                del suggestion["isRecommended"]
            recommended_seen = True
        suggestions.append(suggestion)
    return {**card, "suggestions": suggestions, "selectionBehavior": "at-most-one"}


def _one_suggestion_per_card(card: dict[str, Any]) -> list[dict[str, Any]]:
    suggestions = card.get("suggestions") or []
    if len(suggestions) <= 1:
        return [_at_most_one(card)]
    cards = []
    for index, suggestion in enumerate(suggestions):
        single = copy.deepcopy(card)
        single["uuid"] = card["uuid"] if index == 0 else str(uuid.uuid4())
        single["summary"] = _led_by(suggestion["label"], card["summary"])
        single["suggestions"] = [copy.deepcopy(suggestion)]
        single["selectionBehavior"] = "at-most-one"
        cards.append(single)
    return cards


def _led_by(label: str, summary: str) -> str:
    """`label: summary`, the summary cut at a word (with an ellipsis) if the whole is too long."""
    text = f"{label}: {summary}"
    if len(text) <= SUMMARY_LIMIT:
        return text
    room = SUMMARY_LIMIT - len(label) - len(": ") - len(_ELLIPSIS)
    cut = summary[:room + 1].rsplit(" ", 1)[0] if room > 0 else ""
    return f"{label}: {cut.rstrip(' ,;:.')}{_ELLIPSIS}" if cut else label[:SUMMARY_LIMIT]

