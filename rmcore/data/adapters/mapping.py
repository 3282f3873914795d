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

from rmcore.core.formats import MappingOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    columns_of,
    dense_ranks,
    integer,
    ranks_from_scores,
    scores_of,
    values_of,
)
from rmcore.data.adapters.labels import groups, judgements
from rmcore.data.adapters.messages import MessageKeys
from rmcore.data.adapters.prompts import prompt_of, replies_of, the_prompt, with_split_key
from rmcore.data.records import Candidate, RecordError


def _ranks(record: Record, o: MappingOptions, k: int) -> tuple[list[int], list[float] | None]:
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
    completions, shared = replies_of(record, options.responses, options, keys, options.turn)
    prompt = the_prompt(given, shared, options)
    notes: Counter[str] = Counter()
    if options.ranks is None and options.scores is None:
        judged = judgements(record, options, len(completions), notes)
        made = groups(prompt, completions, judged, options, notes)
    else:
        ranks, scores = _ranks(record, options, len(completions))
        made = [Candidate(prompt, completions, ranks, scores)]
    return with_split_key(record, options, made)


def _columns(o: MappingOptions) -> list[str]:
    scores = list(o.scores) if isinstance(o.scores, dict) else o.scores
    fields = [o.prompt, o.messages, o.responses, o.turn, o.label, o.ranks, scores, o.comparisons]
    fields.append(o.split_key)
    return columns_of(*fields)


MAPPING = Adapter(convert=convert_mapping, columns=_columns, merges=lambda o: o.merge_pairs)
