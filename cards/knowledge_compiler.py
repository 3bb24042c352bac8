"""Cross-checks the knowledge files against each other and builds the lookup tables, once."""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping

from cards.knowledge_icd import expand
from cards.knowledge_medicines import compile_medicines
from cards.knowledge_model import (ICD_SYSTEMS, TRIGGER_GROUPS, Analyte, CodeKey, Concept, Knowledge, KnowledgeError,
                                   LabCode, Order, Prescribing, Thresholds, bare_code, dotted_icd, normalise_text, normalise_uri)
from cards.knowledge_findings import compile_text_cues
from cards.knowledge_labs import compile_out_of_range, compile_range_sexes
from cards.knowledge_orders import check_order_sets, compile_orders, name_pattern

FILE_NAMES = {"settings": "settings.yaml", "findings": "findings.yaml", "labs": "labs.yaml",
              "medications": "medications.yaml", "drug_products": "drug_products.yaml",
              "order_codes": "order_codes.yaml", "texts": "texts.yaml"}


class Compiler:
    """Cross-checks the files against each other and builds the lookup tables."""

    def __init__(self, raw: Mapping[str, Any], icd_descendants: Mapping[str, Mapping[str, list[str]]]) -> None:
        self.raw = raw
        self.icd_descendants = icd_descendants
        settings = raw["settings"]
        self.uri_by_system = dict(settings["systems"])
        self.system_by_uri = {uri: name for name, uri in self.uri_by_system.items()}
        for uri, name in settings["system_aliases"].items():
            self._require(name in self.uri_by_system, "settings", f"system_aliases.{uri}", f"unknown system {name!r}")
            self.system_by_uri[uri] = name
        # Matched by meaning as well (Knowledge.system_of): the normalised spelling of every URI.
        for uri, name in list(self.system_by_uri.items()):
            owner = self.system_by_uri.setdefault(normalise_uri(uri), name)
            self._require(owner == name, "settings", f"systems.{name}", f"{uri} means the same as a URI of {owner}")

    # The checks the per-file compilers (knowledge_medicines, knowledge_orders) use: knowledge_model.Checks.
    require = property(lambda self: self._require)
    key = property(lambda self: self._key)

    def build(self) -> Knowledge:
        settings, findings, labs, meds, products, order_codes, texts = (self.raw[name] for name in FILE_NAMES)
        thresholds = self._thresholds(settings)
        concepts = self._concepts(findings, settings["recency_policies"])
        concept_by_code = self._concept_index(findings)
        analytes, lab_codes = self._analytes(labs)
        orders = self._orders(labs, analytes)
        medicines = compile_medicines(self, meds, products)
        compiled_orders = compile_orders(self, order_codes, orders, set(analytes), self.uri_by_system)
        check_order_sets(self, labs["workup"]["order_sets"], compiled_orders, set(orders))
        range_sex_codes, range_sex_words = compile_range_sexes(self, labs)
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
            text_cues=compile_text_cues(self, findings),
            analytes=MappingProxyType(analytes),
            lab_codes=MappingProxyType(lab_codes),
            panel_codes=self._keys("labs", "panels", labs["panels"]),
            unit_aliases=MappingProxyType(dict(labs["unit_aliases"])),
            orders=MappingProxyType(orders),
            order_covers_by_code=MappingProxyType(compiled_orders.covers_by_code),
            order_names=name_pattern(compiled_orders.covers_by_name),
            order_covers_by_name=MappingProxyType(compiled_orders.covers_by_name),
            required_orders=tuple(labs["workup"]["required_orders"]),
            order_neutral_words=compiled_orders.neutral_words,
            order_sets=MappingProxyType({locale: MappingProxyType(dict(chosen))
                                         for locale, chosen in labs["workup"]["order_sets"].items()}),
            orderable_covers=MappingProxyType(compiled_orders.orderable_covers),
            orderable_suggestions=MappingProxyType(compiled_orders.suggestions),
            range_sex_codes=range_sex_codes,
            range_sex_words=range_sex_words,
            out_of_range=compile_out_of_range(self, labs, analytes),
            magnesium_classes=frozenset(labs["workup"]["magnesium_when_current_class"]),
            lab_order_category=self._coding("labs", "lab_order_category", labs["lab_order_category"]),
            referral_order_category=self._coding("labs", "referral_order_category", labs["referral_order_category"]),
            referral_order_code=self._coding("labs", "referral_order_code", labs["referral_order_code"]),
            ingredients=MappingProxyType(medicines.ingredients),
            ingredients_by_rxnorm=MappingProxyType(medicines.by_rxnorm),
            ingredients_by_atc=MappingProxyType(medicines.by_atc),
            classes_by_atc=MappingProxyType(medicines.classes_by_atc),
            product_strength_mg=MappingProxyType({code: MappingProxyType(by_ingredient)
                                                  for code, by_ingredient in medicines.strengths.items()}),
            medicine_names=_word_pattern(medicines.names),
            ingredients_by_name=MappingProxyType(medicines.names),
            local_route_codes=self._keys("medications", "local_corticosteroid.route_codes", local["route_codes"]),
            local_atc_prefixes=tuple(entry["code"] for entry in local["atc_prefixes"]),
            local_words=_word_pattern(local["words"]),
            unit_dose_words=frozenset(word.lower() for word in meds["unit_dose_words"]),
            timing_per_day=MappingProxyType(dict(meds["timing_codes_per_day"])),
            texts=texts,
            lab_loinc_codes=tuple(sorted(
                {code for (system, code) in lab_codes if system == "loinc"}
                | {code for (system, code) in self._keys("labs", "panels", labs["panels"]) if system == "loinc"}
                | {code for (system, code) in self._keys("findings", "pregnancy_status", pregnancy["observation_codes"])
                   if system == "loinc"})),
            finding_codes=self._finding_codes(concepts, findings, lab_codes),
            **self._trigger_codes(findings, concepts),
            prescribing=self._prescribing(settings["prescribing"], meds, analytes, orders),
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

    def _prescribing(self, raw: Mapping[str, Any], meds, analytes, orders) -> Prescribing:
        classes, ingredients = set(meds["classes"]), set(meds["ingredients"])
        for name in raw["teratogenic_ingredients"]:
            self._require(name in ingredients, "settings", "prescribing.teratogenic_ingredients",
                          f"unknown ingredient {name!r}")
        for drug_class, monitoring in raw["provoking_classes"].items():
            self._require(drug_class in classes, "settings", "prescribing.provoking_classes",
                          f"unknown medicine class {drug_class!r}")
            for order in monitoring:
                self._require(order in orders, "settings", f"prescribing.provoking_classes.{drug_class}",
                              f"unknown work-up order {order!r}")
        for analyte in raw["low_analytes"]:
            self._require(analyte in analytes, "settings", "prescribing.low_analytes", f"unknown analyte {analyte!r}")
        return Prescribing(
            cyclobenzaprine_max_days=raw["cyclobenzaprine_max_days"],
            teratogenic_ingredients=frozenset(raw["teratogenic_ingredients"]),
            provoking_classes=MappingProxyType({k: tuple(v) for k, v in raw["provoking_classes"].items()}),
            low_analytes=tuple(raw["low_analytes"]))

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

    def _concept_codes(self, findings: Mapping[str, Any]):
        """(concept, path, (system, code)) for every listed code and every code an ICD entry expands to."""
        for key, entry in findings["concepts"].items():
            for index, code in enumerate(entry["codes"]):
                path = f"concepts.{key}.codes[{index}]"
                system, value = self._key("findings", path, code)
                if system in ICD_SYSTEMS:
                    self._require(value == dotted_icd(value), "findings", path,
                                  f"write ICD-10 codes in upper case with the dot ({dotted_icd(value)})")
                expanded = expand(system, value, self.icd_descendants, path) if code.get("prefix") else [value]
                for member in expanded:
                    yield key, path, (system, member), member == value

    def _concept_index(self, findings: Mapping[str, Any]) -> dict[CodeKey, str]:
        exact: dict[CodeKey, str] = {}
        listed: set[CodeKey] = set()
        for key, path, code_key, is_listed in self._concept_codes(findings):
            owner = exact.get(code_key)
            if is_listed:
                # A code listed by hand may sit below another concept's category: the listed one wins.
                owned_by_listing = code_key in listed
                self._require(not owned_by_listing or owner == key, "findings", path,
                              f"code {code_key[1]} already belongs to {owner}")
                exact[code_key] = key
                listed.add(code_key)
            elif owner is None:
                exact[code_key] = key
        return exact

    def _trigger_codes(self, findings: Mapping[str, Any], concepts: Mapping[str, Concept]) -> dict[str, Any]:
        codes = {bare_code(code_key[1]) for key, _, code_key, _ in self._concept_codes(findings)
                 if concepts[key].group in TRIGGER_GROUPS}
        return {"trigger_codes": frozenset(codes)}

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
            orders[key] = Order(key=key, coding=self._coding("labs", f"orders.{key}.code", entry["code"]),
                                components=tuple(tuple(group) for group in entry["components"]))
        for key in labs["workup"]["required_orders"] + ["magnesium"]:
            self._require(key in orders, "labs", "workup", f"unknown order {key!r}")
        return orders

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
            for field in ("source", "links"):
                value = entry.get(field)
                ids = [] if value is None else _flatten(value)
                for ref_id in ids:
                    self._require(ref_id in references, "texts", f"topics.{topic}.{field}", f"unknown reference {ref_id!r}")
            for reason in entry["override_reasons"]:
                self._require(reason in texts["override_reasons"]["codes"], "texts",
                              f"topics.{topic}.override_reasons", f"unknown override reason {reason!r}")
        names = texts["names"]
        for table, keys in (("analytes", analytes), ("orders", orders), ("orders_long", orders),
                            ("classes", meds["classes"]), ("concepts", concepts),
                            ("orderables", self._suggestible()), ("orderables_long", self._suggestible())):
            for key in keys:
                self._require(key in names[table], "texts", f"names.{table}", f"no name for {key!r}")

    def _suggestible(self) -> list[str]:
        return [key for key, entry in self.raw["order_codes"]["orderables"].items() if "suggest" in entry]

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
