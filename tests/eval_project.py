"""A tiny project on disk for evaluation and registry tests.

Synthetic test data (fixed seed, so different models are compared on the same groups), a
tiny random-init BERT reward model, the tokenised test split, and the reports the earlier
stages would have written.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from rmcore.core.config import ModelConfig, Params, TokenizeConfig, parse_params
from rmcore.core.paths import Layout
from tests.tiny import make_tiny_bert, write_synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_SECRET = "cfg-secret-value-1234"  # under a credential key in the (fake) dvc.lock
ENV_SECRET = "env-secret-value-5678"  # put in $RMPIPE_TEST_TOKEN
REWARD_STATS = {"mean": 0.25, "std": 0.5}
DVC_MD5 = "0123456789abcdef0123456789abcdef.dir"  # of data/normalized in the fake dvc.lock
STEP_TIMES = {1: 1764669600.125, 2: 1764669601.5, 3: 1764669660.0}  # when each train step ended


def project_params(root: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "data": {
            "sources": [
                {
                    "path": "data/sample/preferences.jsonl",
                    "format": "mapping",
                    # A label that happens to contain a secret from the environment.
                    "name": f"sample-{ENV_SECRET}",
                    "options": {"prompt": "prompt", "responses": "completions", "ranks": "ranks"},
                }
            ]
        },
        "tokenize": {"max_length": 64},
        "model": {"name": str(root / "backbone")},
        "eval": {"batch_size": 4, "length_buckets": [16, 32, 48]},
        "register": {"model_name": "reward-model", "experiment": "tests"},
    }
    for section, values in (extra or {}).items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def write_params(root: Path, extra: dict[str, Any] | None = None) -> Params:
    raw = project_params(root, extra)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return parse_params(raw)


def build_project(root: Path, model_seed: int = 0, n_test: int = 24) -> Layout:
    """Data, tokenised test split and a saved tiny reward model under `root`."""
    from rmcore.model.reward_model import build_reward_model
    from rmcore.text.tokenize import save_tokenized, tokenize_table

    layout = Layout(root)
    write_synthetic(layout, n_train=8, n_val=8, n_test=n_test, seed=0)
    backbone = make_tiny_bert(root / "backbone", seed=model_seed)
    params = write_params(root)
    cfg = TokenizeConfig(**params.tokenize.model_dump())
    model = build_reward_model(ModelConfig(name=backbone), cfg)
    model.reward_stats = dict(REWARD_STATS)
    model.save_pretrained(layout.model_dir)
    table = pq.read_table(layout.split_file("test"))
    dataset, counts = tokenize_table(table, model.tokenizer, cfg)
    save_tokenized(dataset, layout, "test")
    write_reports(layout, counts)
    return layout


def write_reports(layout: Layout, counts: dict[str, Any]) -> None:
    """What ingest, tokenize and train leave behind, for the MLflow run to pick up."""
    layout.normalized.mkdir(parents=True, exist_ok=True)
    layout.ingest_report.write_text(json.dumps({"kept": 40, "quarantined": 0}), encoding="utf-8")
    layout.tokenize_report.parent.mkdir(parents=True, exist_ok=True)
    layout.tokenize_report.write_text(json.dumps(counts), encoding="utf-8")
    layout.train_metrics.write_text(json.dumps({"steps": 3}), encoding="utf-8")
    layout.train_steps.parent.mkdir(parents=True, exist_ok=True)
    layout.train_steps.write_text(
        "step,loss,accuracy,phase\n1,0.70,0.50,train\n2,0.65,0.60,train\n3,0.60,0.70,train\n",
        encoding="utf-8",
    )
    layout.train_step_times.write_text(
        "step,wall_time\n" + "".join(f"{s},{t}\n" for s, t in STEP_TIMES.items()), encoding="utf-8"
    )
    lock = {
        "schema": "2.0",
        "stages": {
            "ingest": {
                "cmd": "python -m rmcore ingest",
                "params": {"params.yaml": {"data.sources": [{"api_key": CONFIG_SECRET}]}},
                "outs": [
                    {"path": "data/normalized", "md5": "0123456789abcdef0123456789abcdef.dir"}
                ],
            }
        },
    }
    (layout.root / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")


_TEMPLATE_DB: list[Path] = []


def sqlite_store(directory: Path) -> str:
    """A fresh, fully migrated MLflow SQLite store in `directory`.

    Creating the schema runs MLflow's ~100 migrations (about 10 s here), so it is done once
    per test session and the resulting file copied.
    """
    if not _TEMPLATE_DB:
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
        _TEMPLATE_DB.append(template)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE_DB[0], directory / "mlflow.db")
    return f"sqlite:///{directory / 'mlflow.db'}"


def run_cli(root: Path, *args: str, env: dict[str, str], timeout: float = 120) -> Any:
    """`python -m rmcore ARGS` in `root` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rmcore", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
