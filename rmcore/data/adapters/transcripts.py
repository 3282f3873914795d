"""Pairs of whole conversations: Anthropic hh-rlhf transcripts and TRL preference rows."""

from __future__ import annotations

import re
from typing import Any

from rmcore.core.formats import HHRLHFOptions, PreferenceOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    columns_of,
    get,
    messages,
    required,
    text,
    user_prompt,
)
from rmcore.data.paths import has
from rmcore.data.records import Candidate, RecordError

# A turn starts with "Human:" or "Assistant:" at the start of the text or after a blank line.
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def split_transcript(transcript: str, field: str) -> list[dict[str, str]]:
    """`\\n\\nHuman: a\\n\\nAssistant: b` -> [{user, a}, {assistant, b}]."""
    parts = _TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise RecordError(
            "bad_transcript", field, "expected turns starting with `Human:` / `Assistant:`"
        )
    return [
        {"role": _ROLE[role], "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


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


def _completion(value: Any, field: str) -> str:
    """A completion given as a string or as a list of assistant messages."""
    if isinstance(value, str):
        return value
    turns = messages(value, field)
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise RecordError("invalid_value", field, "expected exactly one assistant message")
    return turns[0]["content"]


def _string_prefix(chosen: str, rejected: str) -> int:
    """Length of the shared prefix, backed up to a word boundary (as TRL's extract_prompt)."""
    end = 0
    while end < min(len(chosen), len(rejected)) and chosen[end] == rejected[end]:
        end += 1
    while end > 0 and not chosen[end - 1].isspace():
        end -= 1
    return end


def convert_preference(record: Record, options: PreferenceOptions) -> list[Candidate]:
    """Explicit (prompt + chosen + rejected) or implicit (shared prefix) rows, as TRL reads."""
    chosen_raw = required(record, options.chosen)
    rejected_raw = required(record, options.rejected)
    if has(record, options.prompt):
        prompt_raw = get(record, options.prompt)
        prompt = (
            user_prompt(prompt_raw)
            if isinstance(prompt_raw, str)
            else messages(prompt_raw, options.prompt)
        )
        completions = [
            _completion(chosen_raw, options.chosen),
            _completion(rejected_raw, options.rejected),
        ]
        return [Candidate(prompt, completions, [0, 1])]
    if isinstance(chosen_raw, str) and isinstance(rejected_raw, str):
        cut = _string_prefix(chosen_raw, rejected_raw)
        pair = [chosen_raw[cut:], rejected_raw[cut:]]
        return [Candidate(user_prompt(chosen_raw[:cut]), pair, [0, 1])]
    chosen = messages(chosen_raw, options.chosen)
    rejected = messages(rejected_raw, options.rejected)
    if not chosen or not rejected:
        raise RecordError("empty_completion", options.chosen, "an empty conversation")
    prompt = _shared_prompt(chosen, rejected, (options.chosen, options.rejected))
    return [Candidate(prompt, [chosen[-1]["content"], rejected[-1]["content"]], [0, 1])]


HH_RLHF = Adapter(
    convert=convert_hh_rlhf,
    columns=lambda o: columns_of(o.chosen, o.rejected),
)
PREFERENCE = Adapter(
    convert=convert_preference,
    columns=lambda o: columns_of(o.chosen, o.rejected),
)
