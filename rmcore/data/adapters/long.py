"""Long format: one row per completion, grouped into ranked groups by key fields.

Each row gives a prompt (or the history of a conversation response), one response and its
score or rank. Rows whose `group_by` fields are equal (by default: rows with the same prompt)
form one group, in the order their first row was read; the scores or ranks of its rows rank
the group, equal values tie. A group of one row is quarantined (`single_completion`) like
any group with k < 2.
"""

from __future__ import annotations

import json
from collections import Counter

from rmcore.core.formats import LongOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    columns_of,
    dense_ranks,
    get,
    integer,
    ranks_from_scores,
    required,
    score_of,
)
from rmcore.data.adapters.messages import MessageKeys
from rmcore.data.adapters.prompts import prompt_of, replies_of, the_prompt, with_split_key
from rmcore.data.normalize import prompt_text
from rmcore.data.records import Candidate


def _key(record: Record, o: LongOptions, prompt: list[dict[str, str]]) -> str:
    if o.group_by is None:
        return prompt_text(prompt)
    fields = [o.group_by] if isinstance(o.group_by, str) else o.group_by
    return json.dumps([get(record, field) for field in fields], sort_keys=True, default=str)


def convert_long(record: Record, options: LongOptions) -> list[Candidate]:
    """One row: a one-completion part of a group, with its key and its score or rank."""
    keys = MessageKeys.of(options)
    given = prompt_of(record, options, keys)
    [completion], shared = replies_of(record, [options.response], options, keys)
    prompt = the_prompt(given, shared, options)
    if options.score is not None:
        row = Candidate(prompt, [completion], [0], [score_of(record, options.score)])
    else:
        assert options.rank is not None
        row = Candidate(
            prompt, [completion], [integer(required(record, options.rank), options.rank)]
        )
    row.group_key = _key(record, options, prompt)
    return with_split_key(record, options, [row])


def combine_rows(rows: list[Candidate], options: LongOptions) -> list[Candidate]:
    """The rows of each key as one group, in first-seen order."""
    by_key: dict[str | None, list[Candidate]] = {}
    for row in rows:
        by_key.setdefault(row.group_key, []).append(row)
    return [_group(parts, options) for parts in by_key.values()]


def _group(parts: list[Candidate], options: LongOptions) -> Candidate:
    first = parts[0]
    completions = [part.completions[0] for part in parts]
    notes: Counter[str] = Counter()
    if len({prompt_text(part.prompt) for part in parts}) > 1:
        notes["groups_with_differing_prompts"] += 1  # the first row's prompt is kept
    if options.score is not None:
        scores = [part.scores[0] for part in parts if part.scores]
        ranks = ranks_from_scores(scores, options.higher_is_better)
        group = Candidate(first.prompt, completions, ranks, scores, notes=notes)
    else:
        ranks = dense_ranks([part.ranks[0] for part in parts])
        group = Candidate(first.prompt, completions, ranks, notes=notes)
    group.refs = [ref for part in parts for ref in part.refs]
    group.split_keys = sorted({key for part in parts for key in part.split_keys})
    return group


def _columns(o: LongOptions) -> list[str]:
    score = list(o.score) if isinstance(o.score, dict) else o.score
    return columns_of(o.prompt, o.messages, o.response, o.group_by, score, o.rank, o.split_key)


LONG = Adapter(convert=convert_long, columns=_columns, combine=combine_rows)
