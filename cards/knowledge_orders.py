"""Compiles order_codes.yaml: which work-up orders an active ServiceRequest already covers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from cards.knowledge_model import Checks, CodeKey, Order, normalise_text


@dataclass(frozen=True)
class CompiledOrders:
    covers_by_code: dict[CodeKey, frozenset[str]]
    covers_by_name: dict[str, frozenset[str]]
    orderable_covers: dict[str, frozenset[str]]
    suggestions: dict[str, dict[str, Any]]  # orderable -> ServiceRequest.code JSON (a coding, or a text only)
    neutral_words: frozenset[str]


def compile_orders(compiler: Checks, order_codes: Mapping[str, Any], orders: Mapping[str, Order],
                   analyte_keys: set[str], uri_by_system: Mapping[str, str]) -> CompiledOrders:
    order_keys = set(orders)
    by_code: dict[CodeKey, frozenset[str]] = {}
    by_name: dict[str, frozenset[str]] = {}
    orderable_covers: dict[str, frozenset[str]] = {}
    suggestions: dict[str, dict[str, Any]] = {}
    for key, entry in order_codes["orderables"].items():
        path = f"orderables.{key}"
        reported = set(entry["analytes"])
        for analyte in reported - analyte_keys:
            compiler.require(False, "order_codes", f"{path}.analytes", f"unknown analyte {analyte!r} (see labs.yaml)")
        covers = frozenset(entry["covers"])
        for order in covers:
            compiler.require(order in order_keys, "order_codes", f"{path}.covers",
                             f"unknown order {order!r} (see labs.yaml orders)")
            # Never claim an order the orderable does not report: the work-up would then miss a test.
            compiler.require(all(reported & set(alternatives) for alternatives in orders[order].components),
                             "order_codes", f"{path}.covers", f"{order!r} needs results its analytes do not include")
        compiler.require(key not in order_keys or key in covers, "order_codes", f"{path}.covers",
                         "a work-up order must cover itself")
        for index, code in enumerate(entry["codes"]):
            code_key = compiler.key("order_codes", f"{path}.codes[{index}]", code)
            by_code[code_key] = by_code.get(code_key, frozenset()) | covers
        for name in entry["names"]:
            normalised = normalise_text(name)
            compiler.require(bool(normalised), "order_codes", f"{path}.names", f"name {name!r} has no letters")
            by_name[normalised] = by_name.get(normalised, frozenset()) | covers
        orderable_covers[key] = covers
        if "suggest" in entry:
            suggestions[key] = _suggested_code(compiler, path, entry, uri_by_system)
    for order in order_keys:
        compiler.require(order in order_codes["orderables"], "order_codes", "orderables",
                         f"the work-up order {order!r} (labs.yaml) is not listed")
    neutral = frozenset(normalise_text(word) for word in order_codes["neutral_words"])
    return CompiledOrders(by_code, by_name, orderable_covers, suggestions, neutral)


def _suggested_code(compiler: Checks, path: str, entry: Mapping[str, Any], uri_by_system: Mapping[str, str]):
    suggest = entry["suggest"]
    if "text" in suggest:
        return {"text": suggest["text"]}
    system, code = compiler.key("order_codes", f"{path}.suggest", suggest)
    compiler.require(any(c["system"] == system and c["code"] == code for c in entry["codes"]), "order_codes",
                     f"{path}.suggest", "the suggested code must be one of the orderable's codes")
    coding = {"system": uri_by_system[system], "code": code, **({"display": suggest["display"]}
                                                                if "display" in suggest else {})}
    return {"coding": [coding], "text": entry["display"]}


def check_order_sets(compiler: Checks, order_sets: Mapping[str, Mapping[str, str]], compiled: CompiledOrders,
                     work_up: set[str]) -> None:
    """Each locale suggests, for every work-up order, an orderable that provides it and can be suggested."""
    for locale, chosen in order_sets.items():
        for order in work_up:
            orderable = chosen.get(order)
            path = f"workup.order_sets.{locale}"
            compiler.require(orderable is not None, "labs", path, f"no orderable for {order!r}")
            compiler.require(order in compiled.orderable_covers.get(orderable, frozenset()), "labs", path,
                             f"{orderable!r} does not provide {order!r} (order_codes.yaml covers)")
            compiler.require(orderable in compiled.suggestions, "labs", path,
                             f"{orderable!r} has no `suggest` code in order_codes.yaml")


def name_pattern(names: Mapping[str, Any]) -> re.Pattern[str]:
    """Whole-word match of any of the (already normalised) names, longest first."""
    parts = [re.escape(name) for name in sorted(names, key=len, reverse=True)]
    if not parts:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])")
