"""Chat messages in the shapes datasets give them, read into `{role, content}`.

A message is an object whose role and content sit under keys the options name (`role_key`,
`content_key`: `from` / `value` in ShareGPT), with role names mapped to user / assistant /
system (`human`, `gpt`, `bot`, ... by default, more through `roles`). A reply (a completion)
is a string, one message object, or a conversation ending in an assistant message; the
messages before the reply are its history, which every reply of a group must share (that
shared history is the prompt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rmcore.data.adapters.common import ROLES, as_list, text
from rmcore.data.paths import type_name
from rmcore.data.records import RecordError

Message = dict[str, str]

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


@dataclass(frozen=True)
class MessageKeys:
    """Where a message keeps its role and content, and what its role names mean."""

    role: str = "role"
    content: str = "content"
    roles: Mapping[str, str] = field(default_factory=lambda: dict(ROLES))

    @classmethod
    def of(cls, options: Any) -> MessageKeys:
        """The keys an options model names (defaults where it names none)."""
        extra = {k.lower(): v for k, v in getattr(options, "roles", {}).items()}
        return cls(
            role=getattr(options, "role_key", "role"),
            content=getattr(options, "content_key", "content"),
            roles={**ROLES, **extra},
        )


def message(value: Any, where: str, keys: MessageKeys) -> Message:
    """One message object -> {role, content}; an unknown role names the known ones."""
    if not isinstance(value, Mapping):
        raise RecordError(
            "wrong_type", where, f"`{where}` is {type_name(value)}, expected a message object"
        )
    role = _at(value, keys.role, where)
    content = _at(value, keys.content, where)
    if role.lower() not in keys.roles:
        known = ", ".join(sorted(keys.roles))
        raise RecordError(
            "invalid_value",
            f"{where}.{keys.role}",
            f"unknown role {role!r}; known: {known} (map it with options.roles)",
        )
    return {"role": keys.roles[role.lower()], "content": content}


def _at(value: Mapping[str, Any], key: str, where: str) -> str:
    try:
        return text(value, key)
    except RecordError as exc:
        rejection = exc.rejection
        detail = rejection.detail.replace("the record", f"`{where}`")
        raise RecordError(rejection.reason, f"{where}.{key}", detail) from None


def messages(value: Any, where: str, keys: MessageKeys) -> list[Message]:
    """A list of message objects (a JSON list in a table cell is decoded)."""
    return [message(m, f"{where}[{i}]", keys) for i, m in enumerate(as_list(value, where))]


def prompt_messages(value: Any, where: str, keys: MessageKeys) -> list[Message]:
    """A prompt given as a string (one user message), or as messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return messages(value, where, keys)


def reply(
    value: Any, where: str, keys: MessageKeys, turn: int | None = None
) -> tuple[list[Message] | None, str]:
    """(history, reply) of a completion: a string or one message (no history), or a
    conversation cut after its `turn`-th assistant message (default: its last message)."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, Mapping):
        return [], _assistant(message(value, where, keys), where)
    conversation = messages(value, where, keys)
    if turn is not None:
        conversation = _cut(conversation, turn, where)
    if not conversation:
        raise RecordError("empty_completion", where, f"`{where}` is an empty conversation")
    return conversation[:-1], _assistant(conversation[-1], f"{where}[{len(conversation) - 1}]")


def _assistant(last: Message, where: str) -> str:
    if last["role"] != "assistant":
        raise RecordError(
            "invalid_value", where, f"`{where}` is a {last['role']} message, not an assistant reply"
        )
    return last["content"]


def _cut(conversation: list[Message], turn: int, where: str) -> list[Message]:
    """The conversation up to and including its `turn`-th (1-based) assistant message."""
    seen = 0
    for i, m in enumerate(conversation):
        seen += m["role"] == "assistant"
        if seen == turn:
            return conversation[: i + 1]
    raise RecordError(
        "invalid_value", where, f"turn {turn}, but `{where}` has {seen} assistant message(s)"
    )


def shared_history(histories: Sequence[list[Message]], fields: Sequence[str]) -> list[Message]:
    """The history every reply continues; a prompt needs one. Different user or system turns
    are `prompt_mismatch`; different assistant turns (each reply continues its own earlier
    answers, as in multi-turn arena battles) are `histories_differ`."""
    first = histories[0]
    for other, where in zip(histories[1:], fields[1:], strict=True):
        if other == first:
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(first, other, strict=False)) if a != b),
            min(len(first), len(other)),
        )
        roles = {h[at]["role"] for h in (first, other) if at < len(h)}
        reason = "histories_differ" if roles == {"assistant"} else "prompt_mismatch"
        raise RecordError(
            reason,
            where,
            f"message {at + 1} before the reply differs from `{fields[0]}`'s "
            f"({len(first)} vs {len(other)} messages); the replies need one shared prompt",
        )
    return first
