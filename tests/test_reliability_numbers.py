"""Numbers that are not numbers: a diverging training stops with one line and exit status 2,
metrics files are strict JSON, and params that YAML or pydantic would bend are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from rmcore import stages
from rmcore.__main__ import EXIT_CONFIG, main
from rmcore.core import atomic
from rmcore.core.config import ConfigError, load_params
from rmcore.core.paths import Layout
from tests.tiny import make_tiny_bert, sample_data_section, tiny_params, write_synthetic

pytestmark = pytest.mark.usefixtures("one_thread")


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _write_params(root: Path, model: str, train: dict[str, Any]) -> Path:
    raw = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model},
        "train": {"epochs": 1, "batch_size": 4, "seed": 0, **train},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_diverging_training_stops_with_one_line_and_saves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lr 1e6 on a tiny BERT: the loss is NaN by the third step."""
    model = make_tiny_bert(tmp_path / "bert")
    layout = Layout(tmp_path / "project")
    write_synthetic(layout, n_train=32, n_val=8, n_test=4)
    stages.tokenize(tiny_params(model), layout)
    train = {"lr": 1e6, "warmup_ratio": 0.0, "max_steps": 6, "save_every": 1}
    params = _write_params(layout.root, model, train)
    capsys.readouterr()
    status = main(["train", "--params", str(params), "--root", str(layout.root)])
    err = capsys.readouterr().err
    assert status == EXIT_CONFIG, err[-3000:]
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "training diverged at step " in line and " of 6 " in line
    assert "lr " in line and "a lower train.lr (now 1e+06)" in line and "nothing was saved" in line
    assert not layout.model_dir.exists()
    assert not layout.train_metrics.exists() and not layout.train_steps.exists()
    # checkpoints of the finite steps may stay; none of a step after the divergence
    step = int(line.split("training diverged at step ")[1].split()[0])
    saved = sorted(p.name for p in layout.checkpoints.glob("*step-*"))
    assert all(int(name.rsplit("-", 1)[1]) < step for name in saved), saved


def test_metrics_json_is_strict_with_the_reason_for_each_null(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "train.json"
    data = {"loss": math.nan, "curve": [1.0, -math.inf], "by": {"a": {"b": math.inf}}, "n": 3}
    atomic.write_json(path, data)
    written = _strict_json(path.read_text())
    assert written["loss"] is None and written["curve"] == [1.0, None]
    assert written["by"] == {"a": {"b": None}} and written["n"] == 3
    assert written[atomic.NULL_REASONS] == {
        "loss": "was NaN",
        "curve.1": "was -inf",
        "by.a.b": "was inf",
    }
    atomic.write_json(path, {"loss": 0.5})
    assert _strict_json(path.read_text()) == {"loss": 0.5}  # no reasons when all are finite


@pytest.mark.parametrize(
    ("section", "text", "key", "says"),
    [
        ("train", "epochs: .inf", "train.epochs", "finite number"),
        ("train", "lr: .nan", "train.lr", "finite number"),
        ("loss", "beta: .inf", "loss.beta", "finite number"),
        ("train", "batch_size: true", "train.batch_size", "expected a number, not true/false"),
        ("train", "lr: false", "train.lr", "expected a number, not true/false"),
        ("eval", "batch_size: yes", "eval.batch_size", "expected a number, not true/false"),
        ("train", "keep_best: 1", "train.keep_best", "expected true or false"),
        ("model", "trust_remote_code: 'yes'", "model.trust_remote_code", "expected true or"),
        ("eval", "length_buckets: []", "eval.length_buckets", "non-empty list of increasing"),
        ("eval", "length_buckets: [-64, 128]", "eval.length_buckets", "increasing positive"),
        ("eval", "length_buckets: [128, 64]", "eval.length_buckets", "increasing positive"),
        ("eval", "length_buckets: [64, 64]", "eval.length_buckets", "increasing positive"),
    ],
)
def test_params_yaml_bends_nothing(
    tmp_path: Path, section: str, text: str, key: str, says: str
) -> None:
    path = tmp_path / "params.yaml"
    data = yaml.safe_dump({"data": sample_data_section()})
    path.write_text(f"{data}{section}:\n  {text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    (line,) = [x for x in str(err.value).splitlines() if key in x]
    assert line.strip().startswith(f"{path}: key `{key}`") and says in line


def test_numbers_and_booleans_of_the_right_kind_still_load(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    data = yaml.safe_dump({"data": sample_data_section()})
    extra = "train:\n  epochs: 2\n  lr: 1.0e-4\n  keep_best: false\n  share_prefix: true\n"
    path.write_text(data + extra + "model:\n  dropout: null\n", encoding="utf-8")
    params = load_params(path)
    assert params.train.epochs == 2.0 and params.train.lr == 1e-4
    assert params.train.keep_best is False and params.train.share_prefix is True
    assert params.model.dropout is None
