"""A strict structural check of the CDS Hooks 2.0 card contract this service promises.

``assert_card(card)`` raises AssertionError with the first violation; ``assert_cards`` checks a list.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Mapping

TOPICS = frozenset({
    "neurology-referral", "workup-incomplete", "abnormal-result", "medication-review", "reassurance",
    "treatment-options", "cyclobenzaprine-not-indicated", "quinine-caution", "compression-caution",
    "cramp-management", "health-anxiety", "differential", "data-gap",
    # order-select / order-sign (cards/prescribing_cards.py)
    "rx-quinine", "rx-cyclobenzaprine", "rx-rule-out-first", "rx-carbamazepine-pregnancy", "rx-provoking-medicine",
    "rx-draft-unreadable",
})
# Topics whose cards may offer to remove the draft order: a `delete` action naming it by resourceId.
DELETING_TOPICS = frozenset({"rx-quinine", "rx-cyclobenzaprine", "rx-carbamazepine-pregnancy"})
RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
CARD_FIELDS = frozenset({"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
                         "overrideReasons", "links"})
TOPIC_SYSTEM = "urn:fasciculation-cds:card-topic"
HTML_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
# Rule ids (RF1, W2, L5, DQ1, CR2...) and internal reference ids (S4, E13) never reach the clinician.
# (A code such as ICD-10 M62.81 or R13, or "free T4", is chart or clinical text, not an id.)
from cards.rules import RULES  # noqa: E402
from cards.rules.prescribing import PRESCRIBING_RULES  # noqa: E402

INTERNAL_ID = re.compile(r"\b(?:Rule [A-Z]+\d+|(?:" + "|".join(rule.rule_id for rule in (*RULES, *PRESCRIBING_RULES)) +
                         r")(?![\d.])|[ES]\d{1,2}(?![\d.]))")
LAB_CATEGORY = "108252007"
REFERRAL_CATEGORY = "3457005"
REFERRAL_CODE = "183521007"


def assert_cards(cards: Any) -> None:
    assert isinstance(cards, list), "cards must be a list"
    for index, card in enumerate(cards):
        try:
            assert_card(card)
        except AssertionError as error:
            raise AssertionError(f"card[{index}] ({_topic(card)}): {error}") from None


def assert_card(card: Any) -> None:
    assert isinstance(card, dict), "a card is a JSON object"
    _assert_no_empty(card, "card")
    unknown = set(card) - CARD_FIELDS
    assert not unknown, f"unknown card fields {sorted(unknown)}"
    _assert_uuid4(card.get("uuid"), "card.uuid")

    summary = card.get("summary")
    assert isinstance(summary, str) and summary.strip(), "summary is a non-empty string"
    assert len(summary) <= 139, f"summary has {len(summary)} > 139 characters"
    assert "\n" not in summary, "summary is one line"
    assert summary.rstrip().endswith((".", "!", "?")), "summary is one sentence ending with a full stop"

    assert card.get("indicator") in ("info", "warning", "critical"), "indicator info|warning|critical"

    detail = card.get("detail")
    assert isinstance(detail, str) and detail.strip(), "detail is present and non-empty"
    assert not HTML_TAG.search(detail), f"detail contains raw HTML: {HTML_TAG.search(detail).group(0)!r}"
    # Issue 13 item 11: sources by name, rule ids and internal reference ids kept off the card; the
    # knowledge version once, discreetly, at the foot.
    text = f"{summary}\n{detail}"
    assert not INTERNAL_ID.search(text), f"card text shows an internal id: {INTERNAL_ID.search(text).group(0)!r}"
    assert detail.count("Knowledge version") == 1 and detail.rstrip().endswith("._"), "version once, at the foot"
    assert "None" not in detail, "detail leaks a Python None"

    _assert_source(card.get("source"))
    _assert_suggestions(card)
    _assert_override_reasons(card.get("overrideReasons"))
    if "links" in card:
        links = card["links"]
        assert isinstance(links, list) and links, "links is a non-empty list"
        assert card["source"].get("url") not in {link["url"] for link in links}, "the source is shown once"
        for link in links:
            assert set(link) == {"label", "url", "type"}, f"link fields {sorted(link)}"
            assert link["type"] == "absolute", "links are absolute"
            assert _is_https(link["url"]), f"link url {link['url']!r} is an absolute https URL"
            assert link["label"].strip(), "link label"


def _assert_source(source: Any) -> None:
    assert isinstance(source, dict), "source is an object"
    assert set(source) <= {"label", "url", "topic"}, f"source fields {sorted(source)}"
    assert isinstance(source.get("label"), str) and source["label"].strip(), "source.label"
    if "url" in source:
        assert _is_https(source["url"]), f"source.url {source['url']!r} is an absolute https URL"
    topic = source.get("topic")
    assert isinstance(topic, dict), "source.topic is a Coding"
    assert topic.get("system") == TOPIC_SYSTEM, "source.topic.system"
    assert topic.get("code") in TOPICS, f"unknown topic {topic.get('code')!r}"
    assert isinstance(topic.get("display"), str) and topic["display"], "source.topic.display"


def _assert_suggestions(card: Mapping[str, Any]) -> None:
    has_suggestions = "suggestions" in card
    assert has_suggestions == ("selectionBehavior" in card), "selectionBehavior present exactly with suggestions"
    if not has_suggestions:
        return
    suggestions = card["suggestions"]
    assert isinstance(suggestions, list) and suggestions, "suggestions is a non-empty list"
    behaviour = card["selectionBehavior"]
    assert behaviour in ("any", "at-most-one"), "selectionBehavior any|at-most-one"
    recommended = 0
    for suggestion in suggestions:
        assert set(suggestion) <= {"label", "uuid", "isRecommended", "actions"}, f"suggestion fields {sorted(suggestion)}"
        assert isinstance(suggestion.get("label"), str) and suggestion["label"], "suggestion.label"
        _assert_uuid4(suggestion.get("uuid"), "suggestion.uuid")
        if "isRecommended" in suggestion:
            assert suggestion["isRecommended"] is True or suggestion["isRecommended"] is False
            recommended += suggestion["isRecommended"]
        actions = suggestion.get("actions")
        assert isinstance(actions, list) and actions, "suggestion.actions non-empty"
        for action in actions:
            if action.get("type") == "delete":  # removing a draft order (CDS Hooks 2.0: resourceId, no resource)
                assert card["source"]["topic"]["code"] in DELETING_TOPICS, "only prescribing cards delete"
                assert set(action) == {"type", "description", "resourceId"}, f"action fields {sorted(action)}"
                assert RELATIVE_REFERENCE.match(action["resourceId"]), "resourceId is a relative reference"
                assert action["resourceId"] in action["description"], "the description names the order"
                continue
            assert set(action) == {"type", "description", "resource"}, f"action fields {sorted(action)}"
            assert action["type"] == "create", "only create actions"
            assert isinstance(action["description"], str) and action["description"], "action.description"
            _assert_service_request(action["resource"], card)
    if behaviour == "at-most-one":
        assert recommended <= 1, "at most one recommended suggestion under at-most-one"
    topic = card["source"]["topic"]["code"]
    if topic == "workup-incomplete":
        assert behaviour == "any", "lab orders use selectionBehavior any"
    if topic == "neurology-referral":
        assert behaviour == "at-most-one" and len(suggestions) == 1, "one referral suggestion, at-most-one"


def _assert_service_request(resource: Any, card: Mapping[str, Any]) -> None:
    assert isinstance(resource, dict) and resource.get("resourceType") == "ServiceRequest", "creates a ServiceRequest"
    assert resource.get("status") == "draft", "ServiceRequest.status draft"
    assert resource.get("intent") == "proposal", "ServiceRequest.intent proposal"
    reference = resource.get("subject", {}).get("reference", "")
    assert reference.startswith("Patient/") and len(reference) > len("Patient/"), "ServiceRequest.subject"
    category = resource["category"][0]["coding"][0]
    assert category["system"] == "http://snomed.info/sct"
    topic = card["source"]["topic"]["code"]
    if topic == "neurology-referral":
        code = resource["code"]["coding"][0]
        assert category["code"] == REFERRAL_CATEGORY and code["code"] == REFERRAL_CODE, "referral codes"
        assert resource.get("note"), "referral carries a note"
        if resource.get("priority") == "urgent":  # NICE NG42: the suspicion is named (issue 13 item 7)
            assert "uspected" in resource["reasonCode"][0]["text"] and "uspected" in resource["note"][0]["text"]
    else:
        assert category["code"] == LAB_CATEGORY, "lab order category"
        # A LOINC-coded order, or (UK U&E and bone profile, no verified order code) a text-only one.
        codings = resource["code"].get("coding")
        assert (codings and codings[0]["system"] == "http://loinc.org") or \
            (not codings and resource["code"].get("text")), "lab order codes"
    from fhir.resources.R4B.servicerequest import ServiceRequest

    ServiceRequest.model_validate(resource)


def _assert_override_reasons(reasons: Any) -> None:
    assert isinstance(reasons, list) and reasons, "overrideReasons is a non-empty list"
    for reason in reasons:
        assert set(reason) == {"system", "code", "display"}, f"override reason fields {sorted(reason)}"
        assert all(isinstance(reason[key], str) and reason[key] for key in reason), "override reason values"


def _assert_uuid4(value: Any, where: str) -> None:
    assert isinstance(value, str), f"{where} is a string"
    parsed = uuid.UUID(value)
    assert parsed.version == 4 and str(parsed) == value, f"{where} is a canonical UUIDv4"


def _assert_no_empty(value: Any, path: str) -> None:
    assert value is not None, f"{path} is null"
    if isinstance(value, (str, list, dict)):
        assert len(value) > 0, f"{path} is empty"
    if isinstance(value, dict):
        for key, item in value.items():
            _assert_no_empty(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_no_empty(item, f"{path}[{index}]")


def _is_https(url: Any) -> bool:
    return isinstance(url, str) and re.match(r"^https://[^\s/]+\.[^\s/]+(/\S*)?$", url) is not None


def _topic(card: Any) -> str:
    try:
        return card["source"]["topic"]["code"]
    except (KeyError, TypeError):
        return "?"
