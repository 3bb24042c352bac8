"""Loading the clinical knowledge in cards/knowledge/*.yaml: read, shape-check, compile, cache.

Everything a rule looks up per resource (code -> concept, code -> analyte, RxNorm -> ingredient, the
medicine-name regex) is built once at load, so reviewing a chart is only dict and set lookups.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cards import knowledge_shapes as shapes
from cards.knowledge_compiler import FILE_NAMES, Compiler
from cards.knowledge_icd import read_descendants
from cards.knowledge_model import (Analyte, CodeKey, Concept, Ingredient, Knowledge, KnowledgeError, LabCode, Order,
                                   Thresholds, normalise_text)
from cards.schema import ShapeError, check

KNOWLEDGE_DIR = Path(__file__).with_name("knowledge")
SHAPES = {"settings": shapes.SETTINGS, "findings": shapes.FINDINGS, "labs": shapes.LABS,
          "medications": shapes.MEDICATIONS, "drug_products": shapes.DRUG_PRODUCTS,
          "order_codes": shapes.ORDER_CODES, "texts": shapes.TEXTS}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DEFAULT_DIRECTORY = str(KNOWLEDGE_DIR.resolve())

__all__ = ["KNOWLEDGE_DIR", "Knowledge", "KnowledgeError", "load_knowledge", "normalise_text", "Analyte", "CodeKey",
           "Concept", "Ingredient", "LabCode", "Order", "Thresholds"]


def load_knowledge(directory: Path | str | None = None) -> Knowledge:
    """Load, validate and index the knowledge files; cached, so repeated calls are free."""
    if not directory:  # every review asks for the default: no path resolution (a syscall per part) each time
        return _load(_DEFAULT_DIRECTORY)
    return _load(str(Path(directory).resolve()))


@lru_cache(maxsize=4)
def _load(directory: str) -> Knowledge:
    raw = {name: _read(Path(directory) / FILE_NAMES[name], shape) for name, shape in SHAPES.items()}
    return Compiler(raw, read_descendants(Path(directory))).build()


def _read(path: Path, shape: Any) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)  # noqa: S506 - the loader is a SafeLoader
    except OSError as error:
        raise KnowledgeError(f"{path.name}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise KnowledgeError(f"{path.name}:{line} is not valid YAML ({getattr(error, 'problem', error)})") from None
    try:
        check(data, shape)
    except ShapeError as error:
        raise KnowledgeError(f"{path.name}: {error}") from None
    return data
