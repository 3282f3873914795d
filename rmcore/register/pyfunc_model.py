"""The registered reward model as an MLflow pyfunc (models-from-code).

`rmcore.register.registry` logs this file with the saved Hugging Face directory as the artifact
`reward_model` and the rmcore package as code. Input: a DataFrame with `prompt` (a string, or a
list of `{role, content}` messages) and `response`. Output: one raw reward per row, or the
reward normalised with the validation mean and std saved by the train stage when called with
`params={"normalize": True}`. No hub access: the weights and tokenizer come from the artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from rmcore.core.config import SCORE_BATCH_SIZE


def as_prompt(value: Any, row: int) -> list[dict[str, str]]:
    """A prompt cell (string or messages) as messages; a clear error for anything else."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise ValueError(
        f"row {row}: `prompt` must be a string or a non-empty list of {{role, content}} "
        f"messages, got {type(value).__name__}"
    )


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


class RewardModelPyfunc(PythonModel):
    """Scores (prompt, response) rows with the saved reward model."""

    def load_context(self, context: Any) -> None:
        from rmcore.model.reward_model import load_reward_model

        config = getattr(context, "model_config", None) or {}
        self.model = load_reward_model(
            context.artifacts["reward_model"],
            trust_remote_code=bool(config.get("trust_remote_code", False)),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        from rmcore.evaluate.metrics import normalize_rewards
        from rmcore.model.scoring import score_texts

        params = params or {}
        missing = {"prompt", "response"} - set(model_input.columns)
        if missing:
            raise ValueError(f"input needs the columns prompt and response; missing {missing}")
        prompts = [as_prompt(p, i) for i, p in enumerate(model_input["prompt"])]
        responses = [str(r) for r in model_input["response"]]
        batch_size = int(params.get("batch_size") or SCORE_BATCH_SIZE)
        rewards = np.asarray(score_texts(self.model, prompts, responses, batch_size=batch_size))
        if params.get("normalize"):
            rewards = normalize_rewards(rewards, self.model.reward_stats)
        return rewards.astype(np.float64)  # [rows]


mlflow.models.set_model(RewardModelPyfunc())
