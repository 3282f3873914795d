"""The registered reward model as an MLflow pyfunc (models-from-code).

`rmcore.register.registry` logs this file with the saved Hugging Face directory as the artifact
`reward_model` and the rmcore package as code. Input: a DataFrame with `prompt` (a string, or a
list of `{role, content}` messages) and `response`. Output: one raw reward per row, or the
reward normalised with the validation mean and std saved by the train stage when called with
`params={"normalize": True}`. No hub access: the weights and tokenizer come from the artifact.

A param the model does not take (say `normalise`) is an error, not ignored: MLflow drops params
its signature does not name, with a warning, before `predict` sees them; this model turns that
warning into an error (`RefuseUnknownParams`). CSV input (`text/csv` when served) carries string
prompts; an empty response cell, which pandas reads as missing, is an empty response.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from rmcore.core.config import SCORE_BATCH_SIZE

PARAMS: dict[str, Any] = {"normalize": False, "batch_size": SCORE_BATCH_SIZE}
MLFLOW_PARAMS_LOGGER = "mlflow.models.utils"  # where MLflow warns of params it drops


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


def as_response(value: Any) -> str:
    """A response cell as text; missing (an empty CSV cell) is the empty response."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def unknown_params_error(names: list[str]) -> MlflowException:
    return MlflowException.invalid_parameter_value(
        f"unknown params {sorted(names)}: this model takes {sorted(PARAMS)}"
    )


def check_params(params: Mapping[str, Any] | None) -> None:
    """Refuse params this model does not take."""
    unknown = [str(name) for name in params or {} if name not in PARAMS]
    if unknown:
        raise unknown_params_error(unknown)


class RefuseUnknownParams(logging.Filter):
    """Raises on MLflow's "Unrecognized params [...] are ignored" warning when the supported
    params are this model's: a misspelt param would otherwise change nothing, silently."""

    rmpipe_params = tuple(sorted(PARAMS))

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        head, _, rest = text.partition(" are ignored for inference")
        if not head.startswith("Unrecognized params ") or not rest:
            return True
        supported = rest.partition("Supported params are: ")[2].split("}")[0] + "}"
        try:
            ours = set(ast.literal_eval(supported)) == set(PARAMS)
            names = list(ast.literal_eval(head.removeprefix("Unrecognized params ")))
        except (ValueError, SyntaxError):
            return True
        if ours:
            raise unknown_params_error([str(n) for n in names])
        return True

    @classmethod
    def install(cls) -> None:
        """Once per process, on the logger MLflow warns on."""
        logger = logging.getLogger(MLFLOW_PARAMS_LOGGER)
        if not any(getattr(f, "rmpipe_params", None) for f in logger.filters):
            logger.addFilter(cls())


class RewardModelPyfunc(PythonModel):
    """Scores (prompt, response) rows with the saved reward model."""

    def load_context(self, context: Any) -> None:
        from rmcore.model.reward_model import load_reward_model

        RefuseUnknownParams.install()
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

        check_params(params)
        params = params or {}
        missing = {"prompt", "response"} - set(model_input.columns)
        if missing:
            raise ValueError(f"input needs the columns prompt and response; missing {missing}")
        prompts = [as_prompt(p, i) for i, p in enumerate(model_input["prompt"])]
        responses = [as_response(r) for r in model_input["response"]]
        batch_size = int(params.get("batch_size") or SCORE_BATCH_SIZE)
        rewards = np.asarray(score_texts(self.model, prompts, responses, batch_size=batch_size))
        if params.get("normalize"):
            rewards = normalize_rewards(rewards, self.model.reward_stats)
        return rewards.astype(np.float64)  # [rows]


mlflow.models.set_model(RewardModelPyfunc())
