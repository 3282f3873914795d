"""The pipeline stages: the one definition of each.

Each stage takes the validated params and the project layout, reads the previous stage's
outputs, writes its own, and returns a JSON-able summary. DVC runs them through the CLI
(`python -m rmcore <stage>`); Prefect runs them through DVC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rmcore.core.atomic import write_json
from rmcore.core.config import Params
from rmcore.core.integrity import check_model_files
from rmcore.core.paths import Layout

Summary = dict[str, Any]

log = logging.getLogger(__name__)


def ingest(params: Params, layout: Layout) -> Summary:
    """Read every source, normalise to ranked groups, split by prompt, write Parquet + report."""
    from rmcore.data.ingest import run_ingest

    return run_ingest(params.data, layout)


def tokenize(params: Params, layout: Layout) -> Summary:
    """Format and tokenise every completion of every group; write Arrow datasets + report.
    Each split is streamed batch by batch over `tokenize.num_proc` processes."""
    from rmcore.data.io import iter_split_batches, split_rows
    from rmcore.data.schema import SPLITS
    from rmcore.text import tokenize as tok
    from rmcore.text.tokenizer import check_backbone, load_tokenizer

    check_backbone(params.model.name, params.model.trust_remote_code)
    tokenizer = load_tokenizer(params.model.name, params.model.trust_remote_code)
    tok.check_max_length(tokenizer, params.tokenize)
    splits: dict[str, Any] = {}
    for split in SPLITS:
        columns, size = list(tok.INPUT_COLUMNS), params.tokenize.batch_size
        batches = iter_split_batches(layout, split, columns, size)
        path = layout.tokenized / split
        groups = split_rows(layout, split)
        splits[split] = tok.tokenize_split(batches, groups, path, tokenizer, params.tokenize)
        log.info("tokenize %s: %s", split, splits[split])
    meta = tok.tokenizer_meta(tokenizer, params.model.name, params.tokenize)
    tok.write_meta(layout, meta)
    report = {**meta, "splits": splits, "totals": tok.totals(splits)}
    write_json(layout.tokenize_report, report)
    return report


def train(params: Params, layout: Layout) -> Summary:
    """Train the reward model on the tokenised train split; save it in Hugging Face format.
    One training per project at a time (rmcore/train/exclusive.py)."""
    from rmcore.train.exclusive import training_lock
    from rmcore.train.recipe import train as run_training

    with training_lock(layout.checkpoints):
        return run_training(params, layout)


def evaluate(params: Params, layout: Layout) -> Summary:
    """Score the held-out test split; write metrics/eval.json and plots."""
    from rmcore.evaluate.evaluation import run_evaluation

    check_model_files(layout.model_dir, "models/reward_model", "train")
    return run_evaluation(params.eval, layout, params.model.trust_remote_code)


def register(params: Params, layout: Layout) -> Summary:
    """Log the run to MLflow, register the model, move the champion alias if it wins."""
    from rmcore.register.registry import register_model

    check_model_files(layout.model_dir, "models/reward_model", "train")
    summary = register_model(params, layout)
    write_json(layout.registration, summary)
    return summary


STAGES: dict[str, Callable[[Params, Layout], Summary]] = {
    "ingest": ingest,
    "tokenize": tokenize,
    "train": train,
    "evaluate": evaluate,
    "register": register,
}
