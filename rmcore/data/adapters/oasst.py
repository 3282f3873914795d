"""OpenAssistant message trees: every set of sibling assistant replies is one ranked group.

A record is one tree `{message_tree_id, prompt: {text, role, replies: [...]}}` (the layout of
OpenAssistant's `*_tree.jsonl` exports). The conversation from the root down to a message is the
prompt of the group formed by that message's assistant replies, ranked by their consensus `rank`.

Explicit handling, all counted in the report:
- replies without a rank are removed from their group (`unranked`);
- deleted replies are removed (`deleted`) together with the conversation below them;
- synthetic messages are kept, or with `include_synthetic: false` removed as replies
  (`synthetic_excluded`) and, inside a prompt, the group is quarantined for that reason;
- a tree without any assistant replies is quarantined (`no_reply_groups`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from rmcore.core.formats import OasstOptions
from rmcore.data.adapters.common import ROLES, Adapter, Record, as_list, get, integer, text
from rmcore.data.records import Candidate, RecordError, Rejection

Message = Mapping[str, Any]


def _message(value: Any, where: str) -> Message:
    if not isinstance(value, Mapping):
        raise RecordError("wrong_type", where, "expected a message object")
    role = text(value, "role")
    if role not in ROLES:
        raise RecordError("invalid_value", f"{where}.role", f"unknown role {role!r}")
    return value


def _replies(message: Message, where: str) -> list[tuple[str, Message]]:
    items = as_list(message.get("replies", []), f"{where}.replies")
    return [
        (f"{where}.replies[{i}]", _message(m, f"{where}.replies[{i}]")) for i, m in enumerate(items)
    ]


def _group(
    path: list[Message], where: str, replies: list[tuple[str, Message]], options: OasstOptions
) -> Candidate:
    """The candidate group of the assistant replies below the last message of `path`."""
    removed: Counter[str] = Counter()
    completions, ranks = [], []
    for reply_at, reply in replies:
        if reply.get("deleted"):
            removed["deleted"] += 1
        elif reply.get("synthetic") and not options.include_synthetic:
            removed["synthetic_excluded"] += 1
        elif reply.get("rank") is None:
            removed["unranked"] += 1
        else:
            completions.append(text(reply, "text"))
            ranks.append(integer(reply["rank"], f"{reply_at}.rank"))
    prompt = [{"role": ROLES[m["role"]], "content": text(m, "text")} for m in path]
    candidate = Candidate(prompt, completions, ranks, removed=removed, location=f"{where}.replies")
    if not options.include_synthetic and any(m.get("synthetic") for m in path):
        candidate.rejection = Rejection(
            "synthetic_excluded", "prompt", "the conversation contains synthetic messages"
        )
    return candidate


def _walk(
    message: Message, where: str, path: list[Message], options: OasstOptions
) -> Iterator[Candidate]:
    path = [*path, message]
    replies = _replies(message, where)
    assistant = [(w, r) for w, r in replies if ROLES[r["role"]] == "assistant"]
    if assistant:
        yield _group(path, where, assistant, options)
    for child_where, child in replies:
        if not child.get("deleted"):
            yield from _walk(child, child_where, path, options)


def convert_oasst(record: Record, options: OasstOptions) -> list[Candidate]:
    root = _message(get(record, "prompt"), "prompt")
    groups = list(_walk(root, "prompt", [], options))
    if not groups:
        raise RecordError("no_reply_groups", "prompt.replies", "no assistant replies in the tree")
    return groups


OASST = Adapter(convert=convert_oasst, columns=lambda o: ["prompt"])
