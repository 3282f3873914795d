"""Where each stage reads and writes, relative to the project root (as dvc.yaml lists them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Set by DVC for the stage commands of `dvc exp run` (in the workspace, --temp or queued).
EXPERIMENT_NAME_ENV = "DVC_EXP_NAME"
# `dvc exp run --temp` and queued experiments run in a copy of the project at
# <project>/.dvc/tmp/exps/<tmpdir>/ (DVC's EXEC_TMP_DIR), deleted once the run is collected.
EXPERIMENT_COPIES = (".dvc", "tmp", "exps")


def experiment_origin(root: Path) -> Path | None:
    """The project a DVC experiment's temporary copy at `root` was made from; None when
    `root` is no such copy. From the path alone (rmcore does not import DVC); DVC also sets
    $DVC_ROOT to that project for the copy's stage commands."""
    for exps in root.resolve().parents:
        tmp = exps.parent
        dvc_dir = tmp.parent
        if (dvc_dir.name, tmp.name, exps.name) == EXPERIMENT_COPIES:
            return dvc_dir.parent
    return None


def experiment_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the DVC experiment this process runs in (`dvc exp run`), else None."""
    name = (os.environ if environ is None else environ).get(EXPERIMENT_NAME_ENV, "").strip()
    return name or None


@dataclass(frozen=True)
class Layout:
    """File layout of a pipeline run rooted at `root`."""

    root: Path = Path(".")

    # ingest
    @property
    def normalized(self) -> Path:
        return self.root / "data" / "normalized"

    def split_file(self, split: str) -> Path:
        return self.normalized / f"{split}.parquet"

    @property
    def ingest_report(self) -> Path:
        return self.normalized / "report.json"

    @property
    def quarantine(self) -> Path:
        return self.normalized / "quarantine.jsonl"

    # tokenize
    @property
    def tokenized(self) -> Path:
        return self.root / "data" / "tokenized"

    @property
    def tokenize_report(self) -> Path:
        return self.root / "metrics" / "tokenize.json"

    # train
    @property
    def model_dir(self) -> Path:
        return self.root / "models" / "reward_model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def train_metrics(self) -> Path:
        return self.root / "metrics" / "train.json"

    @property
    def train_steps(self) -> Path:
        return self.root / "plots" / "train_steps.csv"

    @property
    def train_step_times(self) -> Path:
        """When each step of plots/train_steps.csv ended (`step,wall_time`, s since the epoch)."""
        return self.root / "metrics" / "train_step_times.csv"

    # evaluate
    @property
    def eval_metrics(self) -> Path:
        return self.root / "metrics" / "eval.json"

    @property
    def eval_details(self) -> Path:
        return self.root / "metrics" / "eval_details.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def eval_plots(self) -> Path:
        return self.plots / "eval"

    @property
    def eval_calibration(self) -> Path:
        return self.plots / "eval_calibration.csv"

    @property
    def eval_length_buckets(self) -> Path:
        return self.plots / "eval_length_buckets.csv"

    # register
    @property
    def registration(self) -> Path:
        return self.root / "metrics" / "registration.json"

    @property
    def store_root(self) -> Path:
        """Where the project's MLflow store lives: the project itself; for a DVC experiment's
        temporary copy, the project it was copied from (the copy is deleted after the run)."""
        return experiment_origin(self.root) or self.root

    @property
    def mlflow_db(self) -> Path:
        return self.store_root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.store_root / "mlartifacts"
