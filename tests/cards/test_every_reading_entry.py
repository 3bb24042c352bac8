"""The remaining reading tables of the knowledge files, every entry through the engine (issue 18).

settings.yaml: every code-system alias (and each system URI spelled another way), every recency policy below / at /
above its window. findings.yaml: the pregnancy-status age limit. medications.yaml: every timing code, unit-dose word
and local-corticosteroid route, ATC prefix and word. labs.yaml: every sex code and word of a reference range.
order_codes.yaml: every neutral word of an order name.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from cards import load_knowledge
from cards.calendar import months_before
from cards.knowledge_base import KNOWLEDGE_DIR
from tests.cards.factories import (NOW, card, condition, cramp, dose, fasciculation, magnesium, medication_request,
                                   normal_workup, observation, patient, run, suggested_codes, topics)

K = load_knowledge()


def knowledge(name: str) -> dict:
    return yaml.safe_load((KNOWLEDGE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


SETTINGS, FINDINGS, MEDICATIONS, LABS, ORDERS = (knowledge(n) for n in
                                                 ("settings", "findings", "medications", "labs", "order_codes"))
BASE = [patient(), *normal_workup(), magnesium()]
SIDES = ("below", "at", "above")


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- code systems: every alias, and every URI spelled another way ----------------------------------------------
def _coded(uri: str, code: str) -> dict:
    return {"coding": [{"system": uri, "code": code}]}


def _read_in(short: str, uri: str) -> None:
    """A chart carrying one code of the system under ``uri``; the system is read as ``short``."""
    if short in ("snomed", "icd10cm", "icd10"):
        code = {"snomed": "26544005", "icd10cm": "M62.81", "icd10": "M62.5"}[short]
        weakness = condition(code, uri)
        assert "neurology-referral" in topics(run([*BASE, fasciculation(), weakness])), (short, uri)
        trigger = condition({"snomed": "82470000", "icd10cm": "R25.3", "icd10": "R25.3"}[short], uri)
        assert run([*BASE, trigger]).cards, (short, uri)
    elif short == "loinc":
        assert run([patient(), fasciculation(), observation("2823-3", 4.1, "mmol/L", system=uri)]).view.labs[
            "potassium"].value == 4.1
    elif short == "ucum":
        quantity = {"value": 4.1, "unit": "mEq/L?", "system": uri, "code": "mmol/L"}
        assert run([patient(), fasciculation(), observation("2823-3", None, None, valueQuantity=quantity)]).view.labs[
            "potassium"].value == 4.1
    elif short in ("rxnorm", "atc"):
        chlorthalidone = {"rxnorm": "2409", "atc": "C03BA04"}[short]
        medicine = medication_request(medicationCodeableConcept=_coded(uri, chlorthalidone))
        assert "(chlorthalidone)" in card(run([*BASE, fasciculation(), medicine]), "medication-review")["summary"]
    elif short == "cpt":
        order = {"resourceType": "ServiceRequest", "id": "sr-cpt", "status": "active", "intent": "order",
                 "subject": {"reference": "Patient/p1"}, "code": _coded(uri, "80048")}
        workup = card(run([patient(), fasciculation(), order]), "workup-incomplete")
        assert "24321-2" not in suggested_codes(workup) and "17861-6" not in suggested_codes(workup)
    else:
        raise AssertionError(f"no probe for system {short}: add one")


READ_SYSTEMS = ("snomed", "icd10cm", "icd10", "loinc", "ucum", "rxnorm", "atc", "cpt")
ALIASES = sorted(SETTINGS["system_aliases"].items())


@pytest.mark.parametrize("uri, short", ALIASES, ids=[uri for uri, _ in ALIASES])
def test_every_system_alias_is_read_as_its_system(uri, short):
    _read_in(short, uri)


def _respelled(uri: str) -> str:
    """The same system as an EHR may write it: other scheme, other case, a trailing slash."""
    scheme, rest = uri.split("://", 1)
    return f"{'https' if scheme == 'http' else 'http'}://{rest.upper()}/"


@pytest.mark.parametrize("short", READ_SYSTEMS)
def test_every_system_uri_is_read_whatever_its_spelling(short):
    _read_in(short, SETTINGS["systems"][short])
    _read_in(short, _respelled(SETTINGS["systems"][short]))


# ---- recency policies (settings.yaml) and the pregnancy-status age limit (findings.yaml) ---------------------
def _edge(months: float, side: str):
    edge = months_before(NOW, months)
    return {"below": edge + timedelta(days=1), "at": edge, "above": edge - timedelta(days=1)}[side]


@pytest.mark.parametrize("side", SIDES)
def test_recency_symptom_window(side):
    """A symptom recorded longer ago than the window no longer counts, unless it is still marked active."""
    policy = SETTINGS["recency_policies"]["symptom"]
    when = iso(_edge(policy["months"], side))
    counts = side != "above"
    assert bool(run([*BASE, fasciculation(clinical=None, onset=when, recorded=when)]).cards) is counts
    assert bool(run([*BASE, fasciculation(clinical="active", onset=when, recorded=when)]).cards) is \
        (counts or not policy["applies_when_active"])


@pytest.mark.parametrize("side", SIDES)
def test_recency_pregnancy_window(side):
    policy = SETTINGS["recency_policies"]["pregnancy"]
    when = iso(_edge(policy["months"], side))
    pregnancy = condition("77386006", "snomed", clinical="active", onset=when, recorded=when)
    summary = card(run([*BASE, cramp(), pregnancy]), "cramp-management")["summary"]
    assert summary.startswith("Pregnancy on file") is (side != "above")


@pytest.mark.parametrize("side", SIDES)
def test_recency_recent_deficit_window(side):
    policy = SETTINGS["recency_policies"]["recent_deficit"]
    when = iso(_edge(policy["months"], side))
    hemiplegia = condition("G81.91", clinical="active", onset=when, recorded=when)
    assert ("neurology-referral" in topics(run([*BASE, fasciculation(), hemiplegia]))) is (side != "above")


@pytest.mark.parametrize("side", SIDES)
def test_pregnancy_status_max_age_days(side):
    status = FINDINGS["pregnancy_status"]
    days = status["max_age_days"] + {"below": -1, "at": 0, "above": 1}[side]
    value = status["positive_values"][0]
    record = observation(status["observation_codes"][0]["code"], None, None, effective=iso(NOW - timedelta(days=days)),
                         valueCodeableConcept=_coded(K.uri_by_system[value["system"]], value["code"]))
    summary = card(run([*BASE, cramp(), record]), "cramp-management")["summary"]
    assert summary.startswith("Pregnancy on file") is (side != "above")


# ---- medications.yaml: doses and local corticosteroids ------------------------------------------------------
DAILY_MG = 60  # divisible by every administrations-per-day of the table


@pytest.mark.parametrize("code, per_day", sorted(MEDICATIONS["timing_codes_per_day"].items()))
def test_every_timing_code_gives_its_administrations_per_day(code, per_day):
    dosage = {"timing": {"code": _coded(K.uri_by_system["v3_timing"], code)},
              "doseAndRate": [{"doseQuantity": {"value": DAILY_MG / per_day, "unit": "mg",
                                                "system": K.uri_by_system["ucum"], "code": "mg"}}]}
    steroid = medication_request(rxnorm="8640", dosage=[dosage], authored="2025-01-01")
    review = card(run([*BASE, fasciculation(), steroid]), "medication-review")
    assert f"about {DAILY_MG} mg/day prednisone-equivalent" in review["detail"], review["detail"]


@pytest.mark.parametrize("word", MEDICATIONS["unit_dose_words"])
def test_every_unit_dose_word_counts_tablets_of_the_product(word):
    steroid = medication_request(rxnorm="312615", dosage=[dose(2, unit=word)], authored="2025-01-01")  # 20 mg tablets
    review = card(run([*BASE, fasciculation(), steroid]), "medication-review")
    assert "about 40 mg/day prednisone-equivalent" in review["detail"], review["detail"]


def _stopped_hydrocortisone(**concept_extra) -> dict:
    """Hydrocortisone stopped 5 days ago: reviewed when systemic (corticosteroid taper window)."""
    concept = {"coding": [{"system": K.uri_by_system["rxnorm"], "code": "5492"}], **concept_extra.pop("concept", {})}
    return medication_request(status="stopped", authored="2026-10-21", medicationCodeableConcept=concept,
                              dispenseRequest={"validityPeriod": {"end": "2026-11-10"}}, **concept_extra)


def test_a_systemic_hydrocortisone_stopped_recently_is_reviewed():
    assert "medication-review" in topics(run([*BASE, fasciculation(), _stopped_hydrocortisone()]))


LOCAL = MEDICATIONS["local_corticosteroid"]


@pytest.mark.parametrize("entry", LOCAL["route_codes"], ids=lambda e: e["code"])
def test_every_local_route_makes_a_corticosteroid_local(entry):
    route = _coded(K.uri_by_system[entry["system"]], entry["code"])
    local = _stopped_hydrocortisone(dosageInstruction=[{"route": route}])
    assert "medication-review" not in topics(run([*BASE, fasciculation(), local]))


def _atc_under(prefix: str) -> str:
    """A full 7-character ATC code below the prefix (D07 -> D07AA02, R03BA -> R03BA02)."""
    return prefix + "AA02"[len(prefix) - 3:]


@pytest.mark.parametrize("entry", LOCAL["atc_prefixes"], ids=lambda e: e["code"])
def test_every_local_atc_prefix_makes_a_corticosteroid_local(entry):
    atc = {"system": K.uri_by_system["atc"], "code": _atc_under(entry["code"])}
    local = _stopped_hydrocortisone()
    local["medicationCodeableConcept"]["coding"].append(atc)
    assert "medication-review" not in topics(run([*BASE, fasciculation(), local]))


@pytest.mark.parametrize("word", LOCAL["words"])
def test_every_local_word_makes_a_corticosteroid_local(word):
    spelled = word.replace("*", "er") if word.endswith("*") else word
    local = _stopped_hydrocortisone(concept={"text": f"hydrocortisone 1% {spelled}"})
    assert "medication-review" not in topics(run([*BASE, fasciculation(), local])), spelled


# ---- labs.yaml: the sex a reference range applies to --------------------------------------------------------
RANGES = {"male": (39, 308), "female": (26, 192)}
SEXES = [(sex, "code", entry) for sex, e in LABS["reference_range_sex"].items() for entry in e["codes"]] + \
        [(sex, "word", word) for sex, e in LABS["reference_range_sex"].items() for word in e["words"]]


@pytest.mark.parametrize("sex, kind, entry", SEXES,
                         ids=[f"{s}-{e['code'] if k == 'code' else e}" for s, k, e in SEXES])
def test_every_sex_code_and_word_picks_the_range_for_the_patient(sex, kind, entry):
    other = "female" if sex == "male" else "male"
    applies = _coded(K.uri_by_system[entry["system"]], entry["code"]) if kind == "code" else {"text": entry.title()}
    other_applies = _coded(K.uri_by_system["administrative_gender"], other)

    def bounds(which, applies_to):
        low, high = RANGES[which]
        return {"low": {"value": low, "unit": "U/L"}, "high": {"value": high, "unit": "U/L"}, "appliesTo": [applies_to]}

    ranges = [bounds(other, other_applies), bounds(sex, applies)]
    result = observation("2157-6", 150, "U/L", referenceRange=ranges)
    view = run([patient(gender=sex), fasciculation(), result]).view
    assert (view.labs["ck"].low, view.labs["ck"].high) == RANGES[sex]


# ---- order_codes.yaml: neutral words around an order name ------------------------------------------------------
@pytest.mark.parametrize("word", ORDERS["neutral_words"])
def test_every_neutral_word_keeps_an_order_name_whole(word):
    order = {"resourceType": "ServiceRequest", "id": "sr-tsh", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/p1"},
             "code": {"coding": [{"system": "https://fhir.example.org/codeSet/200", "code": "7"}],
                      "text": f"TSH {word}"}}
    workup = card(run([patient(), fasciculation(), order]), "workup-incomplete")
    assert "3016-3" not in suggested_codes(workup), f"'TSH {word}' was not read as a TSH order"
    other = dict(order, code={**order["code"], "text": f"TSH {word} receptor antibodies"})
    assert "3016-3" in suggested_codes(card(run([patient(), fasciculation(), other]), "workup-incomplete"))
