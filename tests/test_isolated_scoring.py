"""A registered model brings its own rmcore code: one registered with another layout of the
package than the running one (say, by an older release) is scored with its own code in a fresh
interpreter, where loading it into this process fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from rmcore.register import isolated

MODEL_CODE = """
import mlflow
from mlflow.pyfunc import PythonModel
from rmcore.only_in_the_old_layout import reward


class Model(PythonModel):
    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1.0)
        rows = zip(model_input["prompt"], model_input["response"])
        return [scale * reward(p, r) for p, r in rows]


mlflow.models.set_model(Model())
"""


LOG_MODEL = """
import sys
import mlflow
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

uri, model_file, code = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
signature = ModelSignature(
    inputs=Schema([ColSpec(AnyType(), "prompt"), ColSpec("string", "response")]),
    outputs=Schema([ColSpec("double")]),
    params=ParamSchema([ParamSpec("scale", "double", 1.0)]),
)
with mlflow.start_run():
    mlflow.pyfunc.log_model(
        name="m", python_model=model_file, code_paths=[code], registered_model_name="old",
        signature=signature,
    )
"""


@pytest.fixture()
def old_model(tmp_path: Path) -> tuple[str, str]:
    """A registered pyfunc whose code imports a module today's rmcore does not have."""
    code = tmp_path / "code" / "rmcore"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "only_in_the_old_layout.py").write_text(
        "def reward(prompt, response):\n    return float(len(response))\n"
    )
    model_file = tmp_path / "model.py"
    model_file.write_text(MODEL_CODE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Logged from a fresh interpreter too: MLflow runs the model's code when logging it.
    done = subprocess.run(
        [sys.executable, "-c", LOG_MODEL, uri, str(model_file), str(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(code.parent)},  # logging runs it as well
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return "models:/old/1", uri


def test_a_model_with_other_rmcore_code_scores_in_its_own_interpreter(
    old_model: tuple[str, str],
) -> None:
    model_uri, tracking_uri = old_model
    frame = pd.DataFrame(
        {"prompt": ["q", [{"role": "user", "content": "hi"}]], "response": ["abc", "hello"]}
    )
    rewards = isolated.predict(model_uri, frame, tracking_uri, {"scale": 2.0})
    assert rewards.dtype == np.float64
    assert rewards.tolist() == [6.0, 10.0]
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with pytest.raises(Exception, match="only_in_the_old_layout"):
            mlflow.pyfunc.load_model(model_uri)  # this process already runs another rmcore
    finally:
        mlflow.set_tracking_uri(before)


def test_a_model_that_fails_reports_its_log(old_model: tuple[str, str]) -> None:
    _, tracking_uri = old_model
    with pytest.raises(isolated.IsolatedScoringError, match="models:/old/9"):
        isolated.predict(
            "models:/old/9", pd.DataFrame({"prompt": ["q"], "response": ["a"]}), tracking_uri
        )
