"""Text taken out of templated fields, and boilerplate stripped from completions.

An `Extract` either searches a regex and takes its `text` group, or takes the text after
`start` and before the next `end`; then removes `remove_prefix` / `remove_suffix` where present.
A template that does not match quarantines the record (`no_match`), naming the field.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rmcore.core.formats import Extract
from rmcore.data.adapters.messages import Message
from rmcore.data.records import RecordError


@lru_cache(maxsize=64)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.DOTALL)


def _cut(text: str, spec: Extract, field: str) -> str:
    if spec.regex is not None:
        found = _compiled(spec.regex).search(text)
        if found is None or found.group("text") is None:
            raise RecordError("no_match", field, f"regex {spec.regex!r:.60} does not match")
        return found.group("text")
    if spec.start is not None:
        at = text.find(spec.start)
        if at < 0:
            raise RecordError("no_match", field, f"no {spec.start!r:.40} (extract start)")
        text = text[at + len(spec.start) :]
    if spec.end is not None:
        at = text.find(spec.end)
        if at < 0:
            raise RecordError("no_match", field, f"no {spec.end!r:.40} (extract end)")
        text = text[:at]
    return text


def extract(text: str, spec: Extract | None, field: str) -> str:
    """The text `spec` takes out of `text` (stripped); `text` itself without a spec."""
    if spec is None:
        return text
    text = _cut(text, spec, field).strip()
    if spec.remove_prefix:
        text = text.removeprefix(spec.remove_prefix.strip()).lstrip()
    if spec.remove_suffix:
        text = text.removesuffix(spec.remove_suffix.strip()).rstrip()
    return text


def extract_prompt(prompt: list[Message], spec: Extract | None, field: str) -> list[Message]:
    """The prompt with its first user message (a one-message prompt: its text) extracted."""
    if spec is None:
        return prompt
    at = next((i for i, m in enumerate(prompt) if m["role"] == "user"), None)
    if at is None:
        raise RecordError("no_match", field, "no user message to extract the prompt from")
    message = {"role": "user", "content": extract(prompt[at]["content"], spec, field)}
    return [*prompt[:at], message, *prompt[at + 1 :]]
