"""The prompt and the replies of a record, as the `mapping` and `long` formats name them.

The prompt is one text field, several joined (absent or null parts skipped), a messages field,
or (with neither option) the history that conversation replies share; a text prompt may be a
`Human:` / `Assistant:` transcript. Replies are text, message objects, or conversations (cut
after the judged `turn` when a field gives it). `prompt_extract` / `response_extract` take the
text out of templates; `split_key` names a field that decides the split with the prompt.
"""

from __future__ import annotations

import json
from typing import Any

from rmcore.data.adapters.common import Record, get, integer, required, text, values_of
from rmcore.data.adapters.extract import extract, extract_prompt
from rmcore.data.adapters.messages import (
    Message,
    MessageKeys,
    prompt_messages,
    reply,
    shared_history,
    split_transcript,
)
from rmcore.data.paths import type_name
from rmcore.data.records import Candidate, RecordError


def prompt_of(record: Record, o: Any, keys: MessageKeys) -> list[Message] | None:
    """The prompt the options name (`prompt` fields or `messages`), or None without either."""
    if o.messages is not None:
        return prompt_messages(required(record, o.messages), o.messages, keys)
    if o.prompt is None:
        return None
    fields = [o.prompt] if isinstance(o.prompt, str) else o.prompt
    parts = []
    for field in fields:
        if len(fields) > 1 and _absent(record, field):
            continue  # an absent part of a composed prompt, e.g. an empty `input`
        parts.append(text(record, field))
    joined = o.prompt_join.join(p for p in parts if p.strip())
    if o.prompt_transcript:
        return _transcript(joined, fields[0])
    return [{"role": "user", "content": joined}]


def _transcript(joined: str, field: str) -> list[Message]:
    turns = split_transcript(joined, field)
    if turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns = turns[:-1]  # the `Assistant:` the completions follow
    return turns


def _absent(record: Record, field: str) -> bool:
    try:
        return get(record, field) is None
    except RecordError as exc:
        if exc.rejection.reason in ("missing_field", "null_field"):
            return True
        raise


def replies_of(
    record: Record, spec: str | list[str], o: Any, keys: MessageKeys, turn: str | None = None
) -> tuple[list[str], list[Message] | None]:
    """(reply texts, the history they share or None for text replies) of the response fields."""
    values, names = values_of(record, spec)
    judged = integer(required(record, turn), turn) if turn is not None else None
    found = [_reply(v, n, keys, judged) for v, n in zip(values, names, strict=True)]
    histories = [history for history, _ in found]
    texts = [extract(t, o.response_extract, n) for (_, t), n in zip(found, names, strict=True)]
    if all(h is None for h in histories):
        return texts, None
    if any(h is None for h in histories):
        at = names[histories.index(None)]
        raise RecordError("wrong_type", at, f"`{at}` is text while other replies are messages")
    return texts, shared_history([h or [] for h in histories], names)


def _reply(
    value: Any, name: str, keys: MessageKeys, turn: int | None
) -> tuple[list[Message] | None, str]:
    if value is None:
        raise RecordError("null_field", name, f"`{name}` is null")
    if isinstance(value, (bool, int, float)):
        raise RecordError("wrong_type", name, f"`{name}` is {type_name(value)}, expected a string")
    return reply(value, name, keys, turn)


def the_prompt(given: list[Message] | None, shared: list[Message] | None, o: Any) -> list[Message]:
    """The prompt options name, else the replies' shared history; then `prompt_extract`."""
    field = o.messages or (o.prompt if isinstance(o.prompt, str) else "prompt")
    if given is not None:
        return extract_prompt(given, o.prompt_extract, field)
    if shared is None:
        raise RecordError(
            "missing_field",
            "prompt",
            "no prompt: name it with options.prompt or options.messages, or give the replies "
            "as conversations",
        )
    return extract_prompt(shared, o.prompt_extract, field)


def with_split_key(record: Record, o: Any, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates, each with the value of `options.split_key` (if any) as a split key."""
    if o.split_key is None:
        return candidates
    value = required(record, o.split_key)
    key = f"{o.split_key}={json.dumps(value, sort_keys=True, default=str)}"
    for candidate in candidates:
        candidate.split_keys = [key]
    return candidates
