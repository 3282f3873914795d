"""A generic column mapping: name the prompt, response and label/rank/score fields in params.

Prompt: one field, several fields joined (empty ones skipped), or a messages field.
Responses: several fields, or one field holding a list.
Preference, one of:
- `label`: for two responses, a label field whose values mean first better / second better /
  tie (`label_first`, `label_second`, `label_tie`); several label fields are votes of several
  annotators, decided by the outcome with the most votes (a draw for most votes: `no_majority`);
- `ranks`: 0 = best, equal ranks tie;
- `scores`: higher is better unless `higher_is_better: false`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rmcore.core.formats import MappingOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    columns_of,
    dense_ranks,
    get,
    integer,
    ranks_from_scores,
    scores_of,
    values_of,
)
from rmcore.data.adapters.messages import MessageKeys
from rmcore.data.adapters.prompts import prompt_of, replies_of, the_prompt
from rmcore.data.records import Candidate, RecordError

OUTCOME_RANKS = {"first": [0, 1], "second": [1, 0], "tie": [0, 0]}


def _label_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _outcome(value: Any, field: str, o: MappingOptions) -> str:
    key = _label_key(value)
    for outcome, accepted in (
        ("first", o.label_first),
        ("second", o.label_second),
        ("tie", o.label_tie),
    ):
        if key in {_label_key(v) for v in accepted}:
            return outcome
    allowed = [*o.label_first, *o.label_second, *o.label_tie]
    raise RecordError("invalid_value", field, f"label {value!r:.40} is not one of {allowed}")


def _vote(record: Record, o: MappingOptions, notes: Counter[str]) -> str:
    """The outcome of one label field, or the most-voted outcome of several."""
    assert o.label is not None
    fields = [o.label] if isinstance(o.label, str) else o.label
    votes: Counter[str] = Counter()
    for field in fields:
        value = get(record, field)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an annotator who did not vote
        votes[_outcome(value, field, o)] += 1
    if not votes:
        raise RecordError("missing_field", fields[0], "no label value given")
    (best, top), *rest = votes.most_common()
    if len(fields) > 1 and len(votes) > 1:
        notes["votes_disagree"] += 1
    if rest and rest[0][1] == top:
        if o.no_majority == "quarantine":
            raise RecordError("no_majority", fields[0], f"votes {dict(votes)}")
        notes["no_majority_as_tie"] += 1
        return "tie"
    return best


def _ranks(
    record: Record, o: MappingOptions, k: int, notes: Counter[str]
) -> tuple[list[int], list[float] | None]:
    if o.label is not None:
        if k != 2:
            raise RecordError(
                "invalid_value", str(o.responses), f"a label needs 2 responses, got {k}"
            )
        return list(OUTCOME_RANKS[_vote(record, o, notes)]), None
    if o.ranks is not None:
        values, names = values_of(record, o.ranks)
        _check_count(len(values), k, names, o.ranks)
        ranks = [integer(v, n) for v, n in zip(values, names, strict=True)]
        for rank, name in zip(ranks, names, strict=True):
            if rank < 0:
                raise RecordError("invalid_value", name, f"rank {rank} < 0 (0 = best)")
        return dense_ranks(ranks), None
    assert o.scores is not None
    scores, names = scores_of(record, o.scores)
    _check_count(len(scores), k, names, o.scores)
    return ranks_from_scores(scores, o.higher_is_better), scores


def _check_count(given: int, k: int, names: list[str], spec: object) -> None:
    if given != k:
        where = names[0] if names else str(spec)
        raise RecordError("invalid_value", where, f"{given} values for {k} responses")


def convert_mapping(record: Record, options: MappingOptions) -> list[Candidate]:
    keys = MessageKeys.of(options)
    given = prompt_of(record, options, keys)
    completions, shared = replies_of(record, options.responses, keys, options.turn)
    prompt = the_prompt(given, shared)
    notes: Counter[str] = Counter()
    ranks, scores = _ranks(record, options, len(completions), notes)
    return [Candidate(prompt, completions, ranks, scores, notes=notes)]


def _columns(o: MappingOptions) -> list[str]:
    scores = list(o.scores) if isinstance(o.scores, dict) else o.scores
    return columns_of(o.prompt, o.messages, o.responses, o.turn, o.label, o.ranks, scores)


MAPPING = Adapter(convert=convert_mapping, columns=_columns, merges=lambda o: o.merge_pairs)
