"""What a registration shows a reader of MLflow: the model card as the descriptions and a run
artifact, run names and tags that link the run to its code, data and flow, one digest per
dataset split, readable metric keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from rmcore import stages
from rmcore.core import hashing
from rmcore.core.config import load_params
from rmcore.core.paths import Layout
from tests.eval_project import build_project, sqlite_store, write_params

pytestmark = pytest.mark.slow


INGEST = {
    "sources": {"sample": {}},
    "totals": {"records_read": 41, "records_kept": 40, "records_quarantined": 1},
    "splits": {s: {"groups": n, "pairs_kept": 3 * n} for s, n in [("train", 8), ("test", 24)]},
}


def _write_reports(layout: Layout) -> None:
    """The ingest and tokenize reports in the shape their stages write."""
    layout.ingest_report.write_text(json.dumps(INGEST), encoding="utf-8")
    counts = json.loads(layout.tokenize_report.read_text(encoding="utf-8"))
    report = {"splits": {"test": counts}, "totals": counts}
    layout.tokenize_report.write_text(json.dumps(report), encoding="utf-8")


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tiny project evaluated and registered into a fresh SQLite store."""
    root = tmp_path_factory.mktemp("reads")
    store = sqlite_store(root / "store")
    layout = build_project(root)
    _write_reports(layout)
    write_params(root, {"register": {"tracking_uri": store}})
    params = load_params(root / "params.yaml")
    stages.evaluate(params, layout)
    model_hash = hashing.directory_hash(layout.model_dir)
    summary = stages.register(params, layout)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    yield {
        "layout": layout,
        "summary": summary,
        "client": client,
        "run": client.get_run(summary["run_id"]),
        "model_hash": model_hash,
        "store": store,
    }


def test_the_model_card_is_the_description_and_a_run_artifact(registered: dict[str, Any]) -> None:
    client, layout = registered["client"], registered["layout"]
    version = client.get_model_version("reward-model", str(registered["summary"]["version"]))
    card = version.description
    assert client.get_registered_model("reward-model").description == card  # the champion's
    eval_metrics = json.loads(layout.eval_metrics.read_text())
    tokenize = json.loads(layout.tokenize_report.read_text())
    for needle in [
        str(layout.root / "backbone"),  # the base model
        f"{eval_metrics['pairwise_accuracy']:.4f}",
        f"{eval_metrics['baselines']['longer_wins']['pairwise_accuracy']:.4f}",
        f"| test | 24 | 72 | {tokenize['splits']['test']['completions']:,} |",
        "Records read 41, kept 40, quarantined 1",  # from data/normalized/report.json
        "apply_chat_template",
        "add_special_tokens=False",
        "mlflow models serve",
        "text/csv",
        "PipelineReward",
        "User: <turn>",
    ]:
        assert needle in card, needle
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=registered["run"].info.run_id))
    assert (artifacts / "README.md").read_text(encoding="utf-8") == card
    # The card's transformers snippet: the model directory inside the registered model.
    from transformers import AutoTokenizer

    path = mlflow.artifacts.download_artifacts("models:/reward-model@champion")
    tok = AutoTokenizer.from_pretrained(Path(path) / "artifacts" / "reward_model")
    assert tok.chat_template and "Assistant:" in tok.chat_template
    # The register stage writes into MLflow only: the model directory DVC tracks is untouched.
    assert hashing.directory_hash(layout.model_dir) == registered["model_hash"]
    assert not (layout.model_dir / "README.md").exists()
