"""Pair labels of the `mapping` format: which of two responses is better, and how strongly.

A label is categorical (values meaning first better / second better / tie / not compared) or
continuous (`label_scale`: a number between the value meaning "first is better" and the one
meaning "second is better"; within `tie_band` of the centre a tie; the distance from the centre
is the pair's margin). Several label fields are votes: the most-voted outcome wins (continuous
votes: their mean). A record compares two responses with one label, or k responses with a list
of labels in a stated pair order (`pairs`) or a list of (i, j, label) `comparisons`; "not
compared" gives no pair. The pairs of one record become one ranked group where they are
consistent (see `rmcore.data.merge`), else separate pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rmcore.core.fieldpaths import label_key
from rmcore.core.formats import MappingOptions
from rmcore.data.adapters.common import Record, as_list, get, integer, number, required
from rmcore.data.merge import merge_pairs
from rmcore.data.records import Candidate, RecordError

RANKS = {"first": [0, 1], "second": [1, 0], "tie": [0, 0]}


@dataclass(frozen=True)
class Judgement:
    """Responses i and j compared: first / second (better) / tie / none, and a margin."""

    i: int
    j: int
    outcome: str
    margin: float | None = None


def _categorical(value: Any, field: str, o: MappingOptions) -> str:
    key = label_key(value)
    for outcome, accepted in (
        ("first", o.label_first),
        ("second", o.label_second),
        ("tie", o.label_tie),
        ("none", o.label_none),
    ):
        if key in {label_key(v) for v in accepted}:
            return outcome
    allowed = [*o.label_first, *o.label_second, *o.label_tie, *o.label_none]
    raise RecordError("invalid_value", field, f"label {value!r:.40} is not one of {allowed}")


def _continuous(value: float, field: str, o: MappingOptions) -> tuple[str, float | None]:
    assert o.label_scale is not None
    first, second = o.label_scale
    if not min(first, second) <= value <= max(first, second):
        raise RecordError(
            "invalid_value", field, f"label {value:g} is outside the scale [{first:g}, {second:g}]"
        )
    offset = value - (first + second) / 2
    if abs(offset) <= o.tie_band:
        return "tie", None
    return ("first" if (offset < 0) == (first < second) else "second"), abs(offset)


def outcome(value: Any, field: str, o: MappingOptions) -> tuple[str, float | None]:
    """One label value -> (outcome, margin)."""
    if o.label_scale is not None:
        return _continuous(number(value, field, reason="invalid_value"), field, o)
    return _categorical(value, field, o), None


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def vote(record: Record, o: MappingOptions, notes: Counter[str]) -> tuple[str, float | None]:
    """The outcome of one label field, or the most-voted outcome of several."""
    assert o.label is not None
    fields = [o.label] if isinstance(o.label, str) else o.label
    given = [(f, v) for f in fields if _given(v := get(record, f))]  # skip who did not vote
    if not given:
        raise RecordError("missing_field", fields[0], "no label value given")
    if o.label_scale is not None:
        values = [number(v, f, reason="invalid_value") for f, v in given]
        return _continuous(sum(values) / len(values), fields[0], o)
    votes = Counter(_categorical(v, f, o) for f, v in given)
    del votes["none"]  # an annotator who did not compare
    if not votes:
        return "none", None
    (best, top), *rest = votes.most_common()
    if len(fields) > 1 and len(votes) > 1:
        notes["votes_disagree"] += 1
    if rest and rest[0][1] == top:
        if o.no_majority == "quarantine":
            raise RecordError("no_majority", fields[0], f"votes {dict(votes)}")
        notes["no_majority_as_tie"] += 1
        return "tie", None
    return best, None


def _index(value: Any, field: str, k: int) -> int:
    i = integer(value, field)
    if not 0 <= i < k:
        raise RecordError("invalid_value", field, f"response index {i}, but there are {k}")
    return i


def _comparison(entry: Any, where: str, o: MappingOptions, k: int) -> Judgement:
    if isinstance(entry, Mapping):
        fields = [f"{where}.{key}" for key in o.comparison_keys]
        values = [required(entry, key) for key in o.comparison_keys]
    elif isinstance(entry, (list, tuple)) and len(entry) == 3:
        fields, values = [f"{where}[{n}]" for n in range(3)], list(entry)
    else:
        raise RecordError("wrong_type", where, "expected [i, j, label] or an object")
    i, j = _index(values[0], fields[0], k), _index(values[1], fields[1], k)
    return Judgement(i, j, *outcome(values[2], fields[2], o))


def judgements(record: Record, o: MappingOptions, k: int, notes: Counter[str]) -> list[Judgement]:
    """Every comparison the record states, not-compared ones included."""
    if o.comparisons is not None:
        entries = as_list(required(record, o.comparisons), o.comparisons)
        return [_comparison(e, f"{o.comparisons}[{n}]", o, k) for n, e in enumerate(entries)]
    if o.pairs is None:
        if k != 2:
            raise RecordError(
                "invalid_value", str(o.responses), f"a label needs 2 responses, got {k}"
            )
        return [Judgement(0, 1, *vote(record, o, notes))]
    assert isinstance(o.label, str)
    labels = as_list(required(record, o.label), o.label)
    if len(labels) != len(o.pairs):
        detail = f"{len(labels)} labels for {len(o.pairs)} pairs in options.pairs"
        raise RecordError("invalid_value", o.label, detail)
    pairs = [(_index(i, "options.pairs", k), _index(j, "options.pairs", k)) for i, j in o.pairs]
    return [
        Judgement(i, j, *outcome(label, f"{o.label}[{n}]", o))
        for n, ((i, j), label) in enumerate(zip(pairs, labels, strict=True))
    ]


def _label_field(o: MappingOptions) -> str | None:
    if o.comparisons is not None or o.label is None:
        return o.comparisons
    return o.label if isinstance(o.label, str) else o.label[0]


def _pair(prompt: list[dict[str, str]], completions: list[str], j: Judgement) -> Candidate:
    pair = Candidate(prompt, [completions[j.i], completions[j.j]], list(RANKS[j.outcome]))
    if j.margin is not None and j.outcome in ("first", "second"):
        pair.margins = [(0, 1, j.margin) if j.outcome == "first" else (1, 0, j.margin)]
    return pair


def groups(
    prompt: list[dict[str, str]],
    completions: list[str],
    judged: list[Judgement],
    o: MappingOptions,
    notes: Counter[str],
) -> list[Candidate]:
    """The record's compared pairs as one ranked group where consistent, else as pairs."""
    compared = [j for j in judged if j.outcome != "none"]
    if len(compared) < len(judged):
        notes["pairs_not_compared"] += len(judged) - len(compared)
    if not compared:
        raise RecordError("not_compared", _label_field(o), "every label means not compared")
    pairs = [_pair(prompt, completions, j) for j in compared]
    made = merge_pairs(pairs, implied=o.merge_implied) if len(pairs) > 1 else pairs
    for candidate in made:
        candidate.notes.update(notes)
        notes = Counter()  # the record's notes are counted once
    return made
