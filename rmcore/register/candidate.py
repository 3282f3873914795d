"""What a registration is about: the trained model and its held-out accuracy, identified by
the hashes of the model directory and of the test groups (see `rmcore.core.hashing`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

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


def read_candidate(layout: Layout) -> ModelCandidate:
    """Hashes and accuracy from metrics/eval.json, checked against the model directory."""
    if not layout.eval_metrics.is_file():
        raise RegistrationError(
            f"{layout.eval_metrics} not found; run the evaluate stage first (`dvc repro evaluate`)"
        )
    try:
        metrics = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
        identity = dict(metrics.get("identity") or {})
    except (ValueError, AttributeError, TypeError) as exc:
        raise RegistrationError(
            f"{layout.eval_metrics} is not the JSON the evaluate stage writes ({exc}); run "
            "`dvc repro -f evaluate`"
        ) from exc
    model_hash = hashing.directory_hash(layout.model_dir)
    if identity.get("model_hash") != model_hash:
        raise RegistrationError(
            f"{layout.eval_metrics} was computed for another model than {layout.model_dir}; "
            "run the evaluate stage again (`dvc repro -f evaluate`)"
        )
    accuracy = metrics.get("pairwise_accuracy")
    if not isinstance(accuracy, int | float):
        raise RegistrationError(
            f"{layout.eval_metrics} has no pairwise_accuracy (no test pairs?); "
            "check the test split and run evaluate again"
        )
    return ModelCandidate(model_hash, str(identity["test_data_hash"]), float(accuracy))
