"""Reading the elements of raw FHIR JSON the rules use: strictly, and nothing else.

Resources arrive straight from an EHR and may hold anything. The readers here never raise on an
element that is absent (it reads as None or empty); an element that is present but malformed raises
Unreadable with a reason a clinician can read ("unit 'xyz' is not known"), and the caller records the
resource as unreadable rather than dropping it. Empty strings count as absent; codes and units are
trimmed. Elements the rules do not read are never looked at, so nothing wrong in them can matter.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Unreadable(Exception):
    """A used element is malformed: the resource is unreadable for the reason given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_object(value: Any) -> bool:
    # JSON objects are plain dicts; the exact type test keeps the hot path off the ABC machinery.
    return type(value) is dict or isinstance(value, Mapping)


# ---- lenient: absent or of the wrong type reads as nothing --------------------------------------
def as_dict(value: Any) -> Mapping[str, Any] | None:
    return value if is_object(value) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# ---- strict: absent reads as nothing, malformed raises Unreadable --------------------------------
def element(resource: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = resource.get(name)
    if value is None or is_object(value):
        return value
    raise Unreadable(f"{name} is not a FHIR element")


def elements(resource: Mapping[str, Any], name: str) -> list[Any]:
    """A repeating element: its items, each an object (a lone object is read as a list of one)."""
    value = resource.get(name)
    if value is None:
        return []
    if is_object(value):
        return [value]
    if not isinstance(value, list) or not all(is_object(item) for item in value):
        raise Unreadable(f"{name} is not a list of FHIR elements")
    return value


def text(value: Any, name: str) -> str | None:
    """A string element, trimmed; empty reads as absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unreadable(f"{name} is not text")
    return value.strip() or None


def number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unreadable(f"{name} is not a number (it is {kind_of(value)})")
    return float(value)


def kind_of(value: Any) -> str:
    """What a malformed value is, in words (never the value itself: it may be anything)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"the text {value.strip()[:20]!r}" if value.strip() else "empty text"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def codings(concept: Any, name: str = "code") -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of each Coding of a CodeableConcept, trimmed; [] when absent."""
    if concept is None:
        return []
    if not is_object(concept):
        raise Unreadable(f"{name} is not a CodeableConcept")
    coding_list = concept.get("coding")
    if coding_list is None:
        return []
    if not isinstance(coding_list, list):
        raise Unreadable(f"{name}.coding is not a list")
    found = []
    for coding in coding_list:
        if not is_object(coding):
            raise Unreadable(f"{name}.coding holds something that is not a Coding")
        system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
        if type(system) is not str and system is not None or type(code) is not str and code is not None \
                or type(display) is not str and display is not None:
            raise Unreadable(f"{name}.coding has a system, code or display that is not text")
        found.append((system or None, code.strip() or None if code else None, display.strip() or None if display else None))
    return found


def concept_text(concept: Any, name: str = "code") -> str | None:
    """CodeableConcept.text, else the first coding display."""
    if concept is None:
        return None
    if not is_object(concept):
        raise Unreadable(f"{name} is not a CodeableConcept")
    found = text(concept.get("text"), f"{name}.text")
    if found:
        return found
    return next((display for _, _, display in codings(concept, name) if display), None)


def status_code(concept: Any, name: str) -> str | None:
    """The first code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    return next((code for _, code, _ in codings(concept, name) if code), None)


def code_value(resource: Mapping[str, Any], name: str = "status") -> str | None:
    """A `code` element (status, intent), trimmed and lower-cased as FHIR codes are."""
    value = text(resource.get(name), name)
    return value.lower() if value else None


def reference_to(resource: Mapping[str, Any]) -> str | None:
    """"Type/id" for a resource with an id, used as evidence in cards."""
    resource_type, resource_id = resource.get("resourceType"), as_str(resource.get("id"))
    return f"{resource_type}/{resource_id}" if resource_id else None


def reference_tail(reference: str, resource_type: str) -> str | None:
    """The id in a literal reference to ``resource_type`` (relative, absolute or versioned), else None."""
    marker = f"{resource_type}/"
    if marker not in reference:
        return None
    tail = reference.rsplit(marker, 1)[1].split("/_history", 1)[0]
    return tail.strip() or None


def referenced_patient_id(resource: Mapping[str, Any]) -> str | None:
    """The id in subject/patient when it is a literal Patient reference, else None."""
    for field in ("subject", "patient"):
        value = resource.get(field)
        if value is None:
            continue
        if not is_object(value):
            raise Unreadable(f"{field} is not a Reference")
        reference = text(value.get("reference"), f"{field}.reference")
        if reference:
            return reference_tail(reference, "Patient")
    return None
