"""Profile values -> a step's frozen params dataclass, strictly.

An unknown key, a wrong type or a value outside a ``Literal`` is a :class:`ProfileError` naming
the profile key and the valid choices, raised before any file is touched.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from meshforge.errors import ProfileError, closest_first

P = TypeVar("P")


def param_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def param_help(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata.get("help", ""))


def defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def as_plain(params: object) -> dict[str, Any]:
    """Params as JSON-friendly values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()}


def build(cls: type[P], values: Mapping[str, Any], where: str) -> P:
    """Build ``cls`` from ``values``; unknown keys and wrong types raise ProfileError."""
    fields = param_fields(cls)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ProfileError(
                where, f"unknown parameter {key!r}", closest_first(key, fields) or ["(none: this step takes no parameters)"]
            )
        kwargs[key] = coerce(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a plugin's params class with a field lacking a default: the plugin's bug, named
        raise ProfileError(where, f"the step's parameters cannot be built ({exc}); every parameter needs a default") from None


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; convert lists to tuples and ints to floats."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, where)
            except ProfileError as exc:
                errors.append(exc.reason)
        raise ProfileError(where, f"expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ProfileError(where, f"{value!r} is not allowed", [repr(c) for c in choices])
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ProfileError(where, f"expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ProfileError(where, f"expected {len(args)} values, got {len(value)}")
            return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        return tuple(value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ProfileError(where, f"expected a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ProfileError(where, f"expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(where, f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(where, f"expected a whole number, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ProfileError(where, f"expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ProfileError(where, f"expected {type_name(tp)}, got {value!r}")


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"list of {type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "none"
    return {float: "number", int: "whole number", bool: "true/false", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def describe(cls: type) -> list[dict[str, Any]]:
    """Parameters of a step for listings: name, type, default, help."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = defaults(cls).get(f.name)
        out.append(
            {
                "name": f.name,
                "type": type_name(hints[f.name]),
                "default": list(default) if isinstance(default, tuple) else default,
                "help": param_help(f),
            }
        )
    return out


def field(default: Any, help: str) -> Any:  # noqa: A002 - mirrors dataclasses.field vocabulary
    """A defaulted params field with help text: ``min_mm: float = field(0.8, "minimum wall (mm)")``."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) for list defaults")
    return dataclasses.field(default=default, metadata={"help": help})
