"""Configs are dataclasses that round-trip through JSON and TOML.

- :func:`to_dict` / :func:`from_dict` convert a (possibly nested) dataclass to and
  from plain dicts. Unknown keys are refused with the key named (and the closest
  known key suggested); values are type-checked against the field annotations.
- :func:`load` reads a ``.json`` or ``.toml`` file into a dataclass; :func:`save`
  writes JSON atomically.
- :func:`apply_overrides` applies command-line ``a.b=3`` overrides, parsing the
  value and checking it against the type of the field it lands on.

Supported field types: ``int``, ``float``, ``str``, ``bool``, ``Optional[...]``,
``Literal[...]``, ``list[...]``, ``tuple[...]``, ``dict[str, ...]`` and nested
dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, closest
from .io import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """A dataclass (nested or not) as plain JSON-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp`` and return it in that type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of {tp.__name__} settings, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a table, got {data!r}")
    fields = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(
                f"unknown config key {path!r} for {cls.__name__}{closest(key, fields)}"
            )
        kwargs[key] = _coerce(value, fields[key], path)
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {err}") from None
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def load(cls: type[T], path: str | Path) -> T:
    """Read a ``.json`` or ``.toml`` file into dataclass ``cls``."""
    return from_dict(cls, read_table(path), where="")


def read_table(path: str | Path) -> dict:
    """A JSON or TOML file as a dict, with a one-line error (naming the file and, where the parser
    says, the line) for a missing or malformed file, a binary file, JSON in a .toml file, or a file
    that is neither .toml nor .json."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"{path}: a run or config file is TOML (name it *.toml) or JSON (*.json), "
                          f"not {suffix or 'a file without a suffix'!r}")
    data = path.read_bytes()
    nul = data.find(b"\x00", 0, 8192)
    if nul >= 0:
        raise ConfigError(f"{path}: binary data (a NUL byte at offset {nul}), not {suffix[1:].upper()} text")
    try:
        text = data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"{path}:{line}: invalid UTF-8 at byte {err.start}") from None
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            message = str(err)
            line = _toml_error_line(message)
            where = f"{path}:{line}" if line else str(path)
            if _is_json(text):
                raise ConfigError(f"{where}: malformed toml: this is JSON; write it as TOML "
                                  f"(key = value lines and [table] headers) or name it *.json") from None
            raise ConfigError(f"{where}: malformed toml: {message}") from None
    try:
        table = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: malformed json: {err.msg} (column {err.colno})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top, got {type(table).__name__}")
    return table


def _toml_error_line(message: str) -> int | None:
    """The line number in tomllib's ``... (at line N, column M)`` message."""
    import re

    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def _is_json(text: str) -> bool:
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def save(obj: Any, path: str | Path) -> None:
    """Write a dataclass as pretty JSON, atomically."""
    atomic_write_text(path, json.dumps(to_dict(obj), indent=2, sort_keys=False) + "\n")


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``key=value``: JSON/TOML literals, else a bare string."""
    lowered = text.strip()
    if lowered in ("true", "True"):
        return True
    if lowered in ("false", "False"):
        return False
    if lowered in ("none", "None", "null"):
        return None
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text


def apply_overrides(cls: type[T], data: dict, overrides: list[str], free: tuple[str, ...] = ()) -> T:
    """Apply ``a.b=3`` overrides to a raw config table, then build ``cls`` from it.

    Each dotted path must name an existing field (checked against the dataclass,
    not only the table), and the value is type-checked when ``cls`` is built.
    ``free`` names top-level tables whose keys are not known here (a run file's family
    tables: the family's recipe checks them when it reads them).
    """
    return from_dict(cls, override_table(cls, data, overrides, free))


def override_table(cls: type, data: dict, overrides: list[str], free: tuple[str, ...] = ()) -> dict:
    """``data`` (deep-copied) with each ``a.b=3`` override set, paths checked against ``cls``."""
    data = json.loads(json.dumps(data))  # a deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        target_cls: Any = cls
        table = data
        for depth, part in enumerate(parts):
            if depth == 0 and part in free:
                if len(parts) == 1:
                    raise ConfigError(f"override {item!r}: {part!r} is a table; name a key in it ({part}.KEY=...)")
                _set_free(table.setdefault(part, {}), parts[1:], parse_value(raw), item)
                break
            fields = _field_types(target_cls)
            if part not in fields:
                where = ".".join(parts[: depth + 1])
                known = [*fields, *free] if depth == 0 else fields
                raise ConfigError(
                    f"unknown config key {where!r} in override {item!r}{closest(part, known)}"
                )
            tp = fields[part]
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
            if depth == len(parts) - 1:
                if dataclasses.is_dataclass(tp):
                    raise ConfigError(f"override {item!r}: {part!r} is a table; name a key in it ({key}.KEY=...)")
                table[part] = parse_value(raw)
            else:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"override {item!r}: {part!r} is not a table")
                target_cls = tp
                table = table.setdefault(part, {})
    return data


def _set_free(table: Any, path: list[str], value: Any, item: str) -> None:
    for part in path[:-1]:
        if not isinstance(table, dict):
            break
        table = table.setdefault(part, {})
    if not isinstance(table, dict):
        raise ConfigError(f"override {item!r}: {path[-2] if len(path) > 1 else path[0]!r} is not a table")
    table[path[-1]] = value
