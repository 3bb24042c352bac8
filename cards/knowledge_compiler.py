"""Cross-checks the knowledge files against each other and builds the lookup tables, once."""
from __future__ import annotations

import re
from collections import defaultdict
from types import MappingProxyType
from typing import Any, Mapping

from cards.knowledge_model import (TRIGGER_GROUPS, Analyte, CodeKey, Concept, Ingredient, Knowledge, KnowledgeError,
                                   LabCode, Order, Thresholds, bare_code, normalise_text)

FILE_NAMES = {"settings": "settings.yaml", "findings": "findings.yaml", "labs": "labs.yaml",
              "medications": "medications.yaml", "texts": "texts.yaml"}


class Compiler:
    """Cross-checks the files against each other and builds the lookup tables."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        settings = raw["settings"]
        self.uri_by_system = dict(settings["systems"])
        self.system_by_uri = {uri: name for name, uri in self.uri_by_system.items()}
        for uri, name in settings["system_aliases"].items():
            self._require(name in self.uri_by_system, "settings", f"system_aliases.{uri}", f"unknown system {name!r}")
            self.system_by_uri[uri] = name

    def build(self) -> Knowledge:
        settings, findings, labs, meds, texts = (self.raw[name] for name in FILE_NAMES)
        thresholds = self._thresholds(settings)
        concepts = self._concepts(findings, settings["recency_policies"])
        concept_by_code, prefixes = self._concept_index(findings)
        analytes, lab_codes = self._analytes(labs)
        orders = self._orders(labs, analytes)
        ingredients, by_rxnorm, by_atc, strengths, names = self._ingredients(meds)
        self._check_cross_references(thresholds, labs, meds, analytes, concepts)
        self._check_texts(texts, concepts, analytes, orders, meds)
        pregnancy = findings["pregnancy_status"]
        local = meds["local_corticosteroid"]
        return Knowledge(
            version=settings["knowledge_version"],
            thresholds=thresholds,
            system_by_uri=MappingProxyType(self.system_by_uri),
            uri_by_system=MappingProxyType(self.uri_by_system),
            concepts=MappingProxyType(concepts),
            concept_by_code=MappingProxyType(concept_by_code),
            concept_prefixes=MappingProxyType(prefixes),
            severity_by_code=MappingProxyType({self._key("findings", "severity", c): c["level"]
                                               for c in findings["severity"]}),
            tongue_codes=self._keys("findings", "tongue_body_site.codes", findings["tongue_body_site"]["codes"]),
            tongue_words=_word_pattern(findings["tongue_body_site"]["words"]),
            negative_codes=self._keys("findings", "negative_values.codes", findings["negative_values"]["codes"]),
            negative_words=_word_pattern(findings["negative_values"]["words"]),
            pregnancy_observation_codes=self._keys("findings", "pregnancy_status", pregnancy["observation_codes"]),
            pregnancy_positive_codes=self._keys("findings", "pregnancy_status", pregnancy["positive_values"]),
            pregnancy_max_age_days=int(pregnancy["max_age_days"]),
            referral_order_codes=self._keys("findings", "neurology_referral_orders",
                                            findings["neurology_referral_orders"]),
            analytes=MappingProxyType(analytes),
            lab_codes=MappingProxyType(lab_codes),
            unit_aliases=MappingProxyType(dict(labs["unit_aliases"])),
            orders=MappingProxyType(orders),
            required_orders=tuple(labs["workup"]["required_orders"]),
            magnesium_classes=frozenset(labs["workup"]["magnesium_when_current_class"]),
            lab_order_category=self._coding("labs", "lab_order_category", labs["lab_order_category"]),
            referral_order_category=self._coding("labs", "referral_order_category", labs["referral_order_category"]),
            referral_order_code=self._coding("labs", "referral_order_code", labs["referral_order_code"]),
            ingredients=MappingProxyType(ingredients),
            ingredients_by_rxnorm=MappingProxyType(by_rxnorm),
            ingredients_by_atc=MappingProxyType(by_atc),
            product_strength_mg=MappingProxyType(strengths),
            medicine_names=_word_pattern(names),
            ingredient_by_name=MappingProxyType(names),
            local_route_codes=self._keys("medications", "local_corticosteroid.route_codes", local["route_codes"]),
            local_atc_prefixes=tuple(entry["code"] for entry in local["atc_prefixes"]),
            local_words=_word_pattern(local["words"]),
            unit_dose_words=frozenset(word.lower() for word in meds["unit_dose_words"]),
            timing_per_day=MappingProxyType(dict(meds["timing_codes_per_day"])),
            texts=texts,
            lab_loinc_codes=tuple(sorted(
                {code for (system, code) in lab_codes if system == "loinc"}
                | {code for (system, code) in self._keys("findings", "pregnancy_status", pregnancy["observation_codes"])
                   if system == "loinc"})),
            finding_codes=self._finding_codes(concepts, findings, lab_codes),
            **self._trigger_codes(findings, concepts),
        )

    # ---- helpers ------------------------------------------------------------------------------------
    def _require(self, condition: bool, file: str, path: str, message: str) -> None:
        if not condition:
            raise KnowledgeError(f"{FILE_NAMES[file]}: {path}: {message}")

    def _key(self, file: str, path: str, entry: Mapping[str, Any]) -> CodeKey:
        self._require(entry["system"] in self.uri_by_system, file, f"{path}.system",
                      f"unknown code system {entry['system']!r} (see settings.yaml systems)")
        return entry["system"], entry["code"]

    def _keys(self, file: str, path: str, entries: list[Mapping[str, Any]]) -> frozenset[CodeKey]:
        return frozenset(self._key(file, path, entry) for entry in entries)

    def _coding(self, file: str, path: str, entry: Mapping[str, Any]) -> Mapping[str, str]:
        system, code = self._key(file, path, entry)
        coding = {"system": self.uri_by_system[system], "code": code}
        if "display" in entry:
            coding["display"] = entry["display"]
        return MappingProxyType(coding)

    def _thresholds(self, settings: Mapping[str, Any]) -> Thresholds:
        values = dict(settings["thresholds"])
        for name in ("lookback_short_analytes", "lookback_short_trigger_classes"):
            values[name] = frozenset(values[name])
        return Thresholds(**values)

    def _concepts(self, findings: Mapping[str, Any], policies: Mapping[str, Any]) -> dict[str, Concept]:
        concepts = {}
        for key, entry in findings["concepts"].items():
            policy = policies.get(entry["recency"])
            self._require(policy is not None, "findings", f"concepts.{key}.recency",
                          f"unknown recency policy {entry['recency']!r} (see settings.yaml recency_policies)")
            concepts[key] = Concept(
                key=key, group=entry["group"], recency_months=policy.get("months"),
                recency_applies_when_active=policy.get("applies_when_active", False),
                observation=entry.get("observation", False), bulbar=entry.get("bulbar", False),
                unless_present=tuple(entry.get("unless_present", ())))
        for key, concept in concepts.items():
            for other in concept.unless_present:
                self._require(other in concepts, "findings", f"concepts.{key}.unless_present", f"unknown concept {other!r}")
        return concepts

    def _concept_index(self, findings: Mapping[str, Any]):
        exact: dict[CodeKey, str] = {}
        prefixes: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key, entry in findings["concepts"].items():
            for index, code in enumerate(entry["codes"]):
                path = f"concepts.{key}.codes[{index}]"
                system, value = self._key("findings", path, code)
                owner = exact.get((system, value))
                self._require(owner in (None, key), "findings", path, f"code {value} already belongs to {owner}")
                exact[(system, value)] = key
                if code.get("prefix"):
                    prefixes[system].append((value, key))
        # Longest prefix first, so a more specific category wins.
        ordered = {system: tuple(sorted(items, key=lambda item: -len(item[0]))) for system, items in prefixes.items()}
        return exact, ordered

    @staticmethod
    def _trigger_codes(findings: Mapping[str, Any], concepts: Mapping[str, Concept]) -> dict[str, Any]:
        codes, prefixes = set(), set()
        for key, entry in findings["concepts"].items():
            if concepts[key].group in TRIGGER_GROUPS:
                for code in entry["codes"]:
                    (prefixes if code.get("prefix") else codes).add(bare_code(code["code"]))
        return {"trigger_codes": frozenset(codes), "trigger_code_prefixes": tuple(sorted(prefixes))}

    def _analytes(self, labs: Mapping[str, Any]):
        analytes, lab_codes = {}, {}
        for key, entry in labs["analytes"].items():
            by_sex = {sex: (r.get("low"), r.get("high")) for sex, r in entry.get("default_range_by_sex", {}).items()}
            default = entry.get("default_range")
            analytes[key] = Analyte(
                key=key, canonical_unit=entry["canonical_unit"], decimals=entry["decimals"],
                default_range=(default.get("low"), default.get("high")) if default else None,
                default_range_by_sex=MappingProxyType(by_sex), unitless=entry.get("unitless", False))
            self._require(entry["units"].get(entry["canonical_unit"]) == 1, "labs", f"analytes.{key}.units",
                          f"the canonical unit {entry['canonical_unit']!r} must be listed with factor 1")
            for index, code in enumerate(entry["codes"]):
                code_key = self._key("labs", f"analytes.{key}.codes[{index}]", code)
                self._require(code_key not in lab_codes, "labs", f"analytes.{key}.codes[{index}]",
                              f"code {code['code']} is listed twice")
                units = {**entry["units"], **code.get("units", {})}
                lab_codes[code_key] = LabCode(analyte=key, code=code["code"], units=MappingProxyType(units))
        for alias, target in labs["unit_aliases"].items():
            self._require(not any(alias in lab.units for lab in lab_codes.values()), "labs",
                          f"unit_aliases.{alias}", "is already a unit code; an alias must be a non-UCUM spelling")
        return analytes, lab_codes

    def _orders(self, labs: Mapping[str, Any], analytes: Mapping[str, Analyte]) -> dict[str, Order]:
        orders = {}
        for key, entry in labs["orders"].items():
            for alternatives in entry["components"]:
                for analyte in alternatives:
                    self._require(analyte in analytes, "labs", f"orders.{key}.components", f"unknown analyte {analyte!r}")
            own = self._key("labs", f"orders.{key}.code", entry["code"])
            covered = {own} | self._keys("labs", f"orders.{key}.satisfied_by_orders", entry.get("satisfied_by_orders", []))
            orders[key] = Order(key=key, coding=self._coding("labs", f"orders.{key}.code", entry["code"]),
                                components=tuple(tuple(group) for group in entry["components"]),
                                covered_by=frozenset(covered))
        for key in labs["workup"]["required_orders"] + ["magnesium"]:
            self._require(key in orders, "labs", "workup", f"unknown order {key!r}")
        return orders

    def _ingredients(self, meds: Mapping[str, Any]):
        classes = set(meds["classes"])
        ingredients, by_rxnorm, by_atc = {}, defaultdict(list), defaultdict(list)
        strengths: dict[str, float] = {}
        names: dict[str, str] = {}
        for key, entry in meds["ingredients"].items():
            path = f"ingredients.{key}"
            self._require(entry["class"] in classes, "medications", f"{path}.class", f"unknown class {entry['class']!r}")
            ingredients[key] = Ingredient(key=key, drug_class=entry["class"], subclass=entry.get("subclass"),
                                          prednisone_factor=entry.get("prednisone_equivalent_factor"))
            for index, code in enumerate(entry["codes"] + entry.get("products", [])):
                system, value = self._key("medications", f"{path}.codes[{index}]", code)
                self._require(system in ("rxnorm", "atc"), "medications", f"{path}.codes[{index}]",
                              "medicines are coded with rxnorm or atc")
                (by_rxnorm if system == "rxnorm" else by_atc)[value].append(key)
                if "strength_mg" in code:
                    strengths[value] = float(code["strength_mg"])
            for name in [key, *entry.get("synonyms", [])]:
                normalised = normalise_text(name)
                owner = names.get(normalised)
                self._require(owner in (None, key), "medications", f"{path}.synonyms",
                              f"name {name!r} already belongs to {owner}")
                names[normalised] = key
        return (ingredients, {k: tuple(v) for k, v in by_rxnorm.items()}, {k: tuple(v) for k, v in by_atc.items()},
                strengths, names)

    def _check_cross_references(self, thresholds, labs, meds, analytes, concepts) -> None:
        classes = set(meds["classes"])
        for analyte in thresholds.lookback_short_analytes:
            self._require(analyte in analytes, "settings", "thresholds.lookback_short_analytes", f"unknown analyte {analyte!r}")
        for drug_class in thresholds.lookback_short_trigger_classes | set(labs["workup"]["magnesium_when_current_class"]):
            self._require(drug_class in classes, "settings", "thresholds", f"unknown medicine class {drug_class!r}")

    def _check_texts(self, texts, concepts, analytes, orders, meds) -> None:
        references = texts["references"]
        for ref_id, ref in references.items():
            url = ref.get("url")
            self._require(url is None or url.startswith("https://"), "texts", f"references.{ref_id}.url",
                          "must be an absolute https URL")
        for topic, entry in texts["topics"].items():
            for field in ("source", "links", "source_when_only", "source_pregnancy"):
                value = entry.get(field)
                ids = [] if value is None else _flatten(value)
                for ref_id in ids:
                    self._require(ref_id in references, "texts", f"topics.{topic}.{field}", f"unknown reference {ref_id!r}")
            for reason in entry["override_reasons"]:
                self._require(reason in texts["override_reasons"]["codes"], "texts",
                              f"topics.{topic}.override_reasons", f"unknown override reason {reason!r}")
        names = texts["names"]
        for table, keys in (("analytes", analytes), ("orders", orders), ("orders_long", orders),
                            ("classes", meds["classes"]), ("concepts", concepts)):
            for key in keys:
                self._require(key in names[table], "texts", f"names.{table}", f"no name for {key!r}")

    def _finding_codes(self, concepts, findings, lab_codes) -> tuple[str, ...]:
        # Only SNOMED codes: symptoms recorded as Observations are SNOMED-coded; ICD-10 codes and
        # prefix categories cannot be searched for as Observation.code.
        codes = set()
        for key, entry in findings["concepts"].items():
            if concepts[key].observation:
                codes.update(f"{self.uri_by_system['snomed']}|{c['code']}" for c in entry["codes"]
                             if c["system"] == "snomed" and not c.get("prefix"))
        codes.update(f"{self.uri_by_system[system]}|{code}" for (system, code) in lab_codes if system != "loinc")
        return tuple(sorted(codes))


def _word_pattern(words: Any) -> re.Pattern[str]:
    """One regex matching any of the words as whole words in normalised text; 'abc*' = word start."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        stem = word.endswith("*")
        escaped = re.escape(normalise_text(word.rstrip("*")))
        parts.append(escaped + (r"\w*" if stem else ""))
    if not parts:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])")


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    if isinstance(value, dict):
        return [item for element in value.values() for item in _flatten(element)]
    return []
