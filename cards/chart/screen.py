"""The no-symptom screen: the cheapest possible look at a chart, taken on every chart opening."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

from cards.knowledge_base import Knowledge


def may_trigger(resources: Iterable[Any], knowledge: Knowledge) -> bool:
    """Whether any Condition or Observation carries a code of a trigger concept, whatever its system,
    status, date or patient: a superset of ChartPass.has_trigger that reads one element per resource.

    Written for speed (it looks at every resource of every chart opened): plain JSON is walked
    directly; anything else that is not plain JSON answers True, and the full pass decides."""
    codes = knowledge.trigger_codes
    for resource in resources:
        if type(resource) is not dict:
            if isinstance(resource, Mapping):
                return True
            continue
        kind = resource.get("resourceType")
        if kind != "Observation" and kind != "Condition":
            continue
        concept = resource.get("code")
        coding_list = concept.get("coding") if type(concept) is dict else None
        if type(coding_list) is not list:
            if concept is not None and (type(concept) is not dict or coding_list is not None):
                return True  # a code that cannot be read plainly: the full pass decides
            continue
        for coding in coding_list:
            code = coding.get("code") if type(coding) is dict else None
            if type(code) is str:
                # knowledge_model.bare_code() spelt out: a call per coding is a fifth of the screen's time
                if code in codes or code.strip().upper().replace(".", "") in codes:
                    return True
            elif code is not None or type(coding) is not dict:
                return True
    return False
