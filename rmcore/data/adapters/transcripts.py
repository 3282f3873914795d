"""Pairs of whole conversations: Anthropic hh-rlhf transcripts and TRL preference rows."""

from __future__ import annotations

from rmcore.core.formats import HHRLHFOptions, PreferenceOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    columns_of,
    get,
    number,
    required,
    text,
    user_prompt,
)
from rmcore.data.adapters.extract import extract, extract_prompt
from rmcore.data.adapters.messages import (
    MessageKeys,
    prompt_messages,
    reply,
    shared_history,
    split_transcript,
)
from rmcore.data.adapters.prompts import with_split_key
from rmcore.data.paths import has
from rmcore.data.records import Candidate, RecordError


def _shared_prompt(
    chosen: list[dict[str, str]], rejected: list[dict[str, str]], fields: tuple[str, str]
) -> list[dict[str, str]]:
    """The turns before the final replies; both conversations must share them exactly."""
    for turns, field in zip((chosen, rejected), fields, strict=True):
        if turns[-1]["role"] != "assistant":
            raise RecordError("bad_transcript", field, "the last turn is not an assistant reply")
    if len(chosen) != len(rejected) or chosen[:-1] != rejected[:-1]:
        turn = next(
            (i for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=False)) if a != b),
            min(len(chosen), len(rejected)) - 1,
        )
        raise RecordError(
            "prompt_mismatch",
            fields[1],
            f"turn {turn + 1} differs ({len(chosen)} vs {len(rejected)} turns); "
            "the prefixes before the final replies must match",
        )
    return chosen[:-1]


def convert_hh_rlhf(record: Record, options: HHRLHFOptions) -> list[Candidate]:
    fields = (options.chosen, options.rejected)
    chosen = split_transcript(text(record, options.chosen), options.chosen)
    rejected = split_transcript(text(record, options.rejected), options.rejected)
    prompt = _shared_prompt(chosen, rejected, fields)
    return [Candidate(prompt, [chosen[-1]["content"], rejected[-1]["content"]], [0, 1])]


def _string_prefix(chosen: str, rejected: str) -> int:
    """Length of the shared prefix, backed up to a word boundary (as TRL's extract_prompt)."""
    end = 0
    while end < min(len(chosen), len(rejected)) and chosen[end] == rejected[end]:
        end += 1
    while end > 0 and not chosen[end - 1].isspace():
        end -= 1
    return end


def convert_preference(record: Record, options: PreferenceOptions) -> list[Candidate]:
    """Explicit (prompt + chosen + rejected) or implicit (shared prefix) rows, as TRL reads.

    chosen and rejected are strings, message objects or conversations (whose last message is
    the reply and whose earlier messages must be the same in both)."""
    keys = MessageKeys.of(options)
    fields = (options.chosen, options.rejected)
    raw = [required(record, field) for field in fields]
    replies = [reply(value, field, keys) for value, field in zip(raw, fields, strict=True)]
    completions = [text for _, text in replies]
    histories = [history for history, _ in replies]
    if all(h is not None for h in histories):
        prompt = shared_history([h or [] for h in histories], fields)
    elif any(h is not None for h in histories):
        raise RecordError(
            "wrong_type", options.rejected, "chosen and rejected must both be text or messages"
        )
    if has(record, options.prompt):
        prompt = prompt_messages(get(record, options.prompt), options.prompt, keys)
    elif histories[0] is None:
        cut = _string_prefix(completions[0], completions[1])
        prompt = user_prompt(completions[0][:cut])
        completions = [c[cut:] for c in completions]
    prompt = extract_prompt(prompt, options.prompt_extract, options.prompt)
    completions = [
        extract(c, options.response_extract, f) for c, f in zip(completions, fields, strict=True)
    ]
    candidate = Candidate(prompt, completions, [0, 1])
    if options.margin is not None:
        candidate.margins = [(0, 1, number(required(record, options.margin), options.margin))]
    if options.scores is not None:
        candidate.scores, candidate.ranks = _scored(record, options.scores)
    return with_split_key(record, options, [candidate])


def _scored(record: Record, fields: tuple[str, str]) -> tuple[list[float], list[int]]:
    """The chosen and rejected scores, and the ranks they allow (equal scores tie)."""
    chosen, rejected = (number(required(record, f), f) for f in fields)
    if chosen < rejected:
        detail = f"the chosen score {chosen:g} is below the rejected one {rejected:g}"
        raise RecordError("invalid_value", fields[0], detail)
    return [chosen, rejected], [0, 0] if chosen == rejected else [0, 1]


HH_RLHF = Adapter(
    convert=convert_hh_rlhf,
    columns=lambda o: columns_of(o.chosen, o.rejected),
)
PREFERENCE = Adapter(
    convert=convert_preference,
    columns=lambda o: columns_of(o.chosen, o.rejected, o.margin, o.scores, o.split_key),
)
