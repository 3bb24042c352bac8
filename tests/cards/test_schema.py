"""The knowledge shape checker reports the dotted key at fault."""
from __future__ import annotations

import pytest

from cards.schema import ANY_STR, NUMBER, Enum, ListOf, Localised, MapOf, ShapeError, Template, check

SHAPE = {"name": str, "dose?": NUMBER, "tags?": ListOf(Enum("a", "b")), "map?": MapOf(ANY_STR),
         "text?": Template("who"), "local?": Localised(str)}


@pytest.mark.parametrize("value, path, message", [
    ({}, "name", "required key is missing"),
    ({"name": ""}, "name", "non-empty string"),
    ({"name": "x", "dose": True}, "dose", "expected a number"),
    ({"name": "x", "tags": ["a", "c"]}, "tags[1]", "expected one of"),
    ({"name": "x", "map": {"k": 1}}, "map.k", "expected a string"),
    ({"name": "x", "text": "Hello {whom}"}, "text", "unknown placeholder {whom}"),
    ({"name": "x", "text": {"US": "Hi {who}", "UK": "Hi {"}}, "text.UK", "malformed template"),
    ({"name": "x", "local": {"US": "only"}}, "local.UK", "required key is missing"),
    ({"name": "x", "extra": 1}, "extra", "unknown key"),
    ([], "", "expected a mapping"),
])
def test_errors_name_the_key(value, path, message) -> None:
    with pytest.raises(ShapeError) as error:
        check(value, SHAPE)
    assert error.value.path == path and message in str(error.value)


def test_valid_values_pass() -> None:
    check({"name": "x", "dose": 2.5, "tags": ["a"], "map": {"k": ""}, "text": {"US": "{who}", "UK": "x"},
           "local": "same"}, SHAPE)
