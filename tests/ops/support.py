"""Helpers for the operations tests: fixture files, metric readings, PHI and log scanning."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
REVIEW_SERVICE = "fasciculation-cramp-review"


def metric(name: str, **labels: str) -> float:
    """The current value of one sample in this process's registry (0 when never recorded)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def fixture_requests() -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, json.loads(path.read_text())) for path in sorted((FIXTURES / "requests").glob("*.json"))]


def fixture_bundles() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((FIXTURES / "patients").glob("*.json"))]


@lru_cache(maxsize=1)
def phi_in_fixtures() -> tuple[frozenset[str], frozenset[str]]:
    """(words, strings): patient names to find as whole words; identifiers, birth dates and ids as text."""
    words: set[str] = set()
    strings: set[str] = set()
    for bundle in fixture_bundles():
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            for identifier in resource.get("identifier", []) or []:
                if identifier.get("value"):
                    strings.add(identifier["value"])
            if resource.get("resourceType") != "Patient":
                continue
            strings.add(resource["id"])
            if resource.get("birthDate"):
                strings.add(resource["birthDate"])
            for name in resource.get("name", []):
                for part in [*name.get("given", []), *name.get("prefix", []), *name.get("suffix", [])]:
                    words.add(part)
                for part in (name.get("family"), name.get("text")):
                    if part:
                        words.add(part)
            for telecom in resource.get("telecom", []) or []:
                if telecom.get("value"):
                    strings.add(telecom["value"])
            for address in resource.get("address", []) or []:
                strings.update(line for line in address.get("line", []) if line)
    assert len(words) > 40 and len(strings) > 40, "the fixtures should name their synthetic patients"
    return frozenset(words), frozenset(strings)


def leaks(text: str, *, secrets: Iterable[str] = ()) -> list[str]:
    """Every fixture patient name, identifier, birth date or id, and every secret, found in text."""
    words, strings = phi_in_fixtures()
    found = [value for value in strings | set(secrets) if value and value in text]
    found += [word for word in words if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]
    return sorted(set(found))


def json_lines(text: str) -> Iterator[Mapping[str, Any]]:
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)
