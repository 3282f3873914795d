"""`KEY=VALUE` overrides of params: one syntax for the stage commands and the flow.

`train.epochs=2` sets a key the params already have, `+train.note=x` adds one; the value is
YAML 1.2 (as DVC reads params.yaml), so `2` is an int, `1e-4` a float and
`[{path: x.jsonl, format: preference}]` a list of mappings. A stage command applies them to
its own invocation only; the flow writes them into params.yaml (flows/params.py).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, MutableSequence, Sequence
from pathlib import Path
from typing import Any

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


def set_param(data: Any, override: str, source: str) -> tuple[str, Any, Any]:
    """Apply one override in place; return (key, old value, new value)."""
    path, value, add = parse_override(override)
    where = f"override {override!r} on {source}"
    node = data
    for part in path[:-1]:
        node = _child(node, part, where)
    last = path[-1]
    if isinstance(node, MutableMapping):
        if last not in node and not add:
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


def apply_overrides(data: Any, overrides: Iterable[str], source: str) -> list[str]:
    """Apply every override in place, in order; return a `key: old -> new` line per override."""
    changes = []
    for override in overrides:
        key, old, new = set_param(data, override, source)
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
    apply_overrides(raw, overrides, str(path))
    return parse_params(plain(raw), f"{path} with --set {' '.join(overrides)}")
