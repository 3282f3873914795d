"""The pipeline stages: the one definition of each.

Each stage takes the validated params and the project layout, reads the previous stage's
outputs, writes its own, and returns a JSON-able summary. DVC runs them through the CLI
(`python -m rmcore <stage>`); Prefect runs them through DVC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rmcore.config import Params
from rmcore.paths import Layout

Summary = dict[str, Any]


def ingest(params: Params, layout: Layout) -> Summary:
    """Read every source, normalise to ranked groups, split by prompt, write Parquet + report."""
    from rmcore.data.ingest import run_ingest

    return run_ingest(params.data, layout)


def tokenize(params: Params, layout: Layout) -> Summary:
    """Format and tokenise every completion of every group; write Arrow datasets + report."""
    raise NotImplementedError("tokenize stage")


def train(params: Params, layout: Layout) -> Summary:
    """Train the reward model on the tokenised train split; save it in Hugging Face format."""
    raise NotImplementedError("train stage")


def evaluate(params: Params, layout: Layout) -> Summary:
    """Score the held-out test split; write metrics/eval.json and plots."""
    from rmcore.evaluate import run_evaluation

    return run_evaluation(params.eval, layout)


def register(params: Params, layout: Layout) -> Summary:
    """Log the run to MLflow, register the model, move the champion alias if it wins."""
    import json

    from rmcore.registry import register_model

    summary = register_model(params, layout)
    layout.registration.parent.mkdir(parents=True, exist_ok=True)
    layout.registration.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


STAGES: dict[str, Callable[[Params, Layout], Summary]] = {
    "ingest": ingest,
    "tokenize": tokenize,
    "train": train,
    "evaluate": evaluate,
    "register": register,
}
