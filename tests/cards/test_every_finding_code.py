"""Every code and word of cards/knowledge/findings.yaml, through the whole engine (cards.review), on a minimal chart.

Generated from the YAML itself (issue 18): a code, site or word added later is tested without anyone remembering
to. Each red-flag code raises the neurology referral and the card names it; each index-symptom code starts the
review; each differential, diagnosis and context code has its own effect. The codes below an ICD-10 prefix entry
(icd_descendants.json) are charted as an EHR would send them. test_terminology_data.py checks the data itself and
test_terminology_reading.py the reading layer; this file checks what the clinician is shown.
"""
from __future__ import annotations

import json

import pytest
import yaml

from cards import load_knowledge
from cards.knowledge_base import KNOWLEDGE_DIR
from cards.knowledge_icd import DESCENDANTS_FILE
from cards.render import Texts
from tests.cards.factories import (card, condition, cramp, fasciculation, finding_observation, magnesium,
                                   normal_workup, observation, patient, run, service_request, suggested_codes, topics)

K = load_knowledge()
TEXTS = Texts(K, "US")
FINDINGS = yaml.safe_load((KNOWLEDGE_DIR / "findings.yaml").read_text(encoding="utf-8"))
DESCENDANTS = json.loads((KNOWLEDGE_DIR / DESCENDANTS_FILE).read_text(encoding="utf-8"))["descendants"]
BASE = [patient(), *normal_workup(), magnesium()]
REFERRAL = "neurology-referral"
# Prefix entries of these concepts have thousands of codes below them; the reading test checks every one maps to
# its concept, and here the first, middle and last stand for the rest.
SAMPLED_PREFIXES = {"pregnancy"}


def charted_codes(group: str | None = None, *, concepts: tuple[str, ...] = ()):
    """(concept, system, code) for every code of the concepts of ``group`` (or named), descendants included."""
    for key, entry in FINDINGS["concepts"].items():
        if (group is not None and entry["group"] != group) or (concepts and key not in concepts):
            continue
        for item in entry["codes"]:
            system, code = item["system"], str(item["code"])
            if not (item.get("prefix") and len(code) == 1):  # a chapter letter ("O") is not a code
                yield key, system, code
            if item.get("prefix"):
                below = DESCENDANTS[system][code]
                if key in SAMPLED_PREFIXES and len(below) > 3:
                    below = [below[0], below[len(below) // 2], below[-1]]
                for member in below:
                    if K.concept_by_code[(system, member)] == key:  # not listed elsewhere under another concept
                        yield key, system, member


def ids(cases) -> list[str]:
    return [f"{concept}-{system}-{code}" for concept, system, code, *_ in cases]


def coded(code: str, system: str, resource: str = "Condition", **kwargs) -> dict:
    """A Condition (or a finding Observation) carrying only the code, in the system's canonical URI."""
    uri = K.uri_by_system[system]
    if resource == "Condition":
        return condition(code, uri, **kwargs)
    return finding_observation(code, code={"coding": [{"system": uri, "code": code}]}, **kwargs)


def finding_line(concept: str, system: str, code: str) -> str:
    """How a card's "why" list names the record: "Muscle weakness (ICD-10-CM R53.1)"."""
    return f"{TEXTS.name('concepts', concept)} ({TEXTS.name('systems', system)} {code})"


def referral_reason(concept: str) -> str:
    if FINDINGS["concepts"][concept].get("bulbar"):
        return TEXTS.topic(REFERRAL, "red_flags", "bulbar")
    return TEXTS.topic(REFERRAL, "red_flags", concept)


# ---- red flags ------------------------------------------------------------------------------------------------
RED_FLAGS = [(c, s, code, resource) for c, s, code in charted_codes("red_flag")
             for resource in (("Condition", "Observation") if FINDINGS["concepts"][c].get("observation")
                              else ("Condition",))]


@pytest.mark.parametrize("concept, system, code, resource", RED_FLAGS,
                         ids=[f"{i}-{r}" for i, (*_, r) in zip(ids(RED_FLAGS), RED_FLAGS)])
def test_every_red_flag_code_raises_the_referral_naming_it(concept, system, code, resource):
    result = run([*BASE, fasciculation(), coded(code, system, resource)])
    referral = card(result, REFERRAL)
    line = f"- {referral_reason(concept)}: {finding_line(concept, system, code)}"
    assert line in referral["detail"], referral["detail"]
    bulbar = FINDINGS["concepts"][concept].get("bulbar", False)
    assert referral["indicator"] == ("critical" if bulbar else "warning")
    assert suggested_codes(referral) == ["183521007"]
    assert "reassurance" not in topics(result)


DYSPNOEA = [code for _, system, code in charted_codes(concepts=("dyspnoea",)) if system == "icd10cm"][:1]
EXPLANATIONS = list(charted_codes(concepts=("cardiorespiratory_explanation",)))


@pytest.mark.parametrize("concept, system, code", EXPLANATIONS, ids=ids(EXPLANATIONS))
def test_every_cardiorespiratory_code_explains_breathlessness_away(concept, system, code):
    breathless = condition(DYSPNOEA[0])
    assert REFERRAL in topics(run([*BASE, fasciculation(), breathless]))
    result = run([*BASE, fasciculation(), breathless, coded(code, system)])
    assert REFERRAL not in topics(result) and "reassurance" in topics(result)


# Myotonia is a differential and red flag RF6: on its own it refers, and the card names it.
MYOTONIA = list(charted_codes(concepts=("myotonia",)))


@pytest.mark.parametrize("concept, system, code", MYOTONIA, ids=ids(MYOTONIA))
def test_every_myotonia_code_refers_as_a_red_flag(concept, system, code):
    referral = card(run([*BASE, fasciculation(), coded(code, system)]), REFERRAL)
    assert f"- {referral_reason('myotonia')}: {finding_line('myotonia', system, code)}" in referral["detail"]


# ---- index symptoms and differentials ----------------------------------------------------------------------------
INDEX = [(c, s, code, resource) for c, s, code in charted_codes("index") for resource in ("Condition", "Observation")]


@pytest.mark.parametrize("concept, system, code, resource", INDEX,
                         ids=[f"{i}-{r}" for i, (*_, r) in zip(ids(INDEX), INDEX)])
def test_every_index_symptom_code_starts_the_review(concept, system, code, resource):
    """Alone on a chart with a normal work-up, the symptom starts the review and the card names the record."""
    result = run([*BASE, coded(code, system, resource)])
    assert result.cards, f"{system} {code} started no review"
    assert any(finding_line(concept, system, code) in c["detail"] for c in result.cards), topics(result)
    assert REFERRAL not in topics(result)
    # Without it, the same chart gets no card at all.
    assert run(BASE).cards == []


DIFFERENTIALS = [(c, s, code) for c, s, code in charted_codes("differential") if c != "myotonia"]


@pytest.mark.parametrize("concept, system, code", DIFFERENTIALS, ids=ids(DIFFERENTIALS))
def test_every_differential_code_gives_its_differential_card(concept, system, code):
    result = run([*BASE, coded(code, system)])
    assert topics(result) == ["differential"]
    differential = result.cards[0]
    assert f"- {finding_line(concept, system, code)}" in differential["detail"]
    assert differential["summary"].startswith(TEXTS.name("concepts", concept))


# ---- diagnoses and context ---------------------------------------------------------------------------------------
MND = list(charted_codes(concepts=("motor_neuron_disease",)))


@pytest.mark.parametrize("concept, system, code", MND, ids=ids(MND))
def test_every_motor_neuron_disease_code_is_a_known_diagnosis(concept, system, code):
    result = run([*BASE, fasciculation(), coded(code, system)])
    assert topics(result) == [REFERRAL]
    known = result.cards[0]
    assert known["summary"] == TEXTS.topic(REFERRAL, "summary", "known_mnd")
    assert f"- {TEXTS.topic(REFERRAL, 'red_flags', 'known_mnd')}: {finding_line(concept, system, code)}" \
        in known["detail"]
    assert "suggestions" not in known


OTHER_NEUROLOGICAL = list(charted_codes(concepts=("other_neurological_symptom",)))


@pytest.mark.parametrize("concept, system, code", OTHER_NEUROLOGICAL, ids=ids(OTHER_NEUROLOGICAL))
def test_every_other_neurological_symptom_code_makes_myokymia_a_red_flag(concept, system, code):
    myokymia = condition("G51.4")
    assert REFERRAL not in topics(run([*BASE, myokymia]))
    referral = card(run([*BASE, myokymia, coded(code, system)]), REFERRAL)
    assert TEXTS.topic(REFERRAL, "red_flags", "myokymia_with_other") in referral["detail"]
    assert finding_line(concept, system, code) in referral["detail"]


PREGNANCY = list(charted_codes(concepts=("pregnancy",)))
PREGNANT_SUMMARY = "Pregnancy on file (current or recent)"


@pytest.mark.parametrize("concept, system, code", PREGNANCY, ids=ids(PREGNANCY))
def test_every_pregnancy_code_turns_cramp_advice_to_pregnancy_advice(concept, system, code):
    summary = card(run([*BASE, cramp(), coded(code, system)]), "cramp-management")["summary"]
    assert summary.startswith(PREGNANT_SUMMARY) and "no quinine" in summary


def test_a_pregnancy_status_observation_with_a_pregnant_value_is_a_pregnancy():
    status = FINDINGS["pregnancy_status"]
    for code in status["observation_codes"]:
        for value in status["positive_values"]:
            record = observation(code["code"], None, None, valueCodeableConcept={"coding": [
                {"system": K.uri_by_system[value["system"]], "code": value["code"]}]})
            summary = card(run([*BASE, cramp(), record]), "cramp-management")["summary"]
            assert summary.startswith(PREGNANT_SUMMARY), (code, value)
    assert not card(run([*BASE, cramp()]), "cramp-management")["summary"].startswith(PREGNANT_SUMMARY)


PAD = list(charted_codes(concepts=("peripheral_arterial_disease",)))


@pytest.mark.parametrize("concept, system, code", PAD, ids=ids(PAD))
def test_every_peripheral_arterial_disease_code_asks_for_an_abi_before_compression(concept, system, code):
    caution = card(run([*BASE, cramp(), coded(code, system)]), "compression-caution")
    assert "measure the ABI" in caution["summary"]
    assert f"- {finding_line(concept, system, code)}" in caution["detail"]


HEALTH_ANXIETY = list(charted_codes(concepts=("health_anxiety",)))


@pytest.mark.parametrize("concept, system, code", HEALTH_ANXIETY, ids=ids(HEALTH_ANXIETY))
def test_every_health_anxiety_code_shapes_the_reassurance(concept, system, code):
    plain = card(run([*BASE, fasciculation()]), "reassurance")
    anxious = card(run([*BASE, fasciculation(), coded(code, system)]), "reassurance")
    assert finding_line(concept, system, code) in anxious["detail"]
    assert anxious["detail"] != plain["detail"]


# ---- severity, body sites, absent findings and referral orders -----------------------------------------------
@pytest.mark.parametrize("entry", FINDINGS["severity"], ids=lambda e: f"{e['level']}-{e['code']}")
def test_every_severity_code_is_read_and_only_severe_is_florid(entry):
    severity = {"coding": [{"system": K.uri_by_system[entry["system"]], "code": entry["code"]}]}
    record = fasciculation()
    record["severity"] = severity
    result = run([*BASE, record])
    if entry["level"] == "severe":
        assert TEXTS.topic(REFERRAL, "red_flags", "florid_severe") in card(result, REFERRAL)["detail"]
    else:
        assert REFERRAL not in topics(result)
        assert f"severity {TEXTS.name('severity', entry['level'])}" in card(result, "reassurance")["detail"]


def _site_code(entry: dict) -> dict:
    return {"coding": [{"system": K.uri_by_system[entry["system"]], "code": entry["code"]}]}


TONGUE = [("code", _site_code(e)) for e in FINDINGS["tongue_body_site"]["codes"]] + \
         [("word", {"text": word.title()}) for word in FINDINGS["tongue_body_site"]["words"]]


@pytest.mark.parametrize("kind, site", TONGUE,
                         ids=[f"{k}-{s.get('text') or s['coding'][0]['code']}" for k, s in TONGUE])
def test_every_tongue_site_makes_fasciculation_bulbar(kind, site):
    referral = card(run([*BASE, fasciculation(bodySite=[site])]), REFERRAL)
    assert referral["indicator"] == "critical"
    assert TEXTS.topic(REFERRAL, "red_flags", "tongue_fasciculation") in referral["detail"]


WIDESPREAD = [("code", e["code"]) for e in FINDINGS["widespread"]["codes"]] + \
             [("word", word) for word in FINDINGS["widespread"]["words"]]


@pytest.mark.parametrize("kind, value", WIDESPREAD, ids=[f"{k}-{v}" for k, v in WIDESPREAD])
def test_every_widespread_code_and_word_is_a_florid_red_flag(kind, value):
    record = fasciculation()
    if kind == "code":
        record["bodySite"] = [_site_code(next(e for e in FINDINGS["widespread"]["codes"] if e["code"] == value))]
    else:
        record["code"]["text"] = f"Fasciculation, {value}"
    referral = card(run([*BASE, record]), REFERRAL)
    assert TEXTS.topic(REFERRAL, "red_flags", "florid_widespread") in referral["detail"]


REGIONS = FINDINGS["body_regions"]["regions"]
REGION_SITES = [(region, "code", _site_code(e)) for region, entry in REGIONS.items() for e in entry["codes"]] + \
               [(region, "word", {"text": word}) for region, entry in REGIONS.items() for word in entry["words"]]
ANCHORS = {"thigh": {"text": "Thigh"}, "hand": {"text": "Hand"}, "neck": {"text": "Neck"}}
THREE_SITES = TEXTS.topic(REFERRAL, "red_flags", "florid_sites").format(count=3)


@pytest.mark.parametrize("region, kind, site", REGION_SITES,
                         ids=[f"{r}-{s.get('text') or s['coding'][0]['code']}" for r, _, s in REGION_SITES])
def test_every_body_region_code_and_word_counts_as_its_region(region, kind, site):
    """The site plus two other regions is three regions (a referral); plus a site of its own region is still one."""
    others = [anchor for key, anchor in ANCHORS.items() if key != region][:2]
    if region != "tongue":  # a tongue site is bulbar on its own (test above)
        same = {"text": REGIONS[region]["words"][0]} if kind == "code" else _site_code(REGIONS[region]["codes"][0])
        alone = run([*BASE, fasciculation(bodySite=[site, same, others[0]])])
        assert REFERRAL not in topics(alone), f"{site} and {same} were counted as two regions"
    assert THREE_SITES in card(run([*BASE, fasciculation(bodySite=[site, *others])]), REFERRAL)["detail"]


LATERALITY = FINDINGS["body_regions"]["laterality"]
SIDES = [("code", _site_code(e)) for e in LATERALITY["codes"]] + [("word", w) for w in LATERALITY["words"]]


@pytest.mark.parametrize("kind, side", SIDES, ids=[f"{k}-{s if isinstance(s, str) else s['coding'][0]['code']}"
                                                   for k, s in SIDES])
def test_every_laterality_is_not_a_region_of_its_own(kind, side):
    if kind == "code":
        sites = [{"coding": [*_site_code(REGIONS["calf"]["codes"][0])["coding"], *side["coding"]]}, side,
                 {"text": "Thigh"}]
    else:
        sites = [{"text": f"{side} calf"}, {"text": "calf"}, {"text": "Thigh"}]
    assert REFERRAL not in topics(run([*BASE, fasciculation(bodySite=sites)])), sites


NEGATIVE = [("code", {"valueCodeableConcept": _site_code(e)}) for e in FINDINGS["negative_values"]["codes"]
            if e["system"] != "v3_interpretation"] + \
           [("interpretation", {"interpretation": [_site_code(e)]}) for e in FINDINGS["negative_values"]["codes"]
            if e["system"] == "v3_interpretation"] + \
           [("word", {"valueString": word}) for word in FINDINGS["negative_values"]["words"]]


@pytest.mark.parametrize("kind, extra", NEGATIVE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(NEGATIVE)])
def test_every_negative_value_records_the_red_flag_as_absent(kind, extra):
    absent = finding_observation("26544005", **extra)
    assert topics(run([*BASE, fasciculation(), absent])) == ["reassurance"]


NEGATION = FINDINGS["negation"]
NEGATED = [("leading", f"{word} weakness") for word in NEGATION["leading"]] + \
          [("filler", f"No {word} weakness") for word in NEGATION["fillers"]] + \
          [("trailing", f"Weakness {word}") for word in NEGATION["trailing"]]


@pytest.mark.parametrize("kind, text", NEGATED, ids=[text for _, text in NEGATED])
def test_every_negation_word_records_the_finding_as_absent(kind, text):
    absent = finding_observation("26544005", code={"coding": [{"system": K.uri_by_system["snomed"],
                                                               "code": "26544005"}], "text": text})
    assert topics(run([*BASE, fasciculation(), absent])) == ["reassurance"], text


@pytest.mark.parametrize("word", NEGATION["breakers"])
def test_every_breaker_word_keeps_the_finding_present(word):
    text = f"No weakness {word} before"
    present = finding_observation("26544005", code={"coding": [{"system": K.uri_by_system["snomed"],
                                                                "code": "26544005"}], "text": text})
    assert REFERRAL in topics(run([*BASE, fasciculation(), present])), text


@pytest.mark.parametrize("entry", FINDINGS["neurology_referral_orders"], ids=lambda e: e["code"])
def test_every_neurology_referral_order_means_a_referral_is_under_way(entry):
    referral = card(run([*BASE, fasciculation(), condition("M62.81"), service_request(entry["code"], "snomed")]),
                    REFERRAL)
    assert referral["summary"] == TEXTS.topic(REFERRAL, "summary", "already_referred")
    assert "suggestions" not in referral
