"""Field access and conversions shared by the source adapters.

Every helper raises `RecordError` with the quarantine reason and the field it concerns, so an
adapter reads like a description of its format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmcore.core.fieldpaths import label_key
from rmcore.data import paths
from rmcore.data.paths import type_name
from rmcore.data.records import Candidate, RecordError

Record = Mapping[str, Any]

ROLES = {
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class Adapter:
    """A source format: how to convert one record, and which top-level columns it needs."""

    convert: Callable[[Record, Any], list[Candidate]]
    columns: Callable[[Any], list[str]]
    merges: Callable[[Any], bool] = lambda options: False
    # rows -> groups, for formats whose records are parts of groups (one row per completion)
    combine: Callable[[list[Candidate], Any], list[Candidate]] | None = None


def _type_name(value: Any) -> str:
    return type_name(value)


def get(record: Record, field: str) -> Any:
    """The value at a field path (`a.b`, `a[0]`, `a[*].text`); see `rmcore.data.paths`."""
    return paths.get(record, field)


def text(record: Record, field: str, *, optional: bool = False) -> str:
    """A string at a field path (null or absent is "" when optional)."""
    try:
        value = get(record, field)
    except RecordError as exc:
        if optional and exc.rejection.reason in ("missing_field", "null_field"):
            return ""
        raise
    if value is None:
        if optional:
            return ""
        raise RecordError("null_field", field, f"`{field}` is null; expected a string")
    if not isinstance(value, str):
        raise RecordError(
            "wrong_type",
            field,
            f"`{field}` is {type_name(value)} ({value!r:.60}), expected a string",
        )
    return value


def required(record: Record, field: str) -> Any:
    """The value at a field path, which must be present and not null."""
    value = get(record, field)
    if value is None:
        raise RecordError("null_field", field, f"`{field}` is null")
    return value


def values_of(record: Record, spec: str | Sequence[str]) -> tuple[list[Any], list[str]]:
    """Values of one list field (`r`, `r[*].text`) or of several fields, with their paths."""
    if not isinstance(spec, str):
        return [get(record, field) for field in spec], list(spec)
    if None in paths.steps(spec):
        found = paths.get_all(record, spec)
        return [value for _, value in found], [where for where, _ in found]
    values = as_list(required(record, spec), spec)
    return values, [f"{spec}[{i}]" for i in range(len(values))]


def as_list(value: Any, field: str) -> list[Any]:
    """A list value; a string holding a JSON list (as in CSV cells) is decoded."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError("wrong_type", field, f"not a JSON list: {exc.msg}") from None
    if not isinstance(value, (list, tuple)):
        raise RecordError("wrong_type", field, f"expected a list, got {_type_name(value)}")
    return list(value)


def strings(value: Any, field: str) -> list[str]:
    items = as_list(value, field)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RecordError(
                "wrong_type", f"{field}[{i}]", f"expected a string, got {_type_name(item)}"
            )
    return items


def number(value: Any, field: str, reason: str = "invalid_score") -> float:
    """A finite number; numeric strings (CSV) are accepted, booleans are not."""
    if value is None:
        raise RecordError("null_field", field, f"`{field}` is null; expected a number")
    if isinstance(value, bool):
        raise RecordError("wrong_type", field, f"expected a number, got {_type_name(value)}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecordError(
                "wrong_type", field, f"expected a number, got {value!r:.40}"
            ) from None
    if not isinstance(value, (int, float)):
        raise RecordError("wrong_type", field, f"expected a number, got {_type_name(value)}")
    if not math.isfinite(value):
        raise RecordError(reason, field, f"got {value}")
    return float(value)


def integer(value: Any, field: str) -> int:
    result = number(value, field, reason="invalid_value")
    if result != int(result):
        raise RecordError("invalid_value", field, f"expected a whole number, got {result}")
    return int(result)


def score_of(record: Record, spec: str | Mapping[str, float]) -> float:
    """One score: a field, or the weighted sum of several (`{helpfulness: 1, ...}`)."""
    if isinstance(spec, str):
        return number(required(record, spec), spec)
    return sum(weight * number(required(record, f), f) for f, weight in spec.items())


def scores_of(
    record: Record, spec: str | Sequence[str] | Mapping[str, float]
) -> tuple[list[float], list[str]]:
    """Scores of several completions, with their paths: a list field, one field per completion,
    or the weighted sum of several list fields (`{r[*].helpfulness: 1, r[*].honesty: 1}`)."""
    if not isinstance(spec, Mapping):
        values, where = values_of(record, spec)
        return [number(v, n) for v, n in zip(values, where, strict=True)], where
    totals: list[float] = []
    names: list[str] = []
    for field, weight in spec.items():
        values, where = values_of(record, field)
        if names and len(values) != len(names):
            raise RecordError(
                "invalid_value",
                field,
                f"{len(values)} values where the first field gives {len(names)}",
            )
        scores = [weight * number(v, n) for v, n in zip(values, where, strict=True)]
        totals = [t + s for t, s in zip(totals, scores, strict=True)] if names else scores
        names = names or where
    return totals, names


def selected(record: Record, where: Mapping[str, Any]) -> None:
    """Raise `excluded` unless every field of `where` has its value (or one of its values)."""
    for field, wanted in where.items():
        accepted = wanted if isinstance(wanted, list) else [wanted]
        try:
            value = get(record, field)
        except RecordError as exc:
            raise RecordError("excluded", field, f"options.where: {exc.rejection.detail}") from None
        if label_key(value) not in {label_key(a) for a in accepted}:
            shown = accepted[0] if len(accepted) == 1 else accepted
            raise RecordError("excluded", field, f"options.where: {value!r:.40}, not {shown!r:.60}")


def user_prompt(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def dense_ranks(keys: Sequence[float]) -> list[int]:
    """0 for the smallest key, equal keys share a rank, no gaps: [3, 1, 3] -> [1, 0, 1]."""
    order = {value: rank for rank, value in enumerate(sorted(set(keys)))}
    return [order[value] for value in keys]


def ranks_from_scores(scores: Sequence[float], higher_is_better: bool = True) -> list[int]:
    return dense_ranks([-s if higher_is_better else s for s in scores])


def columns_of(*fields: str | Sequence[str] | None) -> list[str]:
    """Top-level column names used by the given field paths (for table header checks)."""
    names: list[str] = []
    for item in fields:
        if item is None:
            continue
        for name in [item] if isinstance(item, str) else item:
            top = paths.column(name)
            if top is not None and top not in names:
                names.append(top)
    return names
