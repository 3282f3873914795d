"""What a registration is about: the trained model and its held-out accuracy, identified by
the hashes of the model directory and of the test groups (see `rmcore.core.hashing`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmcore.core import hashing
from rmcore.core.config import ConfigError
from rmcore.core.paths import Layout

TAG_MODEL_HASH = "rmpipe.model_hash"


TAG_DATA_HASH = "rmpipe.test_data_hash"


class RegistrationError(ConfigError, RuntimeError):
    """The model could not be registered safely; the message says why and what to do.

    A ConfigError, so the CLI prints the message alone and exits with status 2: running
    register again does not help until someone acts on it (and the flow does not retry it).
    """


@dataclass(frozen=True)
class ModelCandidate:
    """What is being registered: the model and test-data hashes and the held-out accuracy."""

    model_hash: str
    data_hash: str
    accuracy: float

    def search_filter(self, name: str) -> str:
        return (
            f"name = '{name}' and tags.`{TAG_MODEL_HASH}` = '{self.model_hash}' "
            f"and tags.`{TAG_DATA_HASH}` = '{self.data_hash}'"
        )


def _read_metrics(path: Path) -> dict[str, Any]:
    """One of the evaluate stage's JSON files; a clear error when missing or damaged."""
    if not path.is_file():
        raise RegistrationError(
            f"{path} not found; run the evaluate stage first (`dvc repro evaluate`)"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        metrics = exc
    if not isinstance(metrics, dict):
        raise RegistrationError(
            f"{path} is not the JSON the evaluate stage writes ({metrics}); run "
            "`dvc repro -f evaluate`"
        )
    return metrics


def read_candidate(layout: Layout) -> ModelCandidate:
    """The held-out accuracy from metrics/eval.json and what was evaluated from
    metrics/eval_details.json, checked against each other and the model directory."""
    headline = _read_metrics(layout.eval_metrics)
    details = _read_metrics(layout.eval_details)
    identity = details.get("identity")
    identity = identity if isinstance(identity, dict) else {}
    model_hash = hashing.directory_hash(layout.model_dir)
    if identity.get("model_hash") != model_hash:
        raise RegistrationError(
            f"{layout.eval_details} was computed for another model than {layout.model_dir}; "
            "run the evaluate stage again (`dvc repro -f evaluate`)"
        )
    accuracy = headline.get("pairwise_accuracy")
    if not isinstance(accuracy, int | float):
        raise RegistrationError(
            f"{layout.eval_metrics} has no pairwise_accuracy (no test pairs?); "
            "check the test split and run evaluate again (`dvc repro evaluate`)"
        )
    if details.get("pairwise_accuracy") != accuracy:
        raise RegistrationError(
            f"{layout.eval_metrics} and {layout.eval_details} come from different "
            "evaluations; run the evaluate stage again (`dvc repro -f evaluate`)"
        )
    return ModelCandidate(model_hash, str(identity.get("test_data_hash")), float(accuracy))
