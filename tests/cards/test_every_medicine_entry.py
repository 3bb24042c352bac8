"""Every medicine of cards/knowledge/medications.yaml and drug_products.yaml gives its card, through the engine.

Generated from the YAML (issue 18): each ingredient by its RxNorm and ATC codes, its listed products, its name and
every synonym and brand name; each drug_products.yaml product and combination ATC code. The card must name the
medicine and its class (medication review), or be the card of its own class (quinine, cyclobenzaprine, a treatment
already taken). test_terminology_reading.py checks the same entries in the reading layer only.
"""
from __future__ import annotations

import pytest
import yaml

from cards import load_knowledge
from cards.knowledge_base import KNOWLEDGE_DIR
from cards.render import Texts
from tests.cards.factories import (card, fasciculation, magnesium, medication_request, normal_workup, patient, run,
                                   topics)

K = load_knowledge()
TEXTS = Texts(K, "US")
MEDICATIONS = yaml.safe_load((KNOWLEDGE_DIR / "medications.yaml").read_text(encoding="utf-8"))
PRODUCTS = yaml.safe_load((KNOWLEDGE_DIR / "drug_products.yaml").read_text(encoding="utf-8"))
INGREDIENTS = MEDICATIONS["ingredients"]
# Moderate fasciculation: persistent enough for the treatment-options card (a treatment already taken);
# magnesium: a diuretic asks for it, so the work-up stays complete.
BASE = [patient(), *normal_workup(), magnesium(), fasciculation(severity="moderate")]
REVIEWED = {"diuretic", "stimulant", "beta2_agonist", "cholinesterase_inhibitor", "systemic_corticosteroid"}
OWN_CARD = {"quinine": "quinine-caution", "cyclobenzaprine": "cyclobenzaprine-not-indicated"}


def class_label(ingredient: str) -> str:
    entry = INGREDIENTS[ingredient]
    if entry["class"] == "diuretic":
        return TEXTS.name("diuretic_subclasses", entry["subclass"])
    return TEXTS.name("classes", entry["class"])


def charted(concept: dict, classes: set[str]) -> dict:
    """A current order; a corticosteroid stopped 5 days ago instead (a steroid is reviewed only when its dose is
    high or falling, or it was stopped within the taper window; a stop needs no dose to be read)."""
    if "systemic_corticosteroid" in classes:
        return medication_request(status="stopped", authored="2026-10-21", medicationCodeableConcept=concept,
                                  dispenseRequest={"validityPeriod": {"end": "2026-11-10"}})
    return medication_request(authored="2026-10-01", medicationCodeableConcept=concept)


def review_of(concept: dict, ingredients: list[str], classes: set[str] | None = None):
    classes = classes or {INGREDIENTS[name]["class"] for name in ingredients}
    return run([*BASE, charted(concept, classes)])


def assert_named(result, ingredients: list[str], shown: str) -> None:
    """The card of each ingredient's class names it: its line starts with what the chart shows, then its class."""
    for name in ingredients:
        drug_class = INGREDIENTS[name]["class"]
        if drug_class in REVIEWED:
            review = card(result, "medication-review")
            line = next((line for line in review["detail"].splitlines() if line.startswith(f"- {shown} — ")), None)
            assert line is not None, review["detail"]
            assert f"({class_label(ingredients[0])})" in line, line  # the first ingredient's class, for the line
            if drug_class != "systemic_corticosteroid":
                assert name in review["summary"], review["summary"]
            else:
                assert "corticosteroid was recently stopped" in review["summary"]
        elif drug_class in OWN_CARD:
            assert f"- {shown} — active MedicationRequest" in card(result, OWN_CARD[drug_class])["detail"]
        else:  # fasciculation_treatment: never a medicine to review, never offered again as new
            assert f"already treated ({name})" in card(result, "treatment-options")["summary"]
            assert "medication-review" not in topics(result)


def coding(system: str, code: str) -> dict:
    return {"coding": [{"system": K.uri_by_system[system], "code": str(code)}]}


# ---- medications.yaml ------------------------------------------------------------------------------------------
CODES = [(name, entry["system"], str(entry["code"])) for name, ingredient in INGREDIENTS.items()
         for entry in [*ingredient["codes"], *ingredient.get("products", [])]]


@pytest.mark.parametrize("name, system, code", CODES, ids=[f"{n}-{s}-{c}" for n, s, c in CODES])
def test_every_ingredient_code_gives_its_card(name, system, code):
    assert_named(review_of(coding(system, code), [name]), [name], name)


NAMES = [(name, spelling) for name, ingredient in INGREDIENTS.items()
         for spelling in [name, *ingredient.get("synonyms", [])]]


@pytest.mark.parametrize("name, spelling", NAMES, ids=[f"{n}-{s}" for n, s in NAMES])
def test_every_ingredient_name_and_synonym_gives_its_card(name, spelling):
    text = f"{spelling.title()} oral"
    assert_named(review_of({"text": text}, [name]), [name], text)


BRANDS: dict[str, list[str]] = {}
for owner, brands in PRODUCTS["brand_names"].items():
    for brand in brands:
        BRANDS.setdefault(brand, []).append(owner)


@pytest.mark.parametrize("brand", sorted(BRANDS))
def test_every_brand_name_gives_the_card_of_each_of_its_ingredients(brand):
    text = f"{brand} oral"
    assert_named(review_of({"text": text}, BRANDS[brand]), BRANDS[brand], text)


# ---- drug_products.yaml -------------------------------------------------------------------------------------
@pytest.mark.parametrize("product", PRODUCTS["products"], ids=lambda p: p["code"])
def test_every_product_code_gives_the_card_of_its_ingredients(product):
    ingredients = list(product["ingredients"])
    result = review_of(coding("rxnorm", product["code"]), ingredients)
    if len(ingredients) == 1:
        assert_named(result, ingredients, ingredients[0])
    else:
        _assert_combination(result, ingredients)


def _assert_combination(result, ingredients: list[str]) -> None:
    review = card(result, "medication-review")
    assert all(name in review["summary"] for name in ingredients), review["summary"]
    labels = {class_label(name) for name in ingredients}
    assert any(f"({label})" in review["detail"] for label in labels), review["detail"]


@pytest.mark.parametrize("combination", PRODUCTS["atc_combinations"], ids=lambda c: c["code"])
def test_every_combination_atc_code_gives_its_card(combination):
    result = review_of(coding("atc", combination["code"]), combination["ingredients"], set(combination["classes"]))
    if combination["ingredients"]:
        if len(combination["ingredients"]) == 1:
            assert_named(result, combination["ingredients"], combination["ingredients"][0])
        else:
            _assert_combination(result, combination["ingredients"])
    else:  # the ATC name gives only a class: the card shows the ATC name and the class
        review = card(result, "medication-review")
        labels = [TEXTS.name("classes", c) for c in combination["classes"]]
        assert f"- {combination['display']} — " in review["detail"], review["detail"]
        assert any(f"({label})" in review["detail"] for label in labels)
