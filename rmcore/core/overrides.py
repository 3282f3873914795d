"""`KEY=VALUE` overrides of params: one syntax for the stage commands and the flow.

`train.epochs=2` sets a key the params already have, `+train.note=x` adds one; the value is
YAML 1.2 (as DVC reads params.yaml), so `2` is an int, `1e-4` a float and
`[{path: x.jsonl, format: preference}]` a list of mappings. A stage command applies them to
its own invocation only, and may also set any key the schema knows that the file leaves to
its default; the flow writes them into params.yaml (flows/params.py).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, MutableSequence, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from rmcore.core.config import ConfigError, Params, parse_params, read_params


class ParamsError(ConfigError):
    """A params file or override that cannot be applied; the message says which and why."""


def _value_loader() -> YAML:
    yaml = YAML()  # round-trip, as flows/params.py reads params.yaml: quotes kept
    yaml.preserve_quotes = True
    return yaml


def parse_override(text: str) -> tuple[list[str], Any, bool]:
    """`a.b.0.c=value` -> (["a", "b", "0", "c"], value, add); a leading `+` adds a new key."""
    key, sep, raw = text.partition("=")
    add = key.startswith("+")
    key = key.lstrip("+").strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ParamsError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=2")
    try:
        value = _value_loader().load(raw) if raw.strip() else None
    except YAMLError as exc:
        raise ParamsError(f"override {text!r}: value is not valid YAML: {exc}") from None
    return key.split("."), plain_floats(value), add


def plain_floats(value: Any) -> Any:
    """Floats as Python floats, so they are written `0.0001`, not `1e-4` as typed.

    `1e-4` is a float in YAML 1.2 (DVC, ruamel) but a string in YAML 1.1 (PyYAML).
    """
    if isinstance(value, float):
        return float(value)
    if isinstance(value, MutableMapping):
        for key in value:
            value[key] = plain_floats(value[key])
    elif isinstance(value, MutableSequence):
        for i, item in enumerate(value):
            value[i] = plain_floats(item)
    return value


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, MutableMapping):
        if part not in node:
            raise ParamsError(f"{where}: no key {part!r} (present: {', '.join(map(str, node))})")
        return node[part]
    if isinstance(node, MutableSequence):
        if not part.isdigit() or int(part) >= len(node):
            raise ParamsError(f"{where}: {part!r} is not an index of a list of {len(node)}")
        return node[int(part)]
    raise ParamsError(f"{where}: cannot descend into a {type(node).__name__}")


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _schema_keys(schema: type[BaseModel], path: Sequence[str]) -> dict[str, Any] | None:
    """The keys (and their types) of the section at `path`; None where it has no fixed keys."""
    node: Any = schema
    for part in path:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            node = (_schema_keys(node, []) or {}).get(part)
        elif get_origin(node) is list and part.isdigit():
            node = get_args(node)[0]
        else:
            return None
    node = _unwrap(node)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return None
    return {field.alias or name: field.annotation for name, field in node.model_fields.items()}


def _schema_child(
    node: Any, part: str, path: list[str], schema: type[BaseModel], where: str
) -> None:
    """A section (or mapping) the file leaves out but the schema has: created empty, so its
    defaults apply. A plain value has no keys to descend into: an error naming it."""
    keys = _schema_keys(schema, path[:-1])
    if keys is None or part not in keys:
        return  # inside a list or a free-form mapping: the file's own keys only
    kind = _unwrap(keys[part])
    shape = get_origin(kind) or kind
    if shape not in (list, dict) and not (isinstance(kind, type) and issubclass(kind, BaseModel)):
        raise ParamsError(
            f"{where}: `{'.'.join(path)}` is a single value, not a section; "
            f"set it as {'.'.join(path)}=VALUE"
        )
    if isinstance(node, MutableMapping) and part not in node and shape is not list:
        node[part] = {}


def _unknown(where: str, path: list[str], schema: type[BaseModel]) -> ParamsError | None:
    """The error for a key the schema does not have; None if it has it."""
    keys = _schema_keys(schema, path[:-1])
    if keys is None or path[-1] in keys:
        return None
    section = ".".join(path[:-1]) or "the top level"
    return ParamsError(
        f"{where}: unknown key `{'.'.join(path)}`; the keys of {section}: {', '.join(keys)} "
        "(docs/params.md)"
    )


def set_param(
    data: Any, override: str, source: str, schema: type[BaseModel] | None = None
) -> tuple[str, Any, Any]:
    """Apply one override in place; return (key, old value, new value).

    With `schema`, a key it does not know is an error naming it (`+` too), and a key it knows
    may be set though the file leaves it out (sections created as needed).
    """
    path, value, add = parse_override(override)
    where = f"override {override!r} on {source}"
    node = data
    for depth, part in enumerate(path[:-1], start=1):
        if schema is not None:
            if error := _unknown(where, path[:depth], schema):
                raise error
            _schema_child(node, part, path[:depth], schema, where)
        node = _child(node, part, where)
    last = path[-1]
    if schema is not None and (error := _unknown(where, path, schema)):
        raise error
    if isinstance(node, MutableMapping):
        known = schema is not None and _schema_keys(schema, path[:-1]) is not None
        if last not in node and not add and not known:
            raise ParamsError(
                f"{where}: no key {last!r} under {'.'.join(path[:-1]) or 'the top level'}; "
                f"check the spelling, or write +{'.'.join(path)}=... to add a new key"
            )
        old = node.get(last)
        node[last] = value
    else:
        old = _child(node, last, where)
        node[int(last)] = value
    return ".".join(path), old, value


def apply_overrides(
    data: Any, overrides: Iterable[str], source: str, schema: type[BaseModel] | None = None
) -> list[str]:
    """Apply every override in place, in order; return a `key: old -> new` line per override."""
    changes = []
    for override in overrides:
        key, old, new = set_param(data, override, source, schema)
        changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


def plain(value: Any) -> Any:
    """ruamel's containers and scalar subclasses as plain dicts, lists, str, int, float, bool."""
    if isinstance(value, MutableMapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, MutableSequence):
        return [plain(item) for item in value]
    for kind in (bool, str, int, float):  # bool before int: True is an int too
        if isinstance(value, kind):
            return kind(value)
    return value


def load_params_with(path: str | Path, overrides: Sequence[str] = ()) -> Params:
    """Read and validate a params file with `overrides` applied, in memory only."""
    raw = read_params(path)
    if not overrides:
        return parse_params(raw, str(path))
    apply_overrides(raw, overrides, str(path), Params)
    return parse_params(plain(raw), f"{path} with --set {' '.join(overrides)}")
