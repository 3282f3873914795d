"""Field paths and label values as the source options in params.yaml write them.

A field path reaches into a record: `a.b` (a key), `a[0]` / `a[-1]` (a list item), `a[*]`
(every item), `a["x.y"]` (a key with dots or brackets). Its syntax is checked when the params
load; `rmcore.data.paths` follows paths in records.
"""

from __future__ import annotations

import re
from typing import Any

Step = str | int | None  # a key, a list index, or None for `[*]` (every item)

_NAME = re.compile(r"[^.\[\]]+")
_BRACKET = re.compile(r"\[(?:(-?\d+)|(\*)|\"([^\"]*)\")\]")


def path_steps(path: str) -> tuple[Step, ...]:
    """`a.b[0].c`, `a[-1]`, `a[*].text`, `a["x.y"]` -> its steps; ValueError says what is wrong."""
    result: list[Step] = []
    pos = 0
    while pos < len(path):
        dot = pos > 0 and path[pos] == "."
        name = _NAME.match(path, pos + 1 if dot else pos)
        if (dot or pos == 0) and name:
            result.append(name.group())
            pos = name.end()
            continue
        bracket = _BRACKET.match(path, pos)
        if bracket is None:
            raise ValueError(
                f"`{path}` is not a field path (at character {pos + 1}); write keys as `a.b`, "
                'list items as `a[0]`, `a[-1]` or `a[*]`, odd keys as `a["x.y"]`'
            )
        index, star, key = bracket.groups()
        result.append(key if key is not None else None if star else int(index))
        pos = bracket.end()
    if not result:
        raise ValueError("an empty field path")
    return tuple(result)


def path_values(value: Any) -> list[str]:
    """The paths an option holds: a path, a list of paths, or the keys of a mapping of paths."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value)
    return [v for v in value if isinstance(v, str)]


def label_key(value: Any) -> str:
    """A label value as compared with the data: 1, 1.0 and "1" are one value, case ignored."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()
