"""What a pipeline run records in the tracking store, as plain data (no MLflow here).

Params come from the validated config with credentials redacted; metrics are the train curves
(plots/train_steps.csv, one point per step) and every number of metrics/eval.json; reports and
dvc.lock are logged as text with secrets scrubbed; the normalised splits are run inputs carrying
the DVC md5 of data/normalized.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rmcore import fingerprint
from rmcore.config import Params
from rmcore.paths import Layout

log = logging.getLogger(__name__)

DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "evaluation"}
TAG_MODEL_HASH = "rmpipe.model_hash"
TAG_DATA_HASH = "rmpipe.test_data_hash"


class RegistrationError(RuntimeError):
    """The model could not be registered safely; the message says why and what to do."""


@dataclass(frozen=True)
class Candidate:
    """What is being registered: the model and test-data hashes and the held-out accuracy."""

    model_hash: str
    data_hash: str
    accuracy: float

    def search_filter(self, name: str) -> str:
        return (
            f"name = '{name}' and tags.`{TAG_MODEL_HASH}` = '{self.model_hash}' "
            f"and tags.`{TAG_DATA_HASH}` = '{self.data_hash}'"
        )


def read_candidate(layout: Layout) -> Candidate:
    """Hashes and accuracy from metrics/eval.json, checked against the model directory."""
    if not layout.eval_metrics.is_file():
        raise RegistrationError(f"{layout.eval_metrics} not found; run the evaluate stage first")
    metrics = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
    identity = metrics.get("identity", {})
    model_hash = fingerprint.directory_hash(layout.model_dir)
    if identity.get("model_hash") != model_hash:
        raise RegistrationError(
            f"{layout.eval_metrics} was computed for another model than {layout.model_dir}; "
            "run the evaluate stage again"
        )
    accuracy = metrics.get("pairwise_accuracy")
    if not isinstance(accuracy, int | float):
        raise RegistrationError(
            f"{layout.eval_metrics} has no pairwise_accuracy (no test pairs?); "
            "check the test split and run evaluate again"
        )
    return Candidate(model_hash, str(identity["test_data_hash"]), float(accuracy))


@dataclass(frozen=True)
class DatasetRecord:
    """One normalised split logged as a run input."""

    split: str
    path: Path
    context: str
    dvc_md5: str | None


@dataclass
class RunRecord:
    """Everything the register stage logs for one pipeline run."""

    params: dict[str, str]
    metrics: list[tuple[str, float, int]]  # (name, value, step)
    tags: dict[str, str]
    files: list[tuple[Path, str]]  # (local file or folder, artifact folder)
    texts: dict[str, str]  # artifact file -> scrubbed content
    datasets: list[DatasetRecord]
    missing: list[str] = field(default_factory=list)


def metric_name(*parts: str) -> str:
    """An MLflow-safe metric name (letters, digits, `_ - . : /` and spaces)."""
    return re.sub(r"[^\w\-. :/]", "_", "/".join(parts))


def numeric_leaves(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """Every finite number in a nested JSON structure, with its slash-joined path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in numeric_leaves(v, (*prefix, str(k)))]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [(metric_name(*prefix), float(value))] if math.isfinite(value) else []


def train_curves(path: Path) -> list[tuple[str, float, int]]:
    """plots/train_steps.csv as (train/<column>, value, step) points."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points = []
    for line, row in enumerate(rows, start=2):
        try:
            step = int(float(row["step"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}:{line}: no integer `step` column value") from None
        for column, text in row.items():
            if column == "step" or text in (None, ""):
                continue
            try:
                points.append((metric_name("train", column), float(text), step))
            except ValueError:
                continue  # a text column (e.g. a phase name) is not a curve
    return points


def redacted_config(params: Params) -> dict[str, Any]:
    """The validated params with credential keys, secret values and URL passwords hidden."""
    config = fingerprint.redact(params.model_dump(mode="json", by_alias=True))
    register = config.get("register", {})
    if register.get("tracking_uri"):
        register["tracking_uri"] = fingerprint.redact_uri(register["tracking_uri"])
    return config


def _text(path: Path, secrets: list[str]) -> str:
    return fingerprint.scrub_text(path.read_text(encoding="utf-8"), secrets)


def build_run_record(params: Params, layout: Layout) -> RunRecord:
    """Collect params, metrics, tags, files and inputs of the run rooted at `layout`."""
    secrets = fingerprint.environment_secrets()
    config = redacted_config(params)
    record = RunRecord(
        params=fingerprint.flatten(config),
        metrics=[],
        tags={},
        files=[],
        texts={"params.json": json.dumps(config, indent=2)},
        datasets=[],
    )
    reports = {
        "reports/ingest.json": layout.ingest_report,
        "reports/tokenize.json": layout.tokenize_report,
        "reports/train.json": layout.train_metrics,
        "reports/eval.json": layout.eval_metrics,
    }
    for name, path in reports.items():
        if path.is_file():
            record.texts[name] = _text(path, secrets)
        else:
            record.missing.append(str(path))
    if layout.eval_metrics.is_file():
        evaluation = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
        record.metrics += [
            (fingerprint.scrub_text(f"eval/{n}", secrets), v, 0)
            for n, v in numeric_leaves(evaluation)
        ]
    if layout.train_steps.is_file():
        record.metrics += train_curves(layout.train_steps)
    else:
        record.missing.append(str(layout.train_steps))
    if layout.plots.is_dir():
        record.files.append((layout.plots, "plots"))
    _add_lineage(record, layout, secrets)
    if record.missing:
        log.warning("not in the MLflow run (files not found): %s", ", ".join(record.missing))
    return record


def _add_lineage(record: RunRecord, layout: Layout, secrets: list[str]) -> None:
    """git commit, dvc.lock (scrubbed) and the normalised splits with their DVC md5."""
    commit = fingerprint.git_commit(layout.root)
    if commit is not None:
        record.tags["git_commit"] = commit[0]
        record.tags["git_dirty"] = str(commit[1]).lower()
    lock = fingerprint.read_dvc_lock(layout.root)
    if lock is None:
        record.missing.append(str(layout.root / "dvc.lock"))
    else:
        lock_text = yaml.safe_dump(fingerprint.redact(lock, secrets), sort_keys=False)
        record.texts["dvc.lock"] = lock_text
    md5 = fingerprint.dvc_out_md5(lock, "ingest", "data/normalized")
    if md5 is not None:
        record.tags["dvc.data_normalized.md5"] = md5
    for split, context in DATASET_CONTEXTS.items():
        path = layout.split_file(split)
        if path.is_file():
            record.datasets.append(DatasetRecord(split, path, context, md5))
        else:
            record.missing.append(str(path))
