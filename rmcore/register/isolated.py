"""Scoring a registered model in a fresh interpreter, with the code it was registered with.

A registered reward model carries the rmcore code it was trained with (MLflow `code_paths`).
Loaded into a process that has already imported rmcore, its code would resolve against the
running rmcore, which may be laid out differently, and fail to import. A fresh interpreter
puts the model's own code first. The champion gate and `rmpipe score` load models that may
predate the running code, so they score this way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Runs in the child: nothing of rmcore is imported before the model loads its own.
_SCRIPT = """
import json, sys
import mlflow, numpy as np, pandas as pd
uri, rows, params, out = sys.argv[1:5]
frame = pd.read_json(rows, orient="records", lines=True, dtype=False)
rewards = mlflow.pyfunc.load_model(uri).predict(frame, params=json.loads(params) or None)
np.save(out, np.asarray(rewards, dtype=np.float64))
"""


class IsolatedScoringError(RuntimeError):
    """The model did not load or predict in its own interpreter; the message has its log."""


def predict(
    model_uri: str, frame: pd.DataFrame, tracking_uri: str, params: dict[str, Any] | None = None
) -> np.ndarray:
    """Rewards [rows] float64 of `frame` (prompt, response) from `model_uri`."""
    with tempfile.TemporaryDirectory(prefix="rmpipe-score-") as tmp:
        rows, out = Path(tmp) / "rows.jsonl", Path(tmp) / "rewards.npy"
        frame.to_json(rows, orient="records", lines=True, force_ascii=False)
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
        env["MLFLOW_REGISTRY_URI"] = tracking_uri
        argv = [sys.executable, "-c", _SCRIPT, model_uri, str(rows), json.dumps(params or {})]
        done = subprocess.run(
            [*argv, str(out)], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not out.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise IsolatedScoringError(
                f"{model_uri} failed to score (exit {done.returncode}):\n{tail}"
            )
        return np.load(out)
