"""The reward model as a reward function for RL loops (TRL's `reward_funcs`, or any caller
with prompts and completions).

It scores through `rmcore.model.scoring.score_texts`, the pipeline's one scoring path, so
string and conversational prompts alike get the rewards evaluation gave, truncation included.
(TRL given the model directory itself formats conversational prompts with the saved chat
template, exact for inputs within max_length, and string prompts as raw `prompt + completion`,
which is not the pipeline's format; see docs/registry.md.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rmcore.core.config import SCORE_BATCH_SIZE
from rmcore.model.reward_model import RewardModel, load_reward_model

Messages = list[dict[str, str]]


def completion_text(completion: str | Sequence[Mapping[str, Any]], row: int) -> str:
    """A completion as text: a string, or the content of its final assistant message."""
    if isinstance(completion, str):
        return completion
    if completion and completion[-1].get("role") == "assistant":
        return str(completion[-1].get("content") or "")
    raise ValueError(
        f"completion {row} must be a string or messages ending in an assistant message"
    )


def prompt_messages(prompt: str | Sequence[Mapping[str, Any]], row: int) -> Messages:
    """A prompt as the pipeline takes it: a string is one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in prompt]
    if not messages:
        raise ValueError(f"prompt {row} has no messages")
    return messages


class PipelineReward:
    """`reward(prompts, completions, **kwargs) -> list[float]`: the pipeline's rewards.

    `model`: a saved model directory (models/reward_model, or `artifacts/reward_model` of a
    downloaded registered model) or a loaded RewardModel. `normalize`: (reward - mean) / std
    with the validation statistics saved by the train stage.
    """

    def __init__(
        self,
        model: str | Path | RewardModel,
        normalize: bool = False,
        batch_size: int = SCORE_BATCH_SIZE,
        device: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if not isinstance(model, RewardModel):
            model = load_reward_model(model, device or "cpu", trust_remote_code)
        elif device is not None:
            model = model.to(device)
        self.model = model
        self.normalize = normalize
        self.batch_size = batch_size
        self.__name__ = "rmpipe_reward"  # TRL names reward functions after this

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        **kwargs: Any,
    ) -> list[float]:
        from rmcore.evaluate.metrics import normalize_rewards
        from rmcore.model.scoring import score_texts

        texts = [completion_text(c, i) for i, c in enumerate(completions)]
        rows = [prompt_messages(p, i) for i, p in enumerate(prompts)]
        rewards = np.asarray(score_texts(self.model, rows, texts, self.batch_size), np.float64)
        if self.normalize:
            rewards = normalize_rewards(rewards, self.model.reward_stats)
        return [float(r) for r in rewards]
