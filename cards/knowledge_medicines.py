"""Compiles medications.yaml and drug_products.yaml into the medicine lookups the reading layer uses.

A medicine is recognised by an RxNorm ingredient, clinical-drug (SCD), branded-drug (SBD) or pack
code, by a single-ingredient or combination ATC code, or by a generic, synonym or brand name in its
text. Everything is indexed once, at load.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Mapping

from cards.knowledge_model import Checks, ClassOnlyCode, Ingredient, normalise_text


@dataclass
class MedicineTables:
    ingredients: dict[str, Ingredient]
    by_rxnorm: dict[str, tuple[str, ...]]
    by_atc: dict[str, tuple[str, ...]]
    classes_by_atc: dict[str, ClassOnlyCode]
    strengths: dict[str, dict[str, float]]
    names: dict[str, tuple[str, ...]]


def compile_medicines(compiler: Checks, meds: Mapping[str, Any], products: Mapping[str, Any]) -> MedicineTables:
    classes = set(meds["classes"])
    ingredients: dict[str, Ingredient] = {}
    by_rxnorm: dict[str, list[str]] = defaultdict(list)
    by_atc: dict[str, list[str]] = defaultdict(list)
    strengths: dict[str, dict[str, float]] = {}
    names: dict[str, list[str]] = defaultdict(list)
    for key, entry in meds["ingredients"].items():
        path = f"ingredients.{key}"
        compiler.require(entry["class"] in classes, "medications", f"{path}.class", f"unknown class {entry['class']!r}")
        ingredients[key] = Ingredient(key=key, drug_class=entry["class"], subclass=entry.get("subclass"),
                                      prednisone_factor=entry.get("prednisone_equivalent_factor"))
        for index, code in enumerate(entry["codes"] + entry.get("products", [])):
            system, value = compiler.key("medications", f"{path}.codes[{index}]", code)
            compiler.require(system in ("rxnorm", "atc"), "medications", f"{path}.codes[{index}]",
                             "medicines are coded with rxnorm or atc")
            _add((by_rxnorm if system == "rxnorm" else by_atc)[value], key)
            if "strength_mg" in code:
                strengths.setdefault(value, {})[key] = float(code["strength_mg"])
        for name in [key, *entry.get("synonyms", [])]:
            _add(names[normalise_text(name)], key)
    _products(compiler, products, ingredients, by_rxnorm, by_atc, strengths, names)
    # A combination ATC code whose name gives only a class still tells the class ("lisinopril and
    # diuretics" is a diuretic), which is what the medicine rules look for.
    classes_by_atc = {entry["code"]: ClassOnlyCode(tuple(entry["classes"]), entry["display"])
                      for entry in products["atc_combinations"] if not entry["ingredients"]}
    return MedicineTables(ingredients, {k: tuple(v) for k, v in by_rxnorm.items()},
                          {k: tuple(v) for k, v in by_atc.items()}, classes_by_atc, strengths,
                          {k: tuple(v) for k, v in names.items()})


def _products(compiler: Checks, products: Mapping[str, Any], ingredients: Mapping[str, Ingredient],
              by_rxnorm: dict[str, list[str]], by_atc: dict[str, list[str]], strengths: dict[str, dict[str, float]],
              names: dict[str, list[str]]) -> None:
    for index, product in enumerate(products["products"]):
        path = f"products[{index}]"
        system, code = compiler.key("drug_products", path, product)
        compiler.require(system == "rxnorm", "drug_products", f"{path}.system", "products are RxNorm codes")
        for ingredient, strength in product["ingredients"].items():
            compiler.require(ingredient in ingredients, "drug_products", f"{path}.ingredients",
                             f"unknown ingredient {ingredient!r} (see medications.yaml)")
            _add(by_rxnorm[code], ingredient)
            if strength is not None:
                known = strengths.setdefault(code, {}).setdefault(ingredient, float(strength))
                compiler.require(known == float(strength), "drug_products", f"{path}.ingredients.{ingredient}",
                                 f"strength {strength} disagrees with medications.yaml ({known})")
    classes = {ingredient.drug_class for ingredient in ingredients.values()}
    for index, combination in enumerate(products["atc_combinations"]):
        path = f"atc_combinations[{index}]"
        for drug_class in combination["classes"]:
            compiler.require(drug_class in classes, "drug_products", f"{path}.classes",
                             f"unknown class {drug_class!r} (see medications.yaml)")
        for ingredient in combination["ingredients"]:
            compiler.require(ingredient in ingredients, "drug_products", f"{path}.ingredients",
                             f"unknown ingredient {ingredient!r} (see medications.yaml)")
            compiler.require(ingredients[ingredient].drug_class in combination["classes"], "drug_products",
                             f"{path}.classes", f"{ingredient!r} is a {ingredients[ingredient].drug_class}")
            _add(by_atc[combination["code"]], ingredient)
    for ingredient, brands in products["brand_names"].items():
        compiler.require(ingredient in ingredients, "drug_products", f"brand_names.{ingredient}",
                         f"unknown ingredient {ingredient!r} (see medications.yaml)")
        for brand in brands:
            _add(names[normalise_text(brand)], ingredient)


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)
