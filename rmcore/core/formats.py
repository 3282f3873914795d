"""Typed options of each source format (`data.sources[].options` in params.yaml).

Each format has one options model; an unknown option name or a wrong type fails at params load
time with the key. This module depends only on pydantic and `rmcore.core.fieldpaths`, so that
`rmcore.core.config` can use it.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rmcore.core.fieldpaths import label_key, path_steps, path_values


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    PATHS: ClassVar[tuple[str, ...]] = ()  # options whose values are field paths

    @model_validator(mode="after")
    def _paths_parse(self) -> _Options:
        for name in self.PATHS:
            for path in path_values(getattr(self, name)):
                try:
                    path_steps(path)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self


Role = Literal["user", "assistant", "system"]


class _MessageOptions(_Options):
    """Where messages keep their role and content, and what their role names mean."""

    role_key: str = Field(
        "role", description="Key of a message's role (ShareGPT: `from`); a path in the message."
    )
    content_key: str = Field(
        "content", description="Key of a message's content (ShareGPT: `value`)."
    )
    roles: dict[str, Role] = Field(
        default_factory=dict,
        description="More role names (any case), e.g. {customer: user, agent: assistant}; "
        "human, prompter, gpt, bot, model, user, assistant and system are known already.",
    )

    @model_validator(mode="after")
    def _keys_parse(self) -> _MessageOptions:
        for name in ("role_key", "content_key"):
            try:
                path_steps(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self


class Extract(_Options):
    """Take the text out of a templated field: a regex, or start/end delimiters, then strip a
    fixed prefix or suffix."""

    regex: str | None = Field(
        None, description="Regex with a named group `text` (searched, `.` matches newlines)."
    )
    start: str | None = Field(None, description="The text starts after the first `start`.")
    end: str | None = Field(None, description="... and stops before the next `end`.")
    remove_prefix: str | None = Field(None, description="Removed from the start if there.")
    remove_suffix: str | None = Field(None, description="Removed from the end if there.")

    @model_validator(mode="after")
    def _one_way(self) -> Extract:
        if not any(v is not None for v in self.model_dump().values()):
            raise ValueError("give `regex`, `start`/`end`, `remove_prefix` or `remove_suffix`")
        if self.regex is not None and (self.start is not None or self.end is not None):
            raise ValueError("give `regex` or `start`/`end`, not both")
        if self.regex is not None:
            try:
                pattern = re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r}: {exc}") from None
            if "text" not in pattern.groupindex:
                raise ValueError(f"regex {self.regex!r} needs a named group: (?P<text>...)")
        return self


class _TextOptions(_MessageOptions):
    """Text taken out of templates, and the field that decides the split."""

    prompt_extract: Extract | None = Field(
        None, description="Take the prompt out of a template (see Text extraction)."
    )
    response_extract: Extract | None = Field(
        None, description="Take each response out of a template, or strip boilerplate."
    )
    split_key: str | None = Field(
        None,
        description="Field that decides the split with the prompt (e.g. an item id): groups "
        "sharing either land in one split.",
    )
    where: dict[str, Any] = Field(
        default_factory=dict,
        description="Keep only records whose fields have these values (one, or a list), e.g. "
        "{turn: 1}; others are quarantined as `excluded` (not counted against "
        "data.max_quarantined_fraction).",
    )


class HHRLHFOptions(_Options):
    """Anthropic hh-rlhf: two whole transcripts that share every turn but the last reply."""

    PATHS = ("chosen", "rejected")
    chosen: str = Field("chosen", description="Path of the preferred transcript.")
    rejected: str = Field("rejected", description="Path of the other transcript.")


class PreferenceOptions(_TextOptions):
    """TRL preference rows: explicit or implicit prompt, strings or lists of messages."""

    PATHS = ("prompt", "chosen", "rejected", "margin", "scores", "split_key", "where")
    prompt: str = Field(
        "prompt", description="Path of the prompt; absent in a row = implicit (shared prefix)."
    )
    chosen: str = Field("chosen", description="Path of the preferred completion.")
    rejected: str = Field("rejected", description="Path of the other completion.")
    margin: str | None = Field(
        None, description="Field with how strongly chosen is preferred (TRL's `margin`), kept."
    )
    scores: tuple[str, str] | None = Field(
        None,
        description="Fields with the chosen and the rejected scores, kept; equal scores tie, a "
        "chosen score below the rejected one is `invalid_value`.",
    )


class OasstOptions(_Options):
    """OpenAssistant message trees: each set of ranked sibling replies is one group."""

    include_synthetic: bool = Field(
        True, description="Keep messages marked synthetic; false quarantines/removes them."
    )


class _PromptOptions(_TextOptions):
    """Where the prompt is: text fields, a messages field, or the replies' shared history."""

    prompt: str | list[str] | None = Field(
        None,
        description="Prompt field, or several fields joined (empty ones skipped); neither this "
        "nor `messages`: the history the conversation responses share.",
    )
    messages: str | None = Field(None, description="Field with the prompt as a list of messages.")
    prompt_join: str = Field("\n\n", description="Separator between several prompt fields.")
    prompt_transcript: bool = Field(
        False,
        description="The prompt text is a `Human:` / `Assistant:` transcript (hh-rlhf, Nectar): "
        "split it into messages; a final empty `Assistant:` is dropped.",
    )

    @model_validator(mode="after")
    def _one_prompt(self) -> _PromptOptions:
        if self.prompt is not None and self.messages is not None:
            raise ValueError("give one of `prompt` (text fields) or `messages`, not both")
        return self


class MappingOptions(_PromptOptions):
    """Generic column mapping: name the fields; no code needed."""

    PATHS = (
        "prompt",
        "messages",
        "responses",
        "turn",
        "label",
        "ranks",
        "scores",
        "comparisons",
        "comparison_keys",
        "split_key",
        "where",
    )
    responses: str | list[str] = Field(
        ...,
        description="One field holding a list of responses (`r`, `r[*].text`), or >= 2 fields. "
        "A response is text, a message, or a conversation (its earlier messages are the prompt).",
    )
    turn: str | None = Field(
        None,
        description="Field with the judged turn (1-based) of conversation responses: each is cut "
        "after that assistant message (MT-Bench `turn`).",
    )
    label: str | list[str] | None = Field(
        None,
        description="Label field for two responses; several fields = votes (majority); with "
        "`pairs`, one list field holding a label per pair.",
    )
    label_first: list[Any] = Field([1], description="Label values meaning: first is better.")
    label_second: list[Any] = Field([2], description="Label values meaning: second is better.")
    label_tie: list[Any] = Field([0], description="Label values meaning: tie.")
    label_none: list[Any] = Field(
        [], description="Label values meaning: not compared (no pair; unlike a tie)."
    )
    label_scale: tuple[float, float] | None = Field(
        None,
        description="Continuous labels: [the value meaning first is better, the value meaning "
        "second is better], e.g. [1, 2] or [-3, 3]; the side of the centre gives the direction, "
        "the distance from it the pair's margin.",
    )
    tie_band: float = Field(
        0.0, ge=0, description="Continuous labels this close to the centre of the scale tie."
    )
    pairs: list[tuple[int, int]] | None = Field(
        None,
        description="The responses (i, j) each label of a list `label` compares, in order, "
        "e.g. [[0, 1], [0, 2], [1, 2]].",
    )
    comparisons: str | None = Field(
        None,
        description="Field with a list of comparisons, each [i, j, label] or an object with "
        "the `comparison_keys`.",
    )
    comparison_keys: tuple[str, str, str] = Field(
        ("i", "j", "label"),
        description="Paths in a comparison object to the index of the first response, of the "
        "second, and to the label.",
    )
    no_majority: Literal["tie", "quarantine"] = Field(
        "tie", description="Votes without a majority: a tie, or quarantine the record."
    )
    ranks: str | list[str] | None = Field(
        None, description="Ranks (0 = best): a list field or one field per response."
    )
    scores: str | list[str] | dict[str, float] | None = Field(
        None,
        description="Scores: a list field, one field per response, or several list fields and "
        "their weights, summed (`{r[*].helpfulness: 1, r[*].honesty: 0.5}`).",
    )
    higher_is_better: bool = Field(True, description="For scores: a higher score is better.")
    merge_pairs: bool = Field(
        False,
        description="Merge the pairs of one prompt into a ranking where they are consistent; "
        "cyclic or partial preferences stay separate pairs.",
    )
    merge_implied: bool = Field(
        True,
        description="Merge also where the ranking implies pairs no judge compared (a > b, "
        "b > c gives a > c); false keeps only direct comparisons, as separate pairs.",
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> MappingOptions:
        kinds = ("label", "ranks", "scores", "comparisons")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `label`, `ranks`, `scores` or `comparisons`")
        if isinstance(self.responses, list) and len(self.responses) < 2:
            raise ValueError("`responses` as a list of fields needs at least two fields")
        if self.pairs is not None and not isinstance(self.label, str):
            raise ValueError("`pairs` needs `label` as one field holding a list of labels")
        if (
            self.label is not None
            and self.pairs is None
            and isinstance(self.responses, list)
            and len(self.responses) != 2
        ):
            raise ValueError("`label` works with exactly two response fields (or give `pairs`)")
        if self.label_scale is not None and self.label_scale[0] == self.label_scale[1]:
            raise ValueError("`label_scale` needs two different ends")
        _distinct_labels(self)
        if isinstance(self.scores, dict) and not isinstance(self.responses, str):
            raise ValueError("weighted `scores` need `responses` as one list field")
        for key in ("ranks", "scores"):
            value = getattr(self, key)
            if value is None or isinstance(value, dict):
                continue
            if isinstance(value, list) != isinstance(self.responses, list):
                raise ValueError(
                    f"`{key}` and `responses` must both be single list fields or both "
                    "lists of field names"
                )
            if isinstance(value, list) and len(value) != len(self.responses):
                raise ValueError(f"`{key}` needs one field per response field")
        return self


def _distinct_labels(o: MappingOptions) -> None:
    seen: dict[str, str] = {}
    for name in ("label_first", "label_second", "label_tie", "label_none"):
        for value in getattr(o, name):
            other = seen.setdefault(label_key(value), name)
            if other != name:
                raise ValueError(
                    f"label value {value!r} is in both `{other}` and `{name}`; a value means "
                    "one outcome (e.g. `label_tie: []` where no value means a tie)"
                )


class LongOptions(_PromptOptions):
    """One row per completion, grouped into ranked groups by key fields; equal scores tie."""

    PATHS = (
        "prompt",
        "messages",
        "response",
        "group_by",
        "score",
        "rank",
        "split_key",
        "where",
    )
    response: str = Field(
        ..., description="Field with the row's completion: text, a message or a conversation."
    )
    group_by: str | list[str] | None = Field(
        None,
        description="Fields whose values together identify a group (e.g. `prompt_id`); null: "
        "rows with the same prompt form a group.",
    )
    score: str | dict[str, float] | None = Field(
        None,
        description="Field with the row's score, or several fields and their weights, summed "
        "(`{helpfulness: 1, correctness: 1}`).",
    )
    rank: str | None = Field(None, description="Field with the row's rank (0 or 1 = best).")
    higher_is_better: bool = Field(True, description="For scores: a higher score is better.")

    @model_validator(mode="after")
    def _score_or_rank(self) -> LongOptions:
        if (self.score is None) == (self.rank is None):
            raise ValueError("give exactly one of `score` or `rank`")
        return self


class WebGPTOptions(_Options):
    """openai/webgpt_comparisons rows (question, answer_0/1, score_0/1, quotes_0/1)."""

    include_quotes: bool = Field(
        False, description="Append the answer's quotes (web extracts) to the prompt."
    )


class SummarizeOptions(_Options):
    """openai/summarize_from_feedback `comparisons` rows (info, summaries, choice)."""


class SHPOptions(_Options):
    """stanfordnlp/SHP rows (history, human_ref_A/B, labels, score_A/B)."""

    min_score_ratio: float = Field(
        0.0, ge=0, description="Quarantine pairs whose score_ratio is below this (paper: 2)."
    )


OPTIONS: dict[str, type[_Options]] = {
    "hh_rlhf": HHRLHFOptions,
    "preference": PreferenceOptions,
    "oasst": OasstOptions,
    "mapping": MappingOptions,
    "long": LongOptions,
    "webgpt": WebGPTOptions,
    "summarize_from_feedback": SummarizeOptions,
    "shp": SHPOptions,
}
FORMATS = tuple(OPTIONS)


def parse_options(fmt: str, raw: dict[str, Any]) -> _Options:
    """Validate the options of one source; ValueError names the key and the format."""
    if fmt not in OPTIONS:
        raise ValueError(f"unknown format `{fmt}`; choose one of: {', '.join(FORMATS)}")
    try:
        return OPTIONS[fmt].model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            where = f"options.{key}" if key else "options"
            if err["type"] == "extra_forbidden":
                known = ", ".join(OPTIONS[fmt].model_fields)
                lines.append(f"{where}: unknown option for format `{fmt}` (known: {known})")
            else:
                lines.append(f"{where}: {err['msg']}")
        raise ValueError("; ".join(lines)) from None
