"""The reward model: a Hugging Face backbone, a pooling rule and a scalar head.

Default pooling is what the backbone's `*ForSequenceClassification` class does itself, so a
saved model loads with plain `AutoModelForSequenceClassification.from_pretrained(dir)` and
gives the same scores:

- encoders (`cls`): the class's own head on the first token (BERT: pooler + classifier);
- decoders (`last`): the class's `score` layer on the last real token. The class finds that
  token as the rightmost one that is not `pad_token_id`; every sequence ends in EOS and the
  pad token is always distinct from EOS (one is added if needed), so both agree.

Other poolings (`mean`, `last` on an encoder) use the backbone's hidden states and a separate
linear head saved as `reward_head.safetensors`; they load through `load_reward_model` only.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rmcore.core.config import ConfigError, ModelConfig, TokenizeConfig
from rmcore.model import last_layer
from rmcore.model.backbone import (
    cast_to,
    encoder_head,
    is_decoder,
    packing_refusal,
    position_offset,
    positions_from_mask,
    varlen_refusal,
)
from rmcore.model.lora import (
    LoraState,
    apply_lora,
    layer_stack,
    merged_state_dict,
    save_adapter,
)
from rmcore.model.packing import PACKED_ATTENTION, SEGMENTS_KWARG, Segments
from rmcore.model.rl_config import write_rl_config
from rmcore.text import chat_template
from rmcore.text.tokenizer import load_tokenizer, refuse_pickle_weights, resolve_backbone

log = logging.getLogger(__name__)

META_FILE = "rmpipe.json"
HEAD_FILE = "reward_head.safetensors"


def default_pooling(decoder: bool) -> str:
    return "last" if decoder else "cls"


class RewardModel(nn.Module):
    """Backbone + pooling + scalar head; `forward` returns one float32 reward per sequence."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        pooling: str = "auto",
        tokenize_config: TokenizeConfig | None = None,
        reward_stats: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        self.trust_remote_code = trust_remote_code
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.decoder = is_decoder(backbone.config)
        self.pooling = default_pooling(self.decoder) if pooling == "auto" else pooling
        if self.decoder and self.pooling == "cls":
            raise ValueError(
                "model.pooling cls on a decoder scores the first token, which sees nothing of "
                "the completion; use last (default) or mean"
            )
        self.native = self.pooling == default_pooling(self.decoder)
        self.tokenize_config = tokenize_config or TokenizeConfig()
        self.reward_stats = reward_stats
        hidden = backbone.config.hidden_size
        # Non-native poolings need their own head; the class's head stays unused.
        self.reward_head = None if self.native else nn.Linear(hidden, 1)
        self.position_offset = position_offset(backbone)
        self.lora: LoraState | None = None  # set by `apply_lora`
        # the attention batches run through (set by `rmcore.model.layout.choose_layout`)
        self.attention: str = backbone.config._attn_implementation
        # the last layer computes the pooled tokens only (see `rmcore.model.last_layer`)
        self.pooled_last_layer = self.pooling != "mean" and last_layer.install(backbone)

    @property
    def config(self) -> Any:
        return self.backbone.config

    @property
    def _no_split_modules(self) -> list[str]:
        """The backbone's layer classes, which FSDP shards as units (the class's own list;
        else the class of its stack of layers)."""
        names = list(getattr(self.backbone, "_no_split_modules", None) or [])
        return sorted(names) if names else [type(layer_stack(self.backbone)[0]).__name__]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        score_index: torch.Tensor | None = None,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """input_ids [N, T], attention_mask [N, T] (or a 4-D mask with position_ids) ->
        rewards [N] float32.

        `score_index` [M] (flat indices into N*T positions) selects the scored tokens
        explicitly, for layouts where a row holds several sequences; rewards are then [M].
        `segments` marks a packed row [1, S] (see `rmcore.batching.collate`); it needs
        `enable_packing()` first. A decoder given a 2-D mask and no position ids numbers the
        real tokens of each row from 0, so left and right padding give the same rewards.
        """
        rows = self._pooled_rows(attention_mask, score_index, segments)
        with last_layer.pooled_rows(*rows) if rows is not None else contextlib.nullcontext():
            if segments is None and score_index is None and self.native and not self.decoder:
                out = self.backbone(
                    input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
                )
                return out.logits[:, 0].float()  # [N]
            hidden = self._hidden(input_ids, attention_mask, position_ids, segments)
        if rows is not None:  # [B', T', H]: the pooled tokens only, in pooling order
            pooled = hidden.reshape(-1, hidden.shape[-1])
        else:
            pooled = self._pool(hidden, attention_mask, score_index, segments)  # [M, H]
        return self._head(pooled)[:, 0].float()  # [M]

    def _hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None,
        segments: Segments | None,
    ) -> torch.Tensor:
        """The backbone's last hidden states [N, T, H] (of the pooled rows only, where the
        last layer is asked for those)."""
        extra: dict[str, Any] = {}
        backbone_mask: torch.Tensor | None = self._backbone_mask(attention_mask)
        if segments is not None:
            if self.backbone.config._attn_implementation == PACKED_ATTENTION:
                extra[SEGMENTS_KWARG] = segments
            elif self.decoder and segments.masks is None and not segments.causal_only:
                # No mask: position ids restarting at 0 mark the sequences, which
                # flash-attention's varlen kernel (or transformers' block mask) keeps apart.
                backbone_mask = None
            else:
                raise RuntimeError("a packed batch needs model.enable_packing() first")
        if self.decoder:  # no key/value cache: nothing is generated (and a cache hides packing)
            extra["use_cache"] = False
        if position_ids is None and self.decoder and attention_mask.dim() == 2:
            position_ids = positions_from_mask(attention_mask)
        elif position_ids is not None and self.position_offset:
            position_ids = position_ids + self.position_offset
        return self.backbone.base_model(
            input_ids=input_ids,
            attention_mask=backbone_mask,
            position_ids=position_ids,
            **extra,
        ).last_hidden_state

    def _pooled_rows(
        self,
        mask: torch.Tensor,
        score_index: torch.Tensor | None,
        segments: Segments | None,
    ) -> tuple[torch.Tensor, tuple[int, int]] | None:
        """The flat positions of the pooled tokens and the [B', T'] shape they take, where
        the last layer is to compute those only; None where it computes every token."""
        if not self.pooled_last_layer or last_layer.checkpointed(self.backbone):
            return None  # (recomputation in the backward pass would see every token)
        if score_index is not None:
            return score_index, (1, len(score_index))
        if segments is not None:
            index = self._segment_tokens(segments)
            return torch.tensor(index, device=mask.device), (1, len(index))
        if mask.dim() != 2:
            return None
        n, width = mask.shape
        starts = torch.arange(n, device=mask.device) * width
        if self.pooling == "cls":
            return starts, (n, 1)
        return starts + _last_positions(mask), (n, 1)

    def enable_varlen_packing(self) -> str | None:
        """Switch to flash-attention's varlen kernel for packed rows (see `backbone`)."""
        return varlen_refusal(self.backbone, self.decoder)

    def enable_packing(self) -> bool:
        """Switch the backbone to packed attention where this model can score packed rows."""
        return self.packing_refusal() is None

    def packing_refusal(self) -> str | None:
        """Why this model cannot score packed rows (None: it can, and now does)."""
        return packing_refusal(self.backbone, self.decoder, self.native)

    def _backbone_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Eager attention adds its mask to the scores: make a boolean 4-D mask additive."""
        eager = self.backbone.config._attn_implementation == "eager"
        if mask.dim() == 4 and mask.dtype == torch.bool and eager:
            dtype = next(self.backbone.parameters()).dtype
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(dtype).min
            )
        return mask

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        """[M, H] pooled states -> [M, 1] scores."""
        if self.reward_head is not None:
            return self.reward_head(cast_to(self.reward_head, pooled))
        if self.decoder:
            head = self._class_head()
            return head(cast_to(head, pooled))
        # The encoder class's own head, on pooled first tokens given as [M, 1, H] sequences.
        classifier = getattr(self.backbone, "classifier")  # noqa: B009 (a Module)
        if encoder_head(self.backbone) == "first":
            return classifier(cast_to(classifier, pooled[:, None]))  # [M, 1]
        pooler = getattr(self.backbone.base_model, "pooler")  # noqa: B009
        dropout = getattr(self.backbone, "dropout", None)
        x = pooler(cast_to(pooler, pooled[:, None]))  # [M, H]
        return classifier(dropout(x) if isinstance(dropout, nn.Module) else x)

    def _class_head(self) -> nn.Module:
        """The decoder class's own scalar head (`score` in HF decoder classes)."""
        head = getattr(self.backbone, "score", None)
        if not isinstance(head, nn.Module):
            raise TypeError(
                f"{type(self.backbone).__name__} has no `score` head; use model.pooling mean"
            )
        return head

    def _pool(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        score_index: torch.Tensor | None,
        segments: Segments | None,
    ) -> torch.Tensor:
        if score_index is not None:
            return hidden.reshape(-1, hidden.shape[-1])[score_index]  # [M, H]
        if segments is not None:
            return self._pool_segments(hidden[0], segments)
        if mask.dim() != 2:
            raise ValueError("a 4-D attention mask needs score_index to locate scored tokens")
        if self.pooling == "mean":
            weights = mask.to(hidden.dtype).unsqueeze(-1)  # [N, T, 1]
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.pooling == "cls":
            return hidden[:, 0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, _last_positions(mask)]

    def _pool_segments(self, hidden: torch.Tensor, segments: Segments) -> torch.Tensor:
        """hidden [S, H] of a packed row -> [N, H], one per sequence."""
        if self.pooling == "mean":
            return torch.stack([hidden[a:b].mean(0) for a, b in segments.bounds])
        return hidden[torch.tensor(self._segment_tokens(segments), device=hidden.device)]

    def _segment_tokens(self, segments: Segments) -> list[int]:
        """Row position of each packed sequence's pooled token: its first or last."""
        column = 0 if self.pooling == "cls" else 1
        return [bound[column] - column for bound in segments.bounds]

    def save_pretrained(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Hugging Face format (safetensors) + tokenizer + rmpipe.json (+ head if non-native).

        `state_dict` (this module's keys) overrides the live weights, e.g. one gathered from
        sharded processes.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        full = state_dict if state_dict is not None else self.state_dict()
        if self.lora is not None:
            if self.lora.save_adapter:
                save_adapter(directory / "adapter", full, self.lora)
            full = merged_state_dict(full, self.lora)
        backbone = {k[len("backbone.") :]: v for k, v in full.items() if k.startswith("backbone.")}
        self.backbone.save_pretrained(directory, state_dict=backbone, safe_serialization=True)
        # The input format goes with the model as its chat template (rmcore.text.chat_template).
        input_format = chat_template.save_tokenizer(self.tokenizer, self.tokenize_config, directory)
        if self.reward_head is not None:
            head = {
                k[len("reward_head.") :]: v.detach().contiguous().cpu()
                for k, v in full.items()
                if k.startswith("reward_head.")
            }
            save_file(head, str(directory / HEAD_FILE))
        meta = {
            "format": 1,
            "pooling": self.pooling,
            "native_pooling": self.native,
            "decoder": self.decoder,
            "trust_remote_code": self.trust_remote_code,
            "tokenize": self.tokenize_config.model_dump(),
            "reward_stats": self.reward_stats,
            chat_template.META_KEY: input_format,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_rl_config(directory, meta)


def _last_positions(mask: torch.Tensor) -> torch.Tensor:
    """[N, T] padding mask -> [N] rightmost attended position of each row (right or left
    padding)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(positions.dtype)).argmax(-1)


def set_reward_stats(directory: str | Path, stats: dict[str, Any]) -> None:
    """Record reward normalisation stats ({mean, std, ...}) in a saved model's rmpipe.json."""
    path = Path(directory) / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["reward_stats"] = stats
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    write_rl_config(directory, meta)


def build_reward_model(
    cfg: ModelConfig,
    tokenize_config: TokenizeConfig | None = None,
    dtype: torch.dtype = torch.float32,
) -> RewardModel:
    """A fresh reward model from a backbone name or path, its weights loaded in `dtype` (head
    initialised from torch's RNG: seed it first for reproducible runs)."""
    source = resolve_backbone(cfg.name)
    refuse_pickle_weights(source, "model.name")
    tokenizer = load_tokenizer(cfg.name, cfg.trust_remote_code)
    overrides: dict[str, Any] = {"num_labels": 1}
    if cfg.dropout is not None:
        overrides.update(_dropout_overrides(source, cfg))
    # The backbone's own pad id at load time: an added pad token lies beyond the embedding
    # until it is resized, and classes that build `nn.Embedding(..., padding_idx)` refuse it.
    with _quiet_load_report():
        backbone, loading = AutoModelForSequenceClassification.from_pretrained(
            source,
            use_safetensors=True,
            trust_remote_code=cfg.trust_remote_code,
            dtype=dtype,
            output_loading_info=True,
            **overrides,
        )
    _report_loading(backbone, loading, cfg.name)
    _set_pad_token(backbone, int(tokenizer.pad_token_id), len(tokenizer))
    model = RewardModel(
        backbone, tokenizer, cfg.pooling, tokenize_config, trust_remote_code=cfg.trust_remote_code
    )
    if cfg.lora.enabled:
        model.lora = apply_lora(backbone, cfg.lora, cfg.name, train_head=model.native)
    return model


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """transformers prints a table of missing keys at every load of a backbone with a new head:
    alarming for what is expected. `_report_loading` says it in one line instead."""
    loggers = [logging.getLogger(name) for name in _LOAD_REPORT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


_LOAD_REPORT_LOGGERS = (
    "transformers.modeling_utils",
    "transformers.utils.loading_report",
    "transformers.distributed.tensor_parallel",  # "layers not sharded": no tensor parallelism here
)


def _report_loading(backbone: PreTrainedModel, loading: dict[str, Any], name: str) -> None:
    """One line on what the checkpoint lacked: the new scoring head (expected), or weights of
    the backbone itself (a warning: the checkpoint does not fit the architecture)."""
    prefix = f"{backbone.base_model_prefix}."
    missing = sorted(loading.get("missing_keys") or ())
    inside = [key for key in missing if key.startswith(prefix)]
    head = [key for key in missing if not key.startswith(prefix)]
    if head:
        log.info("new scoring head on %s, initialised: %s", name, ", ".join(head))
    if inside:
        log.warning(
            "%s lacks %d backbone weights, initialised at random (e.g. %s): is it the "
            "checkpoint of this architecture?",
            name,
            len(inside),
            ", ".join(inside[:3]),
        )


def _set_pad_token(backbone: PreTrainedModel, pad_id: int, vocab: int) -> None:
    """Grow the embedding to the tokenizer's vocabulary and make `pad_id` the model's pad.

    The embedding's `padding_idx` follows, as a reload from the saved config would build it:
    the pad row then gets no gradient (it only ever sits at masked positions anyway).
    """
    weight = backbone.get_input_embeddings().weight
    if isinstance(weight, torch.Tensor) and vocab > weight.shape[0]:
        backbone.resize_token_embeddings(vocab, mean_resizing=False)
    backbone.config.pad_token_id = pad_id
    embedding = backbone.get_input_embeddings()
    if isinstance(embedding, nn.Embedding):
        embedding.padding_idx = pad_id


def _dropout_overrides(source: str, cfg: ModelConfig) -> dict[str, float]:
    """Every dropout-probability field the backbone's config has, set to cfg.dropout."""
    config = AutoConfig.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    keys = [
        key
        for key, value in config.to_dict().items()
        if isinstance(value, float) and ("dropout" in key or key.endswith("_pdrop"))
    ]
    return dict.fromkeys(keys, float(cfg.dropout or 0.0))


def load_reward_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> RewardModel:
    """Load a model written by `RewardModel.save_pretrained` (safetensors only, no pickle).

    A model trained with `trust_remote_code` runs Python code from its directory; that needs
    the caller's own `trust_remote_code=True`, never only the directory's say-so.
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: {path} is not a reward model saved by rmpipe "
            "(run the train stage, or point at models/reward_model)"
        )
    refuse_pickle_weights(path, "reward model")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("trust_remote_code", False) and not trust_remote_code:
        raise ConfigError(
            f"the reward model in {path} runs code from its directory (it was trained with "
            "model.trust_remote_code: true); load it only if you trust that code, by setting "
            "model.trust_remote_code: true (or trust_remote_code=True)"
        )
    backbone = AutoModelForSequenceClassification.from_pretrained(
        path, use_safetensors=True, dtype=dtype, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "right"
    chat_template.restore_backbone_template(tokenizer, meta)
    model = RewardModel(
        backbone,
        tokenizer,
        meta["pooling"],
        TokenizeConfig(**meta["tokenize"]),
        meta.get("reward_stats"),
        trust_remote_code=trust_remote_code,
    )
    if model.reward_head is not None:
        model.reward_head.load_state_dict(load_file(str(path / HEAD_FILE)))
    return model.to(device).eval()
