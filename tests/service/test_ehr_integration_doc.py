"""docs/ehr-integration.md and the ready profiles stay true to the code (issue 15, item 13).

The guide lists every resource and search parameter the service asks the EHR for and every code its
order suggestions carry or recognise; the Oracle Health profile allows every host the cards link to;
each profile marks exactly the values a health system supplies.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from hooks.fasciculation_review import SERVICE
from service.auth import load_trusted_clients

# The templates as discovery shows them (each PrefetchKey also declares its failure policy).
PREFETCH = SERVICE.prefetch
ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "ehr-integration.md").read_text()
PROFILES = ROOT / "deploy" / "trusted-clients"
KNOWLEDGE = ROOT / "cards" / "knowledge"


def doc_row(key: str) -> str:
    row = next((line for line in DOC.splitlines() if line.startswith(f"| `{key}` |")), None)
    assert row, f"prefetch key {key} has no row in docs/ehr-integration.md section 3"
    return row


@pytest.mark.parametrize("key", sorted(PREFETCH))
def test_each_prefetch_key_is_documented_with_its_resource_and_search_parameters(key):
    row = doc_row(key)
    template = PREFETCH[key]
    path, _, query = template.partition("?")
    resource = path.split("/")[0]
    assert f"| {resource} |" in row, (key, resource)
    for name, value in parse_qsl(query):
        shown = f"`{name}={value}`" if name in ("_sort", "status") else f"`{name}"
        assert shown in row, (key, name)
        if name == "code":  # the knowledge grows: the count the guide gives is the template's
            assert f" {len(value.split(','))} codes " in row, (key, len(value.split(",")))


def order_codes() -> set[str]:
    labs = yaml.safe_load((KNOWLEDGE / "labs.yaml").read_text())
    findings = yaml.safe_load((KNOWLEDGE / "findings.yaml").read_text())
    orderables = yaml.safe_load((KNOWLEDGE / "order_codes.yaml").read_text())["orderables"]
    codes = {labs[name]["code"] for name in ("lab_order_category", "referral_order_category", "referral_order_code")}
    codes.update(order["code"]["code"] for order in labs["orders"].values())
    # Every code of an orderable that, active on the chart, keeps a work-up order from being suggested.
    codes.update(coding["code"] for orderable in orderables.values() if orderable["covers"]
                 for coding in orderable["codes"])
    codes.update(coding["code"] for coding in findings["neurology_referral_orders"])
    return codes


def test_every_code_the_orders_carry_or_recognise_is_in_the_mapping_table():
    section = DOC[DOC.index("## 4."):DOC.index("## 5.")]
    missing = sorted(code for code in order_codes() if f"`{code}`" not in section)
    assert not missing, f"docs/ehr-integration.md section 4 lacks {missing}"


def card_link_hosts() -> set[str]:
    texts = yaml.safe_load((KNOWLEDGE / "texts.yaml").read_text())
    return {urlsplit(reference["url"]).hostname for reference in texts["references"].values() if "url" in reference}


def test_the_oracle_health_profile_allows_every_host_the_cards_link_to():
    [client] = load_trusted_clients(PROFILES / "oracle-health.yaml").clients
    assert set(client.allowed_link_hosts) == card_link_hosts()
    assert client.cds_hooks_1_0_cards == "at-most-one"
    assert client.iss == "https://cds-hooks.cerner.com" and client.tenant


def test_the_epic_profile_is_ready_for_epics_token():
    [client] = load_trusted_clients(PROFILES / "epic.example.yaml").clients
    assert client.algorithms == ("RS384",) and client.audiences and client.allowed_jku and client.fhir_servers


@pytest.mark.parametrize("name", ["epic.example.yaml", "oracle-health.yaml"])
def test_every_placeholder_says_who_supplies_it(name):
    """A value only the health system knows is a placeholder that matches no real token, and says so."""
    lines = (PROFILES / name).read_text().splitlines()
    placeholder = re.compile(r"example\.org|00000000-0000-0000-0000-000000000000")
    values = [line for line in lines if placeholder.search(line.split("#")[0])]
    assert values
    unmarked = [line for line in values if "HEALTH SYSTEM SUPPLIES" not in line]
    assert not unmarked, unmarked


def test_the_sandbox_profile_is_complete():
    text = (PROFILES / "cds-hooks-sandbox.yaml").read_text()
    assert "HEALTH SYSTEM SUPPLIES" not in text and "REPLACE" not in text


@pytest.mark.parametrize("heading,profile", [("## 5. Epic", "epic.example.yaml"),
                                             ("## 6. Oracle Health", "oracle-health.yaml"),
                                             ("## 7. The public CDS Hooks Sandbox", "cds-hooks-sandbox.yaml")])
def test_each_ehr_has_its_walk_through_naming_its_profile(heading, profile):
    start = DOC.index(heading)
    end = DOC.find("\n## ", start + 1)
    assert profile in DOC[start:end if end > 0 else None]
