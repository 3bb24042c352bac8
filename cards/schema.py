"""A small declarative shape checker for the knowledge files.

The knowledge is reviewed and edited by clinicians, so a mistake must fail loudly at load time with
the file and the dotted key at fault (``labs.yaml: analytes.potassium.units.mg/dL: expected a number``)
rather than surface later as a wrong card.

Shapes: a Python type (``str`` is non-empty, ``bool``), ``NUMBER``, ``ANY_STR``, a dict of field shapes (a key ending in ``?`` is
optional, unknown keys are errors), ``ListOf``, ``MapOf``, ``Enum``, ``Localised`` and ``AnyOf``.
"""
from __future__ import annotations

from dataclasses import dataclass
from string import Formatter
from typing import Any


class ShapeError(ValueError):
    """A value does not have the declared shape; ``path`` is the dotted key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '<root>'}: {message}")
        self.path = path


@dataclass(frozen=True)
class ListOf:
    item: Any
    min_items: int = 0


@dataclass(frozen=True)
class MapOf:
    value: Any
    min_items: int = 0


@dataclass(frozen=True)
class Enum:
    values: frozenset[str]

    def __init__(self, *values: str) -> None:
        object.__setattr__(self, "values", frozenset(values))


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", options)


class _Number:
    def __repr__(self) -> str:
        return "NUMBER"


class _AnyStr:
    def __repr__(self) -> str:
        return "ANY_STR"


NUMBER = _Number()
ANY_STR = _AnyStr()  # a string that may be empty
LOCALES = ("US", "UK")


def Localised(item: Any = str) -> AnyOf:  # noqa: N802 - reads as a shape constructor
    """A value, or a mapping with one value per locale (all locales required)."""
    return AnyOf(item, {locale: item for locale in LOCALES})


@dataclass(frozen=True)
class Template:
    """A (possibly localised) text whose ``{placeholders}`` must all be among ``names``."""

    names: frozenset[str]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", frozenset(names))


def check(value: Any, shape: Any, path: str = "") -> None:
    """Raise ShapeError at the first place ``value`` departs from ``shape``."""
    if shape is NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ShapeError(path, f"expected a number, got {_describe(value)}")
    elif shape is ANY_STR:
        if not isinstance(value, str):
            raise ShapeError(path, f"expected a string, got {_describe(value)}")
    elif isinstance(shape, type):
        if shape is str and isinstance(value, str):
            if not value.strip():
                raise ShapeError(path, "expected a non-empty string")
        elif not isinstance(value, shape) or (shape is int and isinstance(value, bool)):
            raise ShapeError(path, f"expected {shape.__name__}, got {_describe(value)}")
    elif isinstance(shape, Enum):
        if value not in shape.values:
            raise ShapeError(path, f"expected one of {sorted(shape.values)}, got {value!r}")
    elif isinstance(shape, ListOf):
        if not isinstance(value, list):
            raise ShapeError(path, f"expected a list, got {_describe(value)}")
        if len(value) < shape.min_items:
            raise ShapeError(path, f"expected at least {shape.min_items} item(s)")
        for index, item in enumerate(value):
            check(item, shape.item, f"{path}[{index}]")
    elif isinstance(shape, MapOf):
        if not isinstance(value, dict):
            raise ShapeError(path, f"expected a mapping, got {_describe(value)}")
        if len(value) < shape.min_items:
            raise ShapeError(path, f"expected at least {shape.min_items} entr(y/ies)")
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ShapeError(path, f"keys must be non-empty strings, got {key!r}")
            check(item, shape.value, _join(path, key))
    elif isinstance(shape, AnyOf):
        _check_any_of(value, shape, path)
    elif isinstance(shape, Template):
        check(value, Localised(str), path)
        for locale, text in (value.items() if isinstance(value, dict) else [("", value)]):
            _check_placeholders(text, shape.names, _join(path, locale) if locale else path)
    elif isinstance(shape, dict):
        _check_record(value, shape, path)
    else:  # pragma: no cover - a programming error in a shape declaration
        raise TypeError(f"unknown shape {shape!r}")


def _check_record(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, dict):
        raise ShapeError(path, f"expected a mapping, got {_describe(value)}")
    known = {key.rstrip("?") for key in shape}
    for key in value:
        if key not in known:
            raise ShapeError(_join(path, str(key)), f"unknown key (expected one of {sorted(known)})")
    for key, field_shape in shape.items():
        name = key.rstrip("?")
        if name in value:
            check(value[name], field_shape, _join(path, name))
        elif not key.endswith("?"):
            raise ShapeError(_join(path, name), "required key is missing")


def _check_any_of(value: Any, shape: AnyOf, path: str) -> None:
    errors = []
    for option in shape.options:
        try:
            check(value, option, path)
            return
        except ShapeError as error:
            errors.append(error)
    # The deepest error is the most useful one to show a human editor.
    raise max(errors, key=lambda error: error.path.count(".") + error.path.count("["))


def _check_placeholders(text: str, allowed: frozenset[str], path: str) -> None:
    try:
        fields = [name for _, name, _, _ in Formatter().parse(text) if name is not None]
    except ValueError as error:
        raise ShapeError(path, f"malformed template: {error}") from None
    for name in fields:
        if name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise ShapeError(path, f"unknown placeholder {{{name}}} (allowed: {expected})")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
