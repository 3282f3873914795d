"""Where a record came from, why it was rejected, and the errors that stop an ingest.

Every quarantine reason has a code, a category and a fix. `malformed` reasons are broken input
(bad JSON, wrong type, missing field, invalid score): `data.strict: true` turns them into errors.
`filtered` reasons are well-formed records that cannot train a reward model (ties only, one
completion, duplicates, ...): they are always quarantined and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from rmcore.core.config import ConfigError

Category = Literal["malformed", "filtered"]

# code -> (category, what to do)
REASONS: dict[str, tuple[Category, str]] = {
    "malformed_json": ("malformed", "repair the JSON of this line"),
    "not_utf8": ("malformed", "re-encode the file as UTF-8"),
    "not_an_object": ("malformed", "each record must be a JSON object / table row"),
    "wrong_field_count": ("malformed", "the CSV row has more or fewer cells than the header"),
    "missing_field": ("malformed", "add the field, or point the source options at its name"),
    "null_field": ("malformed", "give the field a value, or point the source options elsewhere"),
    "wrong_type": ("malformed", "give the field the expected type"),
    "invalid_value": ("malformed", "use one of the values the source options allow"),
    "invalid_score": ("malformed", "scores must be finite numbers (no NaN or infinity)"),
    "bad_transcript": (
        "malformed",
        "transcripts need `Human:`/`Assistant:` turns, ending in a reply",
    ),
    "prompt_mismatch": ("malformed", "chosen and rejected must share every turn but the last"),
    "histories_differ": (
        "filtered",
        "each reply continues its own earlier answers, so no prompt is shared; judge the first "
        "turn (options.turn) or keep single-turn records",
    ),
    "empty_prompt": ("filtered", "give the record a non-empty prompt"),
    "empty_completion": ("filtered", "completions must contain text; remove empty ones"),
    "duplicate_completion": ("filtered", "the completions are identical; nothing to compare"),
    "deleted": ("filtered", "the replies were deleted in the source"),
    "single_completion": ("filtered", "a group needs at least two completions to compare"),
    "unranked": ("filtered", "rank the replies, or drop the unranked ones from the source"),
    "synthetic_excluded": ("filtered", "set options.include_synthetic: true to keep them"),
    "conflicting_duplicate": (
        "filtered",
        "the same completion appears with different ranks; fix the labels",
    ),
    "text_too_long": ("filtered", "shorten the text, or raise data.max_chars"),
    "all_tied": ("filtered", "every completion ties, so the group gives no preference pair"),
    "tie": ("filtered", "data.tie_policy is `quarantine`; use keep or drop to use ties"),
    "duplicate_group": ("filtered", "the same prompt, completions and ranks were seen before"),
    "no_majority": ("filtered", "the votes have no majority; set options.no_majority: tie"),
    "not_compared": ("filtered", "the labels say the responses were not compared"),
    "below_min_score_ratio": ("filtered", "lower options.min_score_ratio to keep it"),
    "no_reply_groups": ("filtered", "the record has no replies to compare"),
    "excluded": ("filtered", "left out on purpose by options.where; change it to keep the record"),
    "no_match": (
        "malformed",
        "the text does not fit options.prompt_extract / response_extract; fix the pattern",
    ),
    "adapter_error": ("malformed", "the record does not fit the format; check format and options"),
}


def category(reason: str) -> Category:
    return REASONS[reason][0]


def fix_for(reason: str) -> str:
    return REASONS[reason][1]


class RecordRef(NamedTuple):
    """One input record: its file (as shown to users), position and start line (if known)."""

    file: str
    position: int  # 0-based position of the record in its file
    line: int | None = None

    def where(self) -> str:
        at = f"line {self.line}" if self.line is not None else f"record {self.position + 1}"
        return f"{self.file}, {at}"

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "record": self.position + 1}


@dataclass
class Rejection:
    """Why a record or group is quarantined."""

    reason: str
    field: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise KeyError(f"unknown quarantine reason {self.reason!r}")


class RecordError(Exception):
    """A record that cannot be converted; carries its quarantine reason (and raw text)."""

    def __init__(
        self, reason: str, field: str | None = None, detail: str = "", raw: str | None = None
    ) -> None:
        self.rejection = Rejection(reason, field, detail)
        self.raw = raw  # the unparsed input, for records that are not even JSON
        super().__init__(f"{reason}: {field or ''} {detail}".strip())


class IngestError(ConfigError):
    """Input that cannot be used at all: the message names the file and what to do."""


def strict_error(ref: RecordRef, rejection: Rejection) -> IngestError:
    field = f", field `{rejection.field}`" if rejection.field else ""
    return IngestError(
        f"{ref.where()}{field}: {rejection.reason}: {rejection.detail} "
        f"(data.strict is true; {fix_for(rejection.reason)}, or set data.strict: false "
        "to quarantine such records)"
    )


@dataclass
class Candidate:
    """A ranked group as an adapter produced it, before normalisation."""

    prompt: list[dict[str, str]]
    completions: list[str]
    ranks: list[int]
    scores: list[float] | None = None
    refs: list[RecordRef] = field(default_factory=list)
    removed: Counter[str] = field(default_factory=Counter)  # completions removed, by reason
    notes: Counter[str] = field(default_factory=Counter)  # events worth counting in the report
    rejection: Rejection | None = None  # decided by the adapter (e.g. a synthetic prompt)
    location: str | None = None  # where in the record the group is, if it has several
    group_key: str | None = None  # rows of one group (long format), before they are combined
    split_keys: list[str] = field(default_factory=list)  # besides the prompt (options.split_key)
    # per-pair strengths (better index, worse index, margin) where the source gives them
    margins: list[tuple[int, int, float]] | None = None
    # pairs (i, j), i < j, judged directly in a merged group; None: every pair was judged
    judged: set[tuple[int, int]] | None = None

    def implied_pairs(self) -> int:
        """Pairs of different rank that no judge compared (implied by transitivity)."""
        if self.judged is None:
            return 0
        k, ranks = len(self.ranks), self.ranks
        return sum(
            1
            for i in range(k)
            for j in range(i + 1, k)
            if ranks[i] != ranks[j] and (i, j) not in self.judged
        )
