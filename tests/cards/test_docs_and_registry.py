"""The clinician-facing documentation and the rule registry stay in step with the code and data."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from cards.knowledge_base import KNOWLEDGE_DIR
from cards.rules import RULES

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "clinical-rules.md").read_text(encoding="utf-8")


def _unconfirmed(node, found):
    if isinstance(node, dict):
        if node.get("unconfirmed") is True and "code" in node:
            found.add(str(node["code"]))
        for value in node.values():
            _unconfirmed(value, found)
    elif isinstance(node, list):
        for value in node:
            _unconfirmed(value, found)
    return found


def test_rule_ids_are_unique_and_documented() -> None:
    ids = [rule.rule_id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule_id in ids:
        assert re.search(rf"^\| {rule_id} \|", DOC, re.MULTILINE), f"{rule_id} missing from the rule table"
    for rule in RULES:
        assert rule.source.strip() and rule.topic


def test_every_unconfirmed_code_is_listed_in_the_docs() -> None:
    codes = set()
    for name in ("findings.yaml", "labs.yaml", "medications.yaml"):
        _unconfirmed(yaml.safe_load((KNOWLEDGE_DIR / name).read_text(encoding="utf-8")), codes)
    missing = sorted(code for code in codes if code not in DOC)
    assert not missing, f"unconfirmed codes not in docs/clinical-rules.md: {missing}"


def test_nothing_points_outside_the_project() -> None:
    for path in [*(ROOT / "cards").rglob("*.py"), *(ROOT / "cards").rglob("*.yaml"), ROOT / "docs" / "clinical-rules.md"]:
        text = path.read_text(encoding="utf-8")
        assert "/work/shared" not in text and "../shared" not in text, path


def test_prescribing_rule_ids_are_unique_and_documented() -> None:
    from cards.rules.prescribing import PRESCRIBING_RULES
    ids = [rule.rule_id for rule in PRESCRIBING_RULES]
    assert len(ids) == len(set(ids)) and not set(ids) & {rule.rule_id for rule in RULES}
    section = DOC.split("## Prescribing rules", 1)[1].split("\n## ", 1)[0]
    for rule in PRESCRIBING_RULES:
        assert re.search(rf"^\| {rule.rule_id} \|", section, re.MULTILINE), f"{rule.rule_id} missing from the table"
        assert rule.source.strip() and rule.topic.startswith("rx-")
    from cards.knowledge_base import load_knowledge
    assert f"Knowledge version **{load_knowledge().version}**" in DOC
