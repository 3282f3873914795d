"""Field paths: how every option that names a field reaches into a record.

`a.b` (a key of an object), `a[0]` and `a[-1]` (an item of a list), `a[*].text` (every item of a
list, giving a list), `a["x.y"]` (a key with dots or brackets). The syntax is checked when the
params are loaded (`rmcore.core.formats.path_steps`); here paths are followed in records.

Three failures, three messages, each naming the path: a field that is absent
(`missing_field`), a field that is null (`null_field`), and a value of the wrong type on the way
(`wrong_type`). A table cell holding JSON text (CSV) is decoded when the path reaches into it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from rmcore.core.fieldpaths import Step, path_steps
from rmcore.data.records import RecordError


@lru_cache(maxsize=1024)
def steps(path: str) -> tuple[Step, ...]:
    """The steps of a path (cached: the same few paths are followed for every record)."""
    return path_steps(path)


def type_name(value: Any) -> str:
    """A value's type in the words of JSON (null, a string, an object, a list, ...)."""
    if value is None:
        return "null"
    for kinds, name in (
        (bool, "a boolean"),
        (str, "a string"),
        ((int, float), "a number"),
        (Mapping, "an object"),
        ((list, tuple), "a list"),
    ):
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def show(parts: list[str]) -> str:
    """A concrete path from its parts: ['a', '[0]', 'b'] -> a[0].b."""
    text = ""
    for part in parts:
        text += part if part.startswith("[") or not text else f".{part}"
    return text


def _decoded(value: Any) -> Any:
    """JSON text in a table cell, decoded when a path reaches into it."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _step(value: Any, step: Step, here: list[str], path: str) -> Any:
    """One step into `value` (at the concrete path `here`); a failure names the path."""
    where = show(here) or "the record"
    value = _decoded(value)
    if value is None:
        raise RecordError("null_field", path, f"`{where}` is null")
    if isinstance(step, str):
        if not isinstance(value, Mapping):
            raise RecordError(
                "wrong_type", path, f"`{where}` is {type_name(value)}, not an object with `{step}`"
            )
        if step not in value:
            raise RecordError("missing_field", path, f"no field `{step}` in {_where(here)}")
        return value[step]
    if not isinstance(value, (list, tuple)):
        raise RecordError("wrong_type", path, f"`{where}` is {type_name(value)}, not a list")
    assert isinstance(step, int)
    if not -len(value) <= step < len(value):
        raise RecordError(
            "missing_field", path, f"no item [{step}] in `{where}` ({len(value)} items)"
        )
    return value[step]


def _where(here: list[str]) -> str:
    return f"`{show(here)}`" if here else "the record"


def get_all(record: Any, path: str) -> list[tuple[str, Any]]:
    """(concrete path, value) of every value the path reaches: one, or one per `[*]` item."""
    found: list[tuple[list[str], Any]] = [([], record)]
    for step in steps(path):
        following: list[tuple[list[str], Any]] = []
        for here, value in found:
            if step is None:  # [*]: every item of a list
                items = _decoded(value)
                if not isinstance(items, (list, tuple)):
                    what = "null" if items is None else type_name(items)
                    reason = "null_field" if items is None else "wrong_type"
                    raise RecordError(reason, path, f"`{show(here)}` is {what}, not a list")
                following += [([*here, f"[{i}]"], item) for i, item in enumerate(items)]
            else:
                part = f"[{step}]" if isinstance(step, int) else step
                following.append(([*here, part], _step(value, step, here, path)))
        found = following
    return [(show(here), value) for here, value in found]


def get(record: Any, path: str) -> Any:
    """The value at `path`; a path with `[*]` gives the list of what each item holds."""
    if None in steps(path):
        return [value for _, value in get_all(record, path)]
    [(_, value)] = get_all(record, path)
    return value


def has(record: Any, path: str) -> bool:
    """Whether the path reaches a value that is not null."""
    try:
        return get(record, path) is not None
    except RecordError:
        return False


def column(path: str) -> str | None:
    """The top-level field (table column) a path starts at."""
    first = steps(path)[0]
    return first if isinstance(first, str) else None
