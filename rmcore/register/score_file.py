"""`rmpipe score`: (prompt, response) rows of a JSONL file in, the same rows with `reward` out."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rmcore.core.atomic import write_text
from rmcore.core.config import DEFAULT_PARAMS, SCORE_BATCH_SIZE, RegisterConfig, load_params
from rmcore.core.paths import Layout

log = logging.getLogger(__name__)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSON objects with `prompt` (string or messages) and `response`, one per line."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "prompt" not in row or "response" not in row:
                raise ValueError(
                    f"{path}:{line_no}: expected an object with `prompt` and `response`"
                )
            if not isinstance(row["response"], str):
                raise ValueError(f"{path}:{line_no}: `response` must be a string")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows to score")
    return rows


def register_config(params_path: Path | None, root: Path) -> RegisterConfig:
    """The `register:` section of `params_path`, else of the project's params.yaml (under
    `root`, not the working directory); defaults where the project has none."""
    if params_path is None:
        params_path = root / DEFAULT_PARAMS
        if not params_path.is_file():
            return RegisterConfig()
    return load_params(params_path).registry


def require_store(uri: str) -> None:
    """Refuse a SQLite store that does not exist: reading it would create an empty one (and
    find nothing in it)."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///") :].split("?")[0])
    if not path.is_file():
        raise ValueError(
            f"no MLflow store at {path}, so no registered model there; point at the project "
            "that registered it (--root, --params, register.tracking_uri or "
            "$MLFLOW_TRACKING_URI), or run the register stage first"
        )


def score_rows(
    frame: pd.DataFrame,
    model_uri: str,
    cfg: RegisterConfig,
    layout: Layout,
    normalize: bool,
    batch_size: int,
) -> np.ndarray:
    """Rewards of (prompt, response) rows from a registered or logged pyfunc model, scored in
    a fresh interpreter with the model's own code."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from rmcore.register import isolated
    from rmcore.register.registry import connect, resolve_tracking_uri

    require_store(resolve_tracking_uri(cfg, layout))
    client = connect(cfg, layout)
    try:
        mlflow.models.get_model_info(model_uri)  # resolves the URI; runs none of its code
    except MlflowException as exc:
        raise ValueError(
            f"cannot load {model_uri}: {exc.message}; run the register stage first or pass "
            "--model-uri (and check $MLFLOW_TRACKING_URI / register.tracking_uri)"
        ) from exc
    params = {"normalize": normalize, "batch_size": batch_size}
    return isolated.predict(model_uri, frame, client.tracking_uri, params)


def score_file(
    input_path: Path,
    output: Path | None,
    model_uri: str | None,
    cfg: RegisterConfig,
    layout: Layout,
    normalize: bool = False,
    batch_size: int = SCORE_BATCH_SIZE,
) -> dict[str, Any]:
    """Score every row of `input_path`; write JSONL to `output` (stdout when None)."""
    from rmcore.register.pyfunc_model import as_prompt

    rows = read_rows(input_path)
    uri = model_uri or f"models:/{cfg.model_name}@{cfg.champion_alias}"
    frame = pd.DataFrame(
        {
            "prompt": [as_prompt(r["prompt"], i) for i, r in enumerate(rows)],
            "response": [r["response"] for r in rows],
        }
    )
    rewards = score_rows(frame, uri, cfg, layout, normalize, batch_size)
    key = "reward_normalized" if normalize else "reward"
    lines = [
        json.dumps({**row, key: float(r)}, ensure_ascii=False)
        for row, r in zip(rows, rewards, strict=True)
    ]
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
    log.info("scored %d rows with %s", len(rows), uri)
    return {"rows": len(rows), "model_uri": uri, "output": str(output) if output else "-"}
