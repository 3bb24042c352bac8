"""Knowledge loading: the shipped files load, and a broken file is reported with its file and key."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import cards
from cards import FINDING_CODES, KNOWLEDGE_VERSION, LAB_LOINC_CODES, KnowledgeError, load_knowledge
from cards.knowledge_base import KNOWLEDGE_DIR


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _edit(directory: Path, filename: str, change) -> None:
    path = directory / filename
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_shipped_knowledge_loads_and_is_cached() -> None:
    knowledge = load_knowledge()
    assert knowledge is load_knowledge()
    assert knowledge.version == KNOWLEDGE_VERSION == "2026.12.3"


def test_public_constants() -> None:
    assert cards.__all__
    assert list(LAB_LOINC_CODES) == sorted(LAB_LOINC_CODES)
    for code in ("2823-3", "22760-3", "2951-2", "17861-6", "3016-3", "2157-6", "19123-9", "2601-3", "82810-3",
                 "3024-7", "14920-3", "1751-7", "29265-6"):
        assert code in LAB_LOINC_CODES
    assert list(FINDING_CODES) == sorted(FINDING_CODES)
    assert "http://snomed.info/sct|446841001" in FINDING_CODES
    assert "http://snomed.info/sct|82470000" in FINDING_CODES
    assert all(code.startswith("http://snomed.info/sct|") for code in FINDING_CODES)


def test_unconfirmed_codes_are_flagged_in_the_data() -> None:
    findings = yaml.safe_load((KNOWLEDGE_DIR / "findings.yaml").read_text(encoding="utf-8"))
    fasciculation = {c["code"]: c for c in findings["concepts"]["fasciculation"]["codes"]}
    assert fasciculation["82470000"]["unconfirmed"] is True
    assert "unconfirmed" not in fasciculation["R25.3"]
    meds = yaml.safe_load((KNOWLEDGE_DIR / "medications.yaml").read_text(encoding="utf-8"))
    bendroflumethiazide = {c["code"]: c for c in meds["ingredients"]["bendroflumethiazide"]["codes"]}
    assert bendroflumethiazide["1369"]["unconfirmed"] is True


@pytest.mark.parametrize("filename, change, expected", [
    ("labs.yaml", lambda d: d["analytes"]["potassium"]["units"].update({"mg/dL": "fast"}),
     "labs.yaml: analytes.potassium.units.mg/dL: expected a number"),
    ("labs.yaml", lambda d: d["analytes"]["potassium"].update({"colour": "red"}),
     "labs.yaml: analytes.potassium.colour: unknown key"),
    ("labs.yaml", lambda d: d["analytes"]["sodium"].pop("canonical_unit"),
     "labs.yaml: analytes.sodium.canonical_unit: required key is missing"),
    ("labs.yaml", lambda d: d["orders"]["bmp"]["components"].append(["chloride"]),
     "labs.yaml: orders.bmp.components: unknown analyte 'chloride'"),
    ("labs.yaml", lambda d: d["out_of_range"].update({"chloride": {"low": {"level": "note", "source": "x"}}}),
     "labs.yaml: out_of_range.chloride: unknown analyte"),
    ("labs.yaml", lambda d: d["out_of_range"]["potassium"].update({"very_low": {"level": "warning", "source": "x"}}),
     "labs.yaml: out_of_range.potassium.very_low: must be low or high"),
    ("findings.yaml", lambda d: d["concepts"]["weakness"]["codes"][0].update({"system": "icd9"}),
     "findings.yaml: concepts.weakness.codes[0].system: unknown code system 'icd9'"),
    ("findings.yaml", lambda d: d["concepts"]["weakness"].update({"group": "scary"}),
     "findings.yaml: concepts.weakness.group: expected one of"),
    ("medications.yaml", lambda d: d["ingredients"]["furosemide"].update({"class": "loop"}),
     "medications.yaml: ingredients.furosemide.class: unknown class 'loop'"),
    ("settings.yaml", lambda d: d["thresholds"].update({"ck_red_flag_ratio_at_least": None}),
     "settings.yaml: thresholds.ck_red_flag_ratio_at_least: expected a number, got nothing"),
    ("texts.yaml", lambda d: d["topics"]["abnormal-result"]["summary"].update({"one": "Low {analyte}."}),
     "texts.yaml: topics.abnormal-result.summary.one: unknown placeholder {analyte}"),
    ("texts.yaml", lambda d: d["topics"]["reassurance"].update({"source": "E99"}),
     "texts.yaml: topics.reassurance.source: unknown reference 'E99'"),
    ("texts.yaml", lambda d: d["references"]["E1"].update({"url": "http://doi.org/x"}),
     "texts.yaml: references.E1.url: must be an absolute https URL"),
    ("texts.yaml", lambda d: d["topics"]["quinine-caution"]["summary"].update({"default": {"US": "Only US."}}),
     "texts.yaml: topics.quinine-caution.summary.default"),
    ("texts.yaml", lambda d: d["names"]["analytes"].pop("ck"),
     "texts.yaml: names.analytes: no name for 'ck'"),
])
def test_broken_knowledge_names_file_and_key(knowledge_copy: Path, filename, change, expected) -> None:
    _edit(knowledge_copy, filename, change)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(knowledge_copy)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_invalid_yaml_and_missing_file_are_reported(knowledge_copy: Path, tmp_path: Path) -> None:
    (knowledge_copy / "labs.yaml").write_text("analytes: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"labs\.yaml: line \d+ is not valid YAML"):
        load_knowledge(knowledge_copy)
    (knowledge_copy / "labs.yaml").unlink()
    with pytest.raises(KnowledgeError, match=r"labs\.yaml: cannot read"):
        load_knowledge(knowledge_copy)


def test_every_static_summary_fits_the_limit() -> None:
    texts = load_knowledge().texts
    for topic, entry in texts["topics"].items():
        for variant, text in entry["summary"].items():
            for locale_text in (text.values() if isinstance(text, dict) else [text]):
                if "{" not in locale_text:
                    assert len(locale_text) <= 139, (topic, variant)
                    assert locale_text.endswith("."), (topic, variant)
