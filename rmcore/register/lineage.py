"""What a pipeline run records in the tracking store, as plain data (no MLflow here).

Params come from the validated config with credentials redacted; metrics are the train curves
(plots/train_steps.csv, one point per step, at the time the step ended in training, from
metrics/train_step_times.csv) and every number of metrics/eval_details.json;
reports and dvc.lock are logged as text with secrets scrubbed; the normalised splits are run
inputs, each with its own file's md5 as digest and the DVC md5 of data/normalized as a tag;
tags link the run to its git commit, DVC data and Prefect flow run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rmcore.core.config import Params
from rmcore.core.paths import Layout, experiment_name, experiment_origin
from rmcore.register import redact

log = logging.getLogger(__name__)

DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "evaluation"}


PREFECT_RUN_ENV = "PREFECT__FLOW_RUN_ID"  # set by Prefect in a flow run's process


@dataclass(frozen=True)
class DatasetRecord:
    """One normalised split logged as a run input: its own file's md5 is its digest; the DVC
    md5 of data/normalized (all splits) links it to the DVC run."""

    split: str
    path: Path
    context: str
    dvc_md5: str | None
    md5: str = ""
    source: str = ""  # where the file is; "" for its absolute path


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
    # train step -> when it ended in training (ms since the epoch), for the train/ curves
    step_times: dict[int, int] = field(default_factory=dict)


def metric_name(*parts: str) -> str:
    """An MLflow-safe metric name (letters, digits, `_ - . : /` and spaces)."""
    return re.sub(r"[^\w\-. :/]", "_", "/".join(parts))


def readable_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """A metric path in words: length bucket `<=64` -> `length_le_64`, `65-128` ->
    `length_65_128`, `>256` -> `length_gt_256` (MLflow keys allow no `<`, `>` or `=`)."""
    if len(parts) < 2 or parts[0] != "length_buckets":
        return parts
    label = parts[1].replace("<=", "le_").replace(">", "gt_").replace("-", "_")
    return (f"length_{label}", *parts[2:])


def numeric_leaves(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """Every finite number in a nested JSON structure, with its slash-joined readable path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in numeric_leaves(v, (*prefix, str(k)))]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    name = metric_name(*readable_parts(prefix))
    return [(name, float(value))] if math.isfinite(value) else []


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (as DVC hashes a file)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_name(model_name: str, record: RunRecord, data_hash: str) -> str:
    """`<model>-<8 hex of the data>-<UTC time>`: the DVC md5 of data/normalized where
    dvc.lock records it, else the test data's hash."""
    data = record.tags.get("dvc.data_normalized.md5") or data_hash
    return f"{model_name}-{data[:8]}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def prefect_tags(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Prefect flow run this stage runs in, from the environment (rmcore imports no
    Prefect): its id, and its page where the Prefect UI or API URL is set."""
    env = os.environ if env is None else env
    run_id = env.get(PREFECT_RUN_ENV, "").strip()
    if not run_id:
        return {}
    tags = {"prefect.flow_run_id": run_id}
    ui = env.get("PREFECT_UI_URL") or env.get("PREFECT_API_URL", "").removesuffix("/")
    if ui:
        tags["prefect.flow_run_url"] = f"{ui.removesuffix('/api')}/runs/flow-run/{run_id}"
    return tags


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


def step_times(path: Path) -> dict[int, int]:
    """metrics/train_step_times.csv as step -> wall-clock milliseconds since the epoch."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    times = {}
    for line, row in enumerate(rows, start=2):
        try:
            times[int(float(row["step"]))] = round(float(row["wall_time"]) * 1000)
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{path}:{line}: expected integer `step` and `wall_time` (s since the epoch); "
                "run the train stage again (`dvc repro -f train`)"
            ) from None
    return times


def redacted_config(params: Params) -> dict[str, Any]:
    """The validated params with credential keys, secret values and URL passwords hidden."""
    config = redact.redact(params.model_dump(mode="json", by_alias=True))
    register = config.get("register", {})
    if register.get("tracking_uri"):
        register["tracking_uri"] = redact.redact_uri(register["tracking_uri"])
    return config


def _text(path: Path, secrets: list[str]) -> str:
    return redact.scrub_text(path.read_text(encoding="utf-8"), secrets)


def build_run_record(params: Params, layout: Layout) -> RunRecord:
    """Collect params, metrics, tags, files and inputs of the run rooted at `layout`."""
    secrets = redact.environment_secrets()
    config = redacted_config(params)
    record = RunRecord(
        params=redact.flatten(config),
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
        "reports/eval_details.json": layout.eval_details,
    }
    for name, path in reports.items():
        if path.is_file():
            record.texts[name] = _text(path, secrets)
        else:
            record.missing.append(str(path))
    if layout.eval_details.is_file():  # every number; eval.json holds a few of them
        evaluation = json.loads(layout.eval_details.read_text(encoding="utf-8"))
        record.metrics += [
            (redact.scrub_text(f"eval/{n}", secrets), v, 0) for n, v in numeric_leaves(evaluation)
        ]
    if layout.train_steps.is_file():
        record.metrics += train_curves(layout.train_steps)
    else:
        record.missing.append(str(layout.train_steps))
    if layout.train_step_times.is_file():
        record.step_times = step_times(layout.train_step_times)
    else:  # the curves are logged at the registration's time
        record.missing.append(str(layout.train_step_times))
    if layout.plots.is_dir():
        record.files.append((layout.plots, "plots"))
    _add_lineage(record, layout, secrets)
    if record.missing:
        log.warning("not in the MLflow run (files not found): %s", ", ".join(record.missing))
    return record


def _add_lineage(record: RunRecord, layout: Layout, secrets: list[str]) -> None:
    """git commit, dvc.lock (scrubbed) and the normalised splits with their DVC md5."""
    commit = git_commit(layout.root)
    if commit is not None:
        record.tags["git_commit"] = commit[0]
        record.tags["mlflow.source.git.commit"] = commit[0]  # shown by the MLflow UI
        record.tags["git_dirty"] = str(commit[1]).lower()
    record.tags.update(prefect_tags())
    if (experiment := experiment_name()) is not None:
        record.tags["dvc.experiment"] = experiment
        baseline = os.environ.get("DVC_EXP_BASELINE_REV", "").strip()
        if baseline:
            record.tags["dvc.experiment_baseline"] = baseline
    # DVC deletes an experiment's temporary copy after the run: its files are named by their
    # path in the project (the experiment's dvc.lock and md5s say which version), not by a
    # path that will not exist
    copy = experiment_origin(layout.root) is not None
    lock = read_dvc_lock(layout.root)
    if lock is None:
        record.missing.append(str(layout.root / "dvc.lock"))
    else:
        lock_text = yaml.safe_dump(redact.redact(lock, secrets), sort_keys=False)
        record.texts["dvc.lock"] = lock_text
    md5 = dvc_out_md5(lock, "ingest", "data/normalized")
    if md5 is not None:
        record.tags["dvc.data_normalized.md5"] = md5
    for split, context in DATASET_CONTEXTS.items():
        path = layout.split_file(split)
        if path.is_file():
            source = path.resolve().relative_to(layout.root.resolve()).as_posix() if copy else ""
            record.datasets.append(DatasetRecord(split, path, context, md5, file_md5(path), source))
        else:
            record.missing.append(str(path))


def read_dvc_lock(root: Path) -> dict[str, Any] | None:
    """dvc.lock as YAML (rmcore does not import dvc), or None where there is none."""
    path = root / "dvc.lock"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else None


def dvc_out_md5(lock: Mapping[str, Any] | None, stage: str, out_path: str) -> str | None:
    """The md5 DVC recorded for output `out_path` of `stage` (None if not recorded)."""
    if lock is None:
        return None
    for out in lock.get("stages", {}).get(stage, {}).get("outs", []) or []:
        if isinstance(out, Mapping) and out.get("path") == out_path:
            md5 = out.get("md5")
            return str(md5) if md5 else None
    return None


def git_commit(root: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the repository holding `root`, or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        log.warning("no git commit recorded for %s: %s", root, exc)
        return None
    return commit, bool(status.strip())
