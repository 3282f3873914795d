"""Against a real `mlflow server` (SQLite, local artifacts, loopback): register over HTTP, load
the champion, serve it with `mlflow models serve --env-manager local`, score a file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from rmcore import stages
from rmcore.core.config import load_params
from rmcore.core.paths import Layout
from tests.eval_project import REPO_ROOT, REWARD_STATS, build_project, sqlite_store
from tests.servers import stop_group, wait_until_answering

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS: list[dict[str, Any]] = [
    {"prompt": "tell me about tea", "response": "great clear helpful answer"},
    {"prompt": [{"role": "user", "content": "and rain?"}], "response": "awful rude wrong"},
    {
        "prompt": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "music?"},
        ],
        "response": "kind useful words",
    },
]

CSV = f"prompt,response\n{ROWS[0]['prompt']},{ROWS[0]['response']}\n"  # string prompts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return {**env, **extra}


def _start(cmd: list[str], log: Path, url: str, env: dict[str, str], timeout: float) -> Any:
    """Start a server in its own process group; wait until `url` answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_until_answering(proc, url, timeout, " ".join(cmd[1:5]))
    except BaseException as exc:
        stop_group(proc)
        raise RuntimeError(f"{' '.join(cmd[1:5])}: {exc}\n{log.read_text()[-3000:]}") from exc
    return proc


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port with a SQLite store and local artifacts."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    cmd = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", sqlite_store(root)),
        *("--artifacts-destination", str(root / "artifacts")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    url = f"http://127.0.0.1:{port}"
    # No background job runners: they start ~7 extra processes and nothing here uses them.
    env = _env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = _start(cmd, root / "server.log", f"{url}/health", env, timeout=120)
    yield url
    stop_group(proc)


@pytest.fixture(scope="module")
def champion(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Layout, dict[str, Any]]]:
    """A tiny model evaluated and registered over HTTP ($MLFLOW_TRACKING_URI)."""
    root = tmp_path_factory.mktemp("served")
    layout = build_project(root)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        params = load_params(root / "params.yaml")
        stages.evaluate(params, layout)
        summary = stages.register(params, layout)
        yield layout, summary
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def _expected(layout: Layout) -> np.ndarray:
    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_texts

    model = load_reward_model(layout.model_dir)
    prompts = [r["prompt"] for r in ROWS]
    return np.asarray(score_texts(model, prompts, [r["response"] for r in ROWS]), np.float64)


def test_registered_over_http_and_champion_loads(
    champion: tuple[Layout, dict[str, Any]], mlflow_server: str
) -> None:
    import mlflow
    import pandas as pd

    layout, summary = champion
    assert summary["tracking_uri"] == mlflow_server
    assert summary["aliases"] == ["champion"] and summary["version"] == 1
    assert summary["source"].startswith("models:/")
    model = mlflow.pyfunc.load_model("models:/reward-model@champion")
    got = model.predict(pd.DataFrame(ROWS))
    np.testing.assert_allclose(got, _expected(layout), atol=1e-5)


def test_models_serve_answers_invocations(
    champion: tuple[Layout, dict[str, Any]], mlflow_server: str, tmp_path: Path
) -> None:
    layout, _ = champion
    port = _free_port()
    cmd = [
        *(sys.executable, "-m", "mlflow", "models", "serve"),
        *("-m", "models:/reward-model@champion", "--env-manager", "local"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    url = f"http://127.0.0.1:{port}"
    env = _env(MLFLOW_TRACKING_URI=mlflow_server)
    proc = _start(cmd, tmp_path / "serve.log", f"{url}/ping", env, timeout=120)
    try:
        raw = requests.post(f"{url}/invocations", json={"dataframe_records": ROWS}, timeout=60)
        assert raw.status_code == 200, raw.text
        body = {"dataframe_records": ROWS, "params": {"normalize": True}}
        normalised = requests.post(f"{url}/invocations", json=body, timeout=60)
        assert normalised.status_code == 200, normalised.text
        bad = requests.post(
            f"{url}/invocations", json={"dataframe_records": [{"prompt": 3}]}, timeout=60
        )
        assert bad.status_code >= 400
        misspelt = {"dataframe_records": ROWS, "params": {"normalise": True}}
        unknown = requests.post(f"{url}/invocations", json=misspelt, timeout=60)
        assert unknown.status_code == 400 and "normalise" in unknown.text, unknown.text
        csv = requests.post(
            f"{url}/invocations",
            data=CSV.encode(),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
        assert csv.status_code == 200, csv.text
    finally:
        stop_group(proc)
    expected = _expected(layout)
    np.testing.assert_allclose(_predictions(raw.json()), expected, atol=1e-5)
    np.testing.assert_allclose(_predictions(csv.json()), expected[:1], atol=1e-5)
    expected_norm = (expected - REWARD_STATS["mean"]) / REWARD_STATS["std"]
    np.testing.assert_allclose(_predictions(normalised.json()), expected_norm, atol=1e-5)


def _predictions(body: dict[str, Any]) -> list[float]:
    predictions = body["predictions"]
    return [p["reward"] if isinstance(p, dict) else p for p in predictions]


def test_score_cli_scores_a_file_with_the_champion(
    champion: tuple[Layout, dict[str, Any]], tmp_path: Path
) -> None:
    from rmcore.__main__ import main

    layout, _ = champion
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["score", "--input", str(source), "--output", str(out), "--root", str(layout.root)]
    assert main([*args, "--params", str(layout.root / "params.yaml")]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in scored] == [r["prompt"] for r in ROWS]
    np.testing.assert_allclose([r["reward"] for r in scored], _expected(layout), atol=1e-5)
    normalised = tmp_path / "norm.jsonl"
    args[4] = str(normalised)
    assert main([*args, "--normalize", "--params", str(layout.root / "params.yaml")]) == 0
    got = [json.loads(line)["reward_normalized"] for line in normalised.read_text().splitlines()]
    expected_norm = (_expected(layout) - REWARD_STATS["mean"]) / REWARD_STATS["std"]
    np.testing.assert_allclose(got, expected_norm, atol=1e-5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    assert main(["score", "--input", str(bad), "--output", str(out)]) == 2
    missing = ["--model-uri", "models:/reward-model@nonexistent"]
    assert main([*args, *missing, "--params", str(layout.root / "params.yaml")]) == 2
