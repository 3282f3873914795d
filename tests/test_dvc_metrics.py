"""`dvc metrics show` stays readable: the evaluation's headline is a few numbers, the details
are a plain output beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rmcore.core.config import EvalConfig
from tests.conftest import REPO_ROOT
from tests.eval_project import build_project

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

MAX_NUMBERS = 20


def _numbers(value: Any) -> int:
    """The leaves `dvc metrics show` prints as numbers."""
    if isinstance(value, dict):
        return sum(_numbers(v) for v in value.values())
    return int(isinstance(value, int | float) and not isinstance(value, bool))


def test_dvc_metrics_show_prints_a_headline(tmp_path: Path) -> None:
    from dvc.repo import Repo

    from rmcore.evaluate.evaluation import run_evaluation

    layout = build_project(tmp_path)  # with the tokenize and train reports
    run_evaluation(EvalConfig(batch_size=4, length_buckets=[16, 32, 48]), layout)
    shutil.copyfile(REPO_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    Repo.init(str(tmp_path), no_scm=True)
    with Repo(str(tmp_path)) as repo:
        shown = repo.metrics.show()
    files = {name: entry["data"] for name, entry in shown[""]["data"].items()}
    assert set(files) == {"metrics/eval.json", "metrics/train.json"}
    eval_columns = _numbers(files["metrics/eval.json"])
    assert 5 <= eval_columns <= MAX_NUMBERS, files["metrics/eval.json"]
    assert all(_numbers(data) <= MAX_NUMBERS for data in files.values())
    details = json.loads(layout.eval_details.read_text(encoding="utf-8"))
    assert _numbers(details) > 2 * MAX_NUMBERS  # the details are all there, only not shown
