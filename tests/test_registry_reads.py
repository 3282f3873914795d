"""What a registration shows a reader of MLflow: the model card as the descriptions and a run
artifact, run names and tags that link the run to its code, data and flow, one digest per
dataset split, readable metric keys."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rmcore import stages
from rmcore.core import hashing
from rmcore.core.config import load_params
from rmcore.core.paths import Layout
from rmcore.register.lineage import file_md5
from tests.eval_project import (
    DVC_MD5,
    REPO_ROOT,
    build_project,
    run_cli,
    sqlite_store,
    write_params,
)

pytestmark = pytest.mark.slow


FLOW_RUN = "0b5e3c1a-7d7e-4f0e-9d1c-2f6f3a9b8c7d"
PREFECT_API = "http://127.0.0.1:4200/api"
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
    commit = _git_commit(root)
    params = load_params(root / "params.yaml")
    stages.evaluate(params, layout)
    model_hash = hashing.directory_hash(layout.model_dir)
    # mlflow.set_tracking_uri/set_registry_uri (register, and the tests here) also export
    # $MLFLOW_TRACKING_URI/$MLFLOW_REGISTRY_URI: put both back for the modules after this one.
    before, uri = dict(os.environ), mlflow.get_tracking_uri()
    os.environ.update({"PREFECT__FLOW_RUN_ID": FLOW_RUN, "PREFECT_API_URL": PREFECT_API})
    try:
        summary = stages.register(params, layout)
        client = MlflowClient(tracking_uri=store, registry_uri=store)
        yield {
            "layout": layout,
            "summary": summary,
            "client": client,
            "run": client.get_run(summary["run_id"]),
            "model_hash": model_hash,
            "store": store,
            "commit": commit,
        }
    finally:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri("")
        os.environ.clear()
        os.environ.update(before)


def _git_commit(root: Path) -> str:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


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


def test_each_split_is_an_input_with_its_own_digest(registered: dict[str, Any]) -> None:
    layout = registered["layout"]
    inputs = {d.dataset.name: d for d in registered["run"].inputs.dataset_inputs}
    assert set(inputs) == {"normalized/train", "normalized/validation", "normalized/test"}
    for split in ("train", "validation", "test"):
        logged = inputs[f"normalized/{split}"]
        assert logged.dataset.digest == file_md5(layout.split_file(split))
        tags = {t.key: t.value for t in logged.tags}
        assert tags["dvc_md5"] == DVC_MD5 and tags["mlflow.data.context"]
    assert len({d.dataset.digest for d in inputs.values()}) == 3


def test_the_run_is_named_and_linked_to_code_data_and_flow(registered: dict[str, Any]) -> None:
    run = registered["run"]
    assert re.fullmatch(r"reward-model-01234567-\d{8}-\d{6}", run.info.run_name)
    tags = run.data.tags
    assert tags["git_commit"] == tags["mlflow.source.git.commit"] == registered["commit"]
    assert tags["dvc.data_normalized.md5"] == DVC_MD5
    assert tags["prefect.flow_run_id"] == FLOW_RUN
    assert tags["prefect.flow_run_url"] == f"http://127.0.0.1:4200/runs/flow-run/{FLOW_RUN}"


def test_metric_keys_read_as_words(registered: dict[str, Any]) -> None:
    keys = set(registered["run"].data.metrics)
    buckets = ("length_le_16", "length_17_32", "length_33_48", "length_gt_48")
    assert {f"eval/{bucket}/n_pairs" for bucket in buckets} <= keys
    assert any(f"eval/{bucket}/accuracy" in keys for bucket in buckets)  # null where no pairs
    assert "eval/pairwise_accuracy" in keys and "eval/per_source/synthetic/n_pairs" in keys
    assert not [k for k in keys if "__" in k or "length_buckets" in k]


def _load_champion(registered: dict[str, Any]) -> Any:
    mlflow.set_tracking_uri(registered["store"])
    mlflow.set_registry_uri(registered["store"])
    return mlflow.pyfunc.load_model("models:/reward-model@champion")


def test_pyfunc_scores_csv_rows_as_the_server_parses_them(registered: dict[str, Any]) -> None:
    """`mlflow models serve` takes text/csv: string prompts, an empty cell an empty response."""
    from mlflow.pyfunc.scoring_server import parse_csv_input

    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_texts

    model = _load_champion(registered)
    csv = 'prompt,response\ntell me about tea,great clear answer\n"rain, again?",\n'
    frame = parse_csv_input(io.StringIO(csv), schema=model.metadata.get_input_schema())
    prompts, responses = ["tell me about tea", "rain, again?"], ["great clear answer", ""]
    expected = score_texts(load_reward_model(registered["layout"].model_dir), prompts, responses)
    np.testing.assert_allclose(model.predict(frame), expected, atol=1e-5)


def test_an_unknown_param_is_an_error(registered: dict[str, Any]) -> None:
    from mlflow.exceptions import MlflowException

    model = _load_champion(registered)
    frame = pd.DataFrame({"prompt": ["tea?"], "response": ["great"]})
    with pytest.raises(MlflowException, match="normalise"):
        model.predict(frame, params={"normalise": True})
    with pytest.raises(MlflowException, match="normalise"):
        model.predict(frame, params={"normalize": True, "normalise": True})
    assert model.predict(frame, params={"batch_size": 2}).shape == (1,)  # known params pass


ROWS: list[dict[str, Any]] = [
    {"prompt": "tell me about tea", "response": "great clear answer"},
    {"prompt": [{"role": "user", "content": "rain?"}], "response": "awful rude"},
]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _expected(registered: dict[str, Any]) -> np.ndarray:
    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_texts

    model = load_reward_model(registered["layout"].model_dir)
    return score_texts(model, [r["prompt"] for r in ROWS], [r["response"] for r in ROWS])


def test_score_works_from_any_directory_and_creates_no_store(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    elsewhere, empty = tmp_path / "elsewhere", tmp_path / "empty"
    elsewhere.mkdir()
    empty.mkdir()
    rows = elsewhere / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    root = str(registered["layout"].root)
    done = run_cli(elsewhere, "score", "--input", "rows.jsonl", "--root", root, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    rewards = [json.loads(line)["reward"] for line in done.stdout.splitlines()]
    np.testing.assert_allclose(rewards, _expected(registered), atol=1e-5)
    refused = run_cli(
        elsewhere, "score", "--input", "rows.jsonl", "--root", str(empty), env=_clean_env()
    )
    assert refused.returncode == 2
    assert f"no MLflow store at {empty / 'mlflow.db'}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not list(elsewhere.glob("mlflow.db*")) and not list(empty.iterdir())


def test_the_docs_pyfunc_snippet_works_from_any_directory(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    text = (REPO_ROOT / "docs" / "registry.md").read_text(encoding="utf-8")
    section = text.split("### Python (pyfunc)", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    store = registered["store"].removeprefix("sqlite:///")
    assert "/path/to/project/mlflow.db" in snippet
    code = snippet.replace("/path/to/project/mlflow.db", store)
    code = code.replace("model.predict(rows)  #", "print(model.predict(rows).tolist())  #")
    code = code.replace('"How do I boil an egg?"', repr(ROWS[0]["prompt"]))
    code = code.replace('"Simmer it 8 minutes."', repr(ROWS[0]["response"]))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(
        json.loads(done.stdout.splitlines()[0]), _expected(registered)[:1], atol=1e-5
    )
    assert not list(tmp_path.glob("mlflow.db*"))
