"""Bad params stop the CLI before any work: exit status 2, the key and the file named, nothing
written. Checked through `python -m rmcore <stage>` as a scheduler would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.tiny import make_tiny_neox, write_synthetic

VALID: dict[str, Any] = {
    "data": {"sources": [{"path": "x.jsonl", "format": "hh_rlhf"}]},
    "train": {"epochs": 1, "batch_size": 4},
}


def _cli(stage: str, params: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmcore", stage, "--params", str(params), "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _with(section: str, values: dict[str, Any]) -> dict[str, Any]:
    raw = {key: dict(value) for key, value in VALID.items()}
    raw[section] = {**raw.get(section, {}), **values}
    return raw


CASES = [
    ("unknown key", _with("train", {"learning_rate": 1e-4}), "unknown key `train.learning_rate`"),
    ("wrong type", _with("train", {"batch_size": "sixteen"}), "key `train.batch_size`"),
    ("negative lr", _with("train", {"lr": -1.0}), "key `train.lr`: Input should be greater than 0"),
    ("batch size 0", _with("train", {"batch_size": 0}), "key `train.batch_size`"),
    ("max_length 4", _with("tokenize", {"max_length": 4}), "key `tokenize.max_length`"),
    (
        "prompt limit leaves no room",
        _with("tokenize", {"max_length": 64, "max_prompt_length": 64}),
        "key `tokenize`: Value error, max_prompt_length (64) must be less than max_length (64)",
    ),
    (
        "split fractions",
        _with("data", {"split": {"train": 0.5, "validation": 0.1, "test": 0.1}}),
        "key `data.split`: Value error, train + validation + test must sum to 1, got 0.7",
    ),
    ("bad register section", _with("register", {"model_name": ""}), "key `register.model_name`"),
    ("unknown register key", _with("register", {"alias": "x"}), "unknown key `register.alias`"),
    ("unknown section", {**VALID, "evaluate": {"batch_size": 2}}, "unknown key `evaluate`"),
]


@pytest.mark.parametrize(("case", "raw", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_params_stop_train_before_any_work(
    case: str, raw: dict[str, Any], message: str, tmp_path: Path
) -> None:
    params = tmp_path / "bad-params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    root = tmp_path / "project"
    root.mkdir()
    done = _cli("train", params, root)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{params}: {message}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(root.iterdir()) == []  # no checkpoint, model or metrics


def test_valid_params_pass_the_same_check(tmp_path: Path) -> None:
    """The control: VALID params get past validation (ingest then stops on the missing
    data file, with another message)."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(VALID), encoding="utf-8")
    done = _cli("ingest", params, tmp_path)
    assert done.returncode == 2 and "invalid parameters" not in done.stderr
    assert "error: data file not found: x.jsonl" in done.stderr


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tokenizer whose chat template costs more tokens than the static minimum of 8."""
    return make_tiny_neox(tmp_path_factory.mktemp("chat") / "model", chat_template=True)


def test_max_length_below_the_tokenizer_minimum_stops_tokenize(
    chat_model: str, tmp_path: Path
) -> None:
    from rmcore.core.paths import Layout

    write_synthetic(Layout(tmp_path), n_train=8, n_val=4, n_test=4)
    raw = {**VALID, "model": {"name": chat_model}, "tokenize": {"max_length": 12}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = _cli("tokenize", params, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: tokenize.max_length is 12 but needs at least 24" in done.stderr
    assert "chat template" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "tokenized").exists()
    assert not (tmp_path / "metrics").exists()


def test_minimum_max_length_is_exact(chat_model: str) -> None:
    from rmcore.core.config import ConfigError, TokenizeConfig
    from rmcore.text.tokenize import check_max_length, format_and_encode
    from rmcore.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(chat_model)
    # A one-word prompt takes 12 tokens, a one-word completion 3; by default the prompt keeps
    # max_length // 2 tokens, so 24 is the least that holds both.
    check_max_length(tokenizer, TokenizeConfig(max_length=24))
    with pytest.raises(ConfigError, match="at least 24"):
        check_max_length(tokenizer, TokenizeConfig(max_length=23))
    # with the prompt limit set to that prompt's 12 tokens, 15 is enough
    exact = TokenizeConfig(max_length=15, max_prompt_length=12)
    check_max_length(tokenizer, exact)
    with pytest.raises(ConfigError, match="at least 15"):
        check_max_length(tokenizer, TokenizeConfig(max_length=14, max_prompt_length=12))
    with pytest.raises(ConfigError, match="max_prompt_length is 11 but must lie between 12 and 27"):
        check_max_length(tokenizer, TokenizeConfig(max_length=30, max_prompt_length=11))
    # at the minimum, the shortest group keeps every template token: nothing is trimmed or cut
    for cfg in (TokenizeConfig(max_length=24), exact):
        prompt, completions, trimmed, cut = format_and_encode(
            tokenizer, [{"role": "user", "content": "a"}], ["a"], cfg
        )
        assert (len(prompt), len(completions[0]), trimmed, cut) == (12, 3, False, 0)
    plain = TokenizeConfig(max_length=17, template="plain")  # the plain template is shorter
    with pytest.raises(ConfigError, match=r"at least 18 .*plain template"):
        check_max_length(tokenizer, plain)
