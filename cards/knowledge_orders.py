"""Compiles order_codes.yaml: which work-up orders an active ServiceRequest already covers."""
from __future__ import annotations

import re
from typing import Any, Mapping

from cards.knowledge_model import Checks, CodeKey, Order, normalise_text


def compile_orders(compiler: Checks, order_codes: Mapping[str, Any], orders: Mapping[str, Order],
                   analyte_keys: set[str]):
    """(covers by code, covers by normalised name)."""
    order_keys = set(orders)
    by_code: dict[CodeKey, frozenset[str]] = {}
    by_name: dict[str, frozenset[str]] = {}
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
    for order in order_keys:
        compiler.require(order in order_codes["orderables"], "order_codes", "orderables",
                         f"the work-up order {order!r} (labs.yaml) is not listed")
    return by_code, by_name


def name_pattern(names: Mapping[str, Any]) -> re.Pattern[str]:
    """Whole-word match of any of the (already normalised) names, longest first."""
    parts = [re.escape(name) for name in sorted(names, key=len, reverse=True)]
    if not parts:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])")
