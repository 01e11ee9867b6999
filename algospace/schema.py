"""Typed config loading: plain dicts (from YAML) into frozen dataclasses.

One function, :func:`build`, turns a mapping into a dataclass instance:
unknown keys are rejected with a did-you-mean hint, wrong types name the
key's full path (``data.split``), and defaults come from the dataclass
fields alone. Supported field types: ``bool``, ``int``, ``float``, ``str``,
``Literal[...]``, ``X | None``, ``tuple[T, ...]``/``tuple[T, T, T]``,
``dict[str, T]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from algospace.errors import ConfigError

T = TypeVar("T")


def did_you_mean(key: str, choices: typing.Iterable[str]) -> str:
    """A ' Did you mean X?' hint, or ''."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def build(cls: type[T], data: Mapping[str, Any] | None, path: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``path`` is the key prefix used in messages."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key.{did_you_mean(str(key), fields)} "
                f"Known keys here: {', '.join(fields)}"
            )
        kwargs[key] = convert(hints[key], value, where)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{path}: {err}") from None


def _type_name(tp: Any) -> str:
    """Readable name of a type annotation."""
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert(tp: Any, value: Any, where: str) -> Any:
    """Check and convert ``value`` to annotation ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for arg in inner:
            try:
                return convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}."
                              + did_you_mean(str(value), [str(a) for a in args]))
        return value
    if origin is tuple:
        return _convert_tuple(args, value, where)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # type: ignore[arg-type]  # a built section passes through
            return value
        return build(tp, value, where)  # type: ignore[arg-type]
    return _convert_scalar(tp, value, where)


def _convert_tuple(args: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    """Lists from YAML become tuples of the declared item types."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{where}: expected a list of {len(args)} items, got {len(value)}")
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in pairs)


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    """bool/int/float/str with YAML's usual leniency (an int is a valid float)."""
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads an unquoted 2020-01-06 as a date
            return value.isoformat()
    else:
        raise TypeError(f"unsupported config field type {tp!r} at {where}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__})")


def to_dict(obj: Any) -> Any:
    """A dataclass (tree) as plain JSON/YAML-friendly values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
