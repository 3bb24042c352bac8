"""Reading FHIR searchset Bundles and OperationOutcomes as a protocol matter (no clinical content)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def bundle_resources(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The resources of a Bundle, leaving out search outcome entries."""
    resources = []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return resources
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        if isinstance(resource, dict):
            resources.append(resource)
    return resources


def says_not_supported(outcome: Any) -> bool:
    """An OperationOutcome whose issues say the type or search is not supported (issue type
    `not-supported`)."""
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    return isinstance(issues, list) and any(isinstance(issue, dict) and issue.get("code") == "not-supported"
                                            for issue in issues)


def next_link(bundle: Mapping[str, Any]) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
