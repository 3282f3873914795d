"""Ranking normalisation of candidate groups: text clean-up, ties, duplicates.

`clean` works on one group as the source gave it: whitespace normalised, over-long texts
quarantined, empty and duplicate completions removed (identical completions with different
ranks quarantine the group), ranks renumbered 0..n without gaps. `finalize` applies the tie
policy after optional pair merging. `Deduplicator` quarantines a group seen before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Literal

from rmcore.data.records import Candidate, RecordRef, Rejection

TiePolicy = Literal["keep", "drop", "quarantine"]

_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Unix newlines, no trailing spaces, single inner spaces, at most one blank line, stripped.

    Leading indentation is kept (code blocks stay readable).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(_single_spaces(line.rstrip()) for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _single_spaces(line: str) -> str:
    # the regex only where a run of two spaces or tabs can be (most lines have none): fast
    return _INNER_SPACES.sub(" ", line) if "  " in line or "\t" in line else line


def renumber(ranks: list[int]) -> list[int]:
    """Dense ranks keeping the order: [0, 2, 2, 5] -> [0, 1, 1, 2]."""
    order = {value: rank for rank, value in enumerate(sorted(set(ranks)))}
    return [order[r] for r in ranks]


def _too_long(candidate: Candidate, max_chars: int) -> Rejection | None:
    texts = [(f"prompt[{i}].content", m["content"]) for i, m in enumerate(candidate.prompt)]
    texts += [(f"completions[{i}]", c) for i, c in enumerate(candidate.completions)]
    for field, text in texts:
        if len(text) > max_chars:
            return Rejection(
                "text_too_long", field, f"{len(text):,} characters > data.max_chars {max_chars:,}"
            )
    return None


def _why_too_few(candidate: Candidate, given: int) -> Rejection:
    """The reason of a group left with k < 2: one completion given, or why others went."""
    if given < 2 or not candidate.removed:
        return Rejection("single_completion", "completions", f"{given} completion(s) given")
    reason, count = candidate.removed.most_common(1)[0]
    return Rejection(
        reason, "completions", f"{count} of {given} completions removed ({reason}), < 2 left"
    )


def _clean_prompt(candidate: Candidate) -> list[dict[str, str]]:
    prompt = []
    for message in candidate.prompt:
        content = normalize_text(message["content"])
        if content:
            prompt.append({"role": message["role"], "content": content})
        else:
            candidate.notes["empty_prompt_message_removed"] += 1
    return prompt


def remap_margins(
    margins: list[tuple[int, int, float]] | None, new_index: dict[int, int]
) -> list[tuple[int, int, float]] | None:
    """Margins with completion indices renumbered; a pair with a removed completion goes."""
    if margins is None:
        return None
    moved = [
        (new_index[b], new_index[w], m) for b, w, m in margins if b in new_index and w in new_index
    ]
    return list({(b, w): (b, w, m) for b, w, m in moved}.values())  # the first of repeats


def remap_judged(
    judged: set[tuple[int, int]] | None, new_index: dict[int, int]
) -> set[tuple[int, int]] | None:
    """Directly judged pairs with completion indices renumbered (as `remap_margins`)."""
    if judged is None:
        return None
    moved = ((new_index.get(i), new_index.get(j)) for i, j in judged)
    return {(min(i, j), max(i, j)) for i, j in moved if i is not None and j is not None and i != j}


def _clean_completions(candidate: Candidate) -> Candidate | Rejection:
    """Completions normalised, empty and repeated ones removed (counted in `removed`)."""
    cleaned = Candidate([], [], [], [] if candidate.scores is not None else None)
    cleaned.removed = Counter(candidate.removed)
    origin: list[int] = []  # index in the source of each kept completion
    new_index: dict[int, int] = {}
    for i, raw in enumerate(candidate.completions):
        text, rank = normalize_text(raw), candidate.ranks[i]
        if not text:
            cleaned.removed["empty_completion"] += 1
            continue
        if text in cleaned.completions:
            first = cleaned.completions.index(text)
            if cleaned.ranks[first] != rank:
                detail = f"identical to completions[{origin[first]}] but ranked differently"
                return Rejection("conflicting_duplicate", f"completions[{i}]", detail)
            cleaned.removed["duplicate_completion"] += 1
            new_index[i] = first
            continue
        new_index[i] = len(cleaned.completions)
        cleaned.completions.append(text)
        cleaned.ranks.append(rank)
        origin.append(i)
        if cleaned.scores is not None and candidate.scores is not None:
            cleaned.scores.append(candidate.scores[i])
    cleaned.margins = remap_margins(candidate.margins, new_index)
    cleaned.judged = remap_judged(candidate.judged, new_index)
    return cleaned


def clean(candidate: Candidate, max_chars: int) -> Candidate | Rejection:
    """Normalise one group's texts and ranks; a Rejection says why it cannot be kept."""
    if candidate.rejection is not None:
        return candidate.rejection
    too_long = _too_long(candidate, max_chars)
    if too_long is not None:
        return too_long
    prompt = _clean_prompt(candidate)
    if not prompt:
        return Rejection("empty_prompt", "prompt", "no text in the prompt")
    cleaned = _clean_completions(candidate)
    if isinstance(cleaned, Rejection):
        return cleaned
    cleaned.prompt, cleaned.ranks = prompt, renumber(cleaned.ranks)
    cleaned.refs, cleaned.notes, cleaned.location, cleaned.split_keys = (
        candidate.refs,
        candidate.notes,
        candidate.location,
        candidate.split_keys,
    )
    if len(cleaned.completions) < 2:
        return _why_too_few(cleaned, len(candidate.completions) + candidate.removed.total())
    return cleaned


def finalize(candidate: Candidate, tie_policy: TiePolicy) -> Candidate | Rejection:
    """Apply the tie policy; a group whose completions all tie is always quarantined."""
    if len(set(candidate.ranks)) < 2:
        return Rejection("all_tied", "ranks", f"all {len(candidate.ranks)} completions tie")
    tied = len(candidate.ranks) - len(set(candidate.ranks))
    if tied and tie_policy == "quarantine":
        return Rejection("tie", "ranks", f"ranks {candidate.ranks} contain ties")
    if tied and tie_policy == "drop":
        keep = [i for i, r in enumerate(candidate.ranks) if r not in candidate.ranks[:i]]
        candidate.removed["tie_dropped"] += tied
        candidate.completions = [candidate.completions[i] for i in keep]
        candidate.ranks = renumber([candidate.ranks[i] for i in keep])
        if candidate.scores is not None:
            candidate.scores = [candidate.scores[i] for i in keep]
        kept = {old: new for new, old in enumerate(keep)}
        candidate.margins = remap_margins(candidate.margins, kept)
        candidate.judged = remap_judged(candidate.judged, kept)
    return candidate


def prompt_text(prompt: list[dict[str, str]]) -> str:
    """A canonical string of a prompt (roles and contents)."""
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)


def _group_payload(candidate: Candidate) -> bytes:
    pairs = sorted(zip(candidate.completions, candidate.ranks, strict=True))
    payload = json.dumps([prompt_text(candidate.prompt), pairs], ensure_ascii=False)
    return payload.encode("utf-8", errors="surrogatepass")


def group_key(candidate: Candidate) -> str:
    """Same prompt, same completions with the same ranks (in any order) -> same key."""
    return hashlib.sha256(_group_payload(candidate)).hexdigest()


_BITS = 40  # positions and lines below 2**40 (a trillion records)


class Deduplicator:
    """Quarantines a group whose prompt, completions and ranks were seen before.

    Only a 16-byte hash of each group and where it was first seen (packed into one int) are
    held, never the texts, so millions of groups fit in a few hundred megabytes.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}
        self._files: dict[str, int] = {}

    def check(self, candidate: Candidate) -> Rejection | None:
        key = hashlib.sha256(_group_payload(candidate)).digest()[:16]
        if key in self._seen:
            return Rejection("duplicate_group", None, f"same group as {self._where(key)}")
        self._seen[key] = self._pack(candidate.refs[0]) if candidate.refs else -1
        return None

    def _pack(self, ref: RecordRef) -> int:
        file = self._files.setdefault(ref.file, len(self._files))
        line = 0 if ref.line is None else ref.line + 1
        return (file << 2 * _BITS) | (line << _BITS) | ref.position

    def _where(self, key: bytes) -> str:
        packed = self._seen[key]
        if packed < 0:
            return "?"
        files = list(self._files)
        line = (packed >> _BITS) & ((1 << _BITS) - 1)
        ref = RecordRef(
            files[packed >> 2 * _BITS],
            packed & ((1 << _BITS) - 1),
            None if line == 0 else line - 1,
        )
        return ref.where()
