"""Typed pipeline parameters, loaded from params.yaml.

One section per stage. Every field carries its help text. Unknown keys, wrong types and
impossible values fail at load time with the key, the file and what was expected, before any
stage does work.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from rmcore.core.formats import FORMATS, parse_options

DEFAULT_PARAMS = Path("params.yaml")


# Groups (or rows) per scoring forward pass, unless configured. On a 2-core CPU, passes of 8
# hh-rlhf groups scored 15% more pairs/s than passes of 32 in fp32 and 0-20% more in bf16
# (smaller passes keep activations in cache); on a GPU, raise it (eval.batch_size, the served
# model's batch_size).
SCORE_BATCH_SIZE = 8


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file, key and fix."""


class _Section(BaseModel):
    # No NaN or infinity in any float field: `epochs: .inf` would train for ever.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_number_mixup(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's `true` is no number and `1` is no boolean, though pydantic's lax mode takes
        both (`batch_size: true` would train with batches of 1)."""
        kinds = _kinds(cls.model_fields[str(info.field_name)].annotation)
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise ValueError("expected a number, not true/false")
        if kinds == {bool} and not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value


def _kinds(annotation: Any) -> set[Any]:
    """The types a field accepts, None left out: `int | None` -> {int}."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return {a for a in args or (annotation,) if a is not type(None)}


class SourceConfig(_Section):
    """One input dataset: a local file/glob (`path`) or a hub dataset (`hf`)."""

    path: str | None = Field(None, description="Local file or glob (jsonl/json/csv/parquet, .gz).")
    hf: str | None = Field(
        None, description="Hugging Face Hub dataset name, or a local dataset directory."
    )
    hf_split: str = Field("train", description="Split to read from a hub dataset.")
    hf_config: str | None = Field(None, description="Hub dataset configuration name.")
    format: str = Field(..., description=f"Adapter: one of {', '.join(FORMATS)}.")
    name: str | None = Field(None, description="Source label in reports (default: path or hf).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Adapter options (see docs/data.md)."
    )

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of `path` (local file/glob) or `hf` (hub dataset)")
        parse_options(self.format, self.options)  # unknown option or format -> names the key
        return self

    def parsed_options(self) -> BaseModel:
        """The options validated against the format's options model."""
        return parse_options(self.format, self.options)

    @property
    def label(self) -> str:
        return self.name or self.path or f"hf:{self.hf}"


class SplitConfig(_Section):
    train: float = Field(0.8, ge=0, le=1, description="Fraction of prompts for training.")
    validation: float = Field(0.1, ge=0, le=1, description="Fraction of prompts for validation.")
    test: float = Field(0.1, ge=0, le=1, description="Fraction of prompts for the test split.")
    seed: int = Field(0, description="Salt of the prompt hash that assigns splits.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must sum to 1, got {total:g}")
        return self


class DataConfig(_Section):
    sources: list[SourceConfig] = Field(..., min_length=1, description="Input datasets.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Leak-free split.")
    tie_policy: Literal["keep", "drop", "quarantine"] = Field(
        "keep",
        description="keep: tied completions stay (no pair between them); drop: keep one of each "
        "tied set; quarantine: groups with any tie are quarantined.",
    )
    strict: bool = Field(
        False,
        description="Stop at the first malformed record (bad JSON, type, field, score) with "
        "its file, line and field, instead of quarantining it.",
    )
    max_chars: int = Field(
        200_000, gt=0, description="Texts longer than this many characters are quarantined."
    )
    max_quarantined_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Stop the ingest (exit 2) when a source quarantines more than this fraction "
        "of its records, or keeps none; 1 stops only a source that keeps nothing.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> DataConfig:
        labels = [source.label for source in self.sources]
        doubles = sorted({label for label in labels if labels.count(label) > 1})
        if doubles:
            raise ValueError(f"source names must be unique; give `name` to: {', '.join(doubles)}")
        return self


class TokenizeConfig(_Section):
    max_length: int = Field(
        256,
        ge=8,
        description="Tokens per prompt+completion sequence. A prompt longer than "
        "max_prompt_length is trimmed (oldest turns, then tokens from the left); a completion "
        "is cut only where it does not fit beside its kept prompt.",
    )
    max_prompt_length: int | None = Field(
        None,
        ge=1,
        description="Tokens a prompt may keep; null: max_length // 2. The prompt's truncation "
        "depends on the prompt alone, so a response scored alone gets the tokens it had in "
        "its group. Must be less than max_length.",
    )
    template: Literal["auto", "chat", "plain"] = Field(
        "auto",
        description="auto: the tokenizer's chat template if it has one, else the plain "
        "`User: ... Assistant:` template.",
    )
    batch_size: int = Field(1000, ge=1, description="Records per batched tokenizer call.")
    num_proc: int | None = Field(
        None,
        ge=1,
        description="Processes that tokenise batches at once; null: one per CPU core the stage "
        "may use (never more than there are batches). Any value gives the same output.",
    )

    @model_validator(mode="after")
    def _prompt_leaves_room(self) -> TokenizeConfig:
        if self.max_prompt_length is not None and self.max_prompt_length >= self.max_length:
            raise ValueError(
                f"max_prompt_length ({self.max_prompt_length}) must be less than max_length "
                f"({self.max_length}), to leave room for the completion; lower it, or use null "
                "for max_length // 2"
            )
        return self

    @property
    def prompt_limit(self) -> int:
        """Tokens a prompt keeps at most: max_prompt_length, or max_length // 2 when null."""
        if self.max_prompt_length is None:
            return self.max_length // 2
        return self.max_prompt_length


class LoraConfig(_Section):
    """Low-rank adapters (PEFT LoRA) on the backbone; the score head is trained in full."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of every weight.")
    rank: int = Field(16, ge=1, description="Rank of each adapter.")
    alpha: int = Field(32, ge=1, description="Adapter scale: updates are scaled by alpha/rank.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapters' input.")
    target_modules: Literal["auto"] | list[str] = Field(
        "auto",
        description="Module names to adapt; auto: every linear projection of the backbone's "
        "layers (attention and MLP: q_proj ... down_proj, query_key_value, c_attn, ...).",
    )
    save_adapter: bool = Field(
        False,
        description="Also write the adapter alone (PEFT format, head included) to "
        "<model dir>/adapter; the model itself is always saved merged, as a plain "
        "transformers model.",
    )


class ModelConfig(_Section):
    name: str = Field("minilm-l6", description="Backbone: hub name, local path or minilm-l6.")
    pooling: Literal["auto", "last", "mean", "cls"] = Field(
        "auto",
        description="auto: what the backbone's ForSequenceClassification class does (cls for "
        "encoders, last token for decoders); other poolings add a separate head.",
    )
    trust_remote_code: bool = Field(False, description="Allow code from the model repository.")
    dropout: float | None = Field(
        0.0,
        ge=0,
        lt=1,
        description="Every dropout probability of the backbone. 0 (default, as TRL does) "
        "turns dropout off, which trains about 20% faster on CPU; null keeps the backbone's.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Dtype the weights are loaded and kept in. auto: bfloat16 for the frozen "
        "base of a LoRA run training in bf16 on a GPU, float32 otherwise (full fine-tuning "
        "keeps fp32 master weights under bf16 autocast). bfloat16 also for full fine-tuning "
        "halves weight, gradient and AdamW memory, at the cost of updates rounded to bf16.",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (PEFT).")


class LossConfig(_Section):
    beta: float = Field(0.001, ge=0, description="L2 penalty weight on rewards.")
    margin: float = Field(0.0, ge=0, description="Required reward margin between ranks.")
    data_margin_scale: float = Field(
        1.0,
        ge=0,
        description="Weight of the data's own per-pair margins (TRL's `margin` column, "
        "continuous labels), added to `margin` as TRL does; 0 ignores them.",
    )
    center_rewards: float = Field(0.0, ge=0, description="Weight of (sum of rewards)^2 per group.")


class TrainConfig(_Section):
    epochs: float = Field(1.0, gt=0, description="Passes over the training groups.")
    batch_size: int = Field(
        16,
        ge=1,
        description="Groups per micro-batch and process; a step takes batch_size * grad_accum * "
        "processes groups.",
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    lr: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Share of steps for linear warmup.")
    scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="LR decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the device supports it natively, else fp32."
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory.")
    length_grouping: bool = Field(
        False,
        description="Batch groups of similar length: fewer padded tokens, but less random "
        "batches (on hh-rlhf it cost held-out accuracy); packed batches need it little.",
    )
    packing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Padding-free batches: all sequences of a micro-batch in one row, attention "
        "kept within each (rmcore.model.packing). auto: on CPU where the backbone allows it.",
    )
    share_prefix: Literal["auto"] | bool = Field(
        "auto",
        description="One copy of a group's prompt, its k completions after it, each seeing the "
        "prompt and itself only. Exact for causal models (auto: on for decoders scored on the "
        "last token); refused for encoders, whose prompt tokens would see the completions.",
    )
    eval_every: int = Field(0, ge=0, description="Validate every N steps (0: end of epoch).")
    save_every: int = Field(25, ge=0, description="Checkpoint every N steps (0: end of epoch).")
    keep_best: bool = Field(True, description="Keep the checkpoint of best validation accuracy.")
    seed: int = Field(0, description="Seed of all random number generators.")
    max_steps: int = Field(0, ge=0, description="Stop after N optimiser steps (0: no limit).")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="Strategy when launched with several processes (torchrun/accelerate)."
    )


def default_length_buckets(max_length: int) -> list[int]:
    """Powers of two from 64 below max_length, then max_length: no bucket beyond what the
    tokenize stage lets a sequence reach."""
    edges = []
    edge = 64
    while edge < max_length:
        edges.append(edge)
        edge *= 2
    return [*edges, max_length]


class EvalConfig(_Section):
    batch_size: int = Field(SCORE_BATCH_SIZE, ge=1, description="Groups per evaluation batch.")
    length_buckets: list[int] | None = Field(
        None,
        description="Token-length bucket edges (inclusive, increasing); null: 64, 128, ... up "
        "to tokenize.max_length, which is the last edge.",
    )

    @field_validator("length_buckets")
    @classmethod
    def _increasing_positive(cls, edges: list[int] | None) -> list[int] | None:
        if edges is not None and (
            not edges or edges[0] <= 0 or any(a >= b for a, b in itertools.pairwise(edges))
        ):
            raise ValueError(
                "length_buckets must be a non-empty list of increasing positive token counts "
                "(e.g. [64, 128, 256]), or null for powers of two up to tokenize.max_length"
            )
        return edges


class RegisterConfig(_Section):
    model_name: str = Field("reward-model", min_length=1, description="Registered model name.")
    experiment: str = Field("reward-model", min_length=1, description="MLflow experiment.")
    tracking_uri: str | None = Field(
        None, description="MLflow URI; default $MLFLOW_TRACKING_URI, else mlflow.db in the project."
    )
    champion_alias: str = Field("champion", description="Alias of the production model.")
    challenger_alias: str = Field("challenger", description="Alias of a model that lost the gate.")
    in_experiments: Literal["register", "skip"] = Field(
        "register",
        description="In a DVC experiment (`dvc exp run`, also --temp or queued): register into "
        "the project's store (`register`), or register nothing (`skip`).",
    )
    experiment_aliases: bool = Field(
        False,
        description="In a DVC experiment, apply the champion gate (move the champion or "
        "challenger alias); false: the version is registered and no alias moves.",
    )


class Params(_Section):
    """All pipeline parameters; one attribute per stage (`registry` for `register`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    data: DataConfig
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    # `register` would shadow BaseModel.register; the YAML key stays `register`.
    registry: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")


def _describe(error: ErrorDetails, source: str) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "<top level>"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key `{key}`; remove it or check its spelling"
    if kind == "missing":
        return f"{source}: missing key `{key}`"
    got = error.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{source}: key `{key}`: {error['msg']}{got_text}"


def parse_params(raw: dict[str, Any], source: str = "<params>") -> Params:
    """Validate a params mapping; raise ConfigError naming each bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err, source) for err in exc.errors()]
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(lines)) from None


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """A params file's mapping, not yet validated."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"params file not found: {path}; pass --params PATH") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of stage sections at the top level")
    return raw


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate a params.yaml file."""
    return parse_params(read_params(path), str(path))
