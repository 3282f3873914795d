"""Typed options of each source format (`data.sources[].options` in params.yaml).

Each format has one options model; an unknown option name or a wrong type fails at params load
time with the key. This module only depends on pydantic so that `rmcore.core.config` can use it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HHRLHFOptions(_Options):
    """Anthropic hh-rlhf: two whole transcripts that share every turn but the last reply."""

    chosen: str = Field("chosen", description="Field with the preferred transcript.")
    rejected: str = Field("rejected", description="Field with the other transcript.")


class PreferenceOptions(_Options):
    """TRL preference rows: explicit or implicit prompt, strings or lists of messages."""

    prompt: str = Field(
        "prompt", description="Prompt field; absent in a row = implicit prompt (shared prefix)."
    )
    chosen: str = Field("chosen", description="Field with the preferred completion.")
    rejected: str = Field("rejected", description="Field with the other completion.")


class OasstOptions(_Options):
    """OpenAssistant message trees: each set of ranked sibling replies is one group."""

    include_synthetic: bool = Field(
        True, description="Keep messages marked synthetic; false quarantines/removes them."
    )


class MappingOptions(_Options):
    """Generic column mapping: name the fields; no code needed."""

    prompt: str | list[str] | None = Field(
        None, description="Prompt field, or several fields joined (empty ones skipped)."
    )
    messages: str | None = Field(
        None, description="Field with the prompt as a list of {role, content} messages."
    )
    prompt_join: str = Field("\n\n", description="Separator between several prompt fields.")
    responses: str | list[str] = Field(
        ..., description="One field holding a list of responses, or >= 2 response fields."
    )
    label: str | list[str] | None = Field(
        None, description="Label field for two responses; several fields = votes (majority)."
    )
    label_first: list[Any] = Field([1], description="Label values meaning: first is better.")
    label_second: list[Any] = Field([2], description="Label values meaning: second is better.")
    label_tie: list[Any] = Field([0], description="Label values meaning: tie.")
    no_majority: Literal["tie", "quarantine"] = Field(
        "tie", description="Votes without a majority: a tie, or quarantine the record."
    )
    ranks: str | list[str] | None = Field(
        None, description="Ranks (0 = best): a list field or one field per response."
    )
    scores: str | list[str] | None = Field(
        None, description="Scores: a list field or one field per response."
    )
    higher_is_better: bool = Field(True, description="For scores: a higher score is better.")
    merge_pairs: bool = Field(
        False,
        description="Merge the pairs of one prompt into a ranking where they are consistent; "
        "cyclic or partial preferences stay separate pairs.",
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> MappingOptions:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` (field names) or `messages`")
        given = [k for k in ("label", "ranks", "scores") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `label`, `ranks` or `scores`")
        if isinstance(self.responses, list) and len(self.responses) < 2:
            raise ValueError("`responses` as a list of fields needs at least two fields")
        if self.label is not None and isinstance(self.responses, list) and len(self.responses) != 2:
            raise ValueError("`label` works with exactly two response fields")
        for key in ("ranks", "scores"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, list) != isinstance(self.responses, list):
                raise ValueError(
                    f"`{key}` and `responses` must both be single list fields or both "
                    "lists of field names"
                )
            if isinstance(value, list) and len(value) != len(self.responses):
                raise ValueError(f"`{key}` needs one field per response field")
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
