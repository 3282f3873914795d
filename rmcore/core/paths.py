"""Where each stage reads and writes, relative to the project root (as dvc.yaml lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"
