from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rmcore.config import ConfigError, load_params, parse_params
from tests.conftest import REPO_ROOT

MINIMAL = {"data": {"sources": [{"path": "x.jsonl", "format": "hh_rlhf"}]}}


def test_repo_params_load() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.model.name == "minilm-l6"
    assert params.loss.beta == pytest.approx(0.001)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    raw = {**MINIMAL, "train": {"epochs": 1, "learning_rate": 1e-4}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert "train.learning_rate" in str(err.value)
    assert str(path) in str(err.value)


def test_wrong_type_names_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size.*integer"):
        parse_params({**MINIMAL, "train": {"batch_size": "sixteen"}})


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("train", {"lr": -1.0}, "train.lr"),
        ("train", {"batch_size": 0}, "train.batch_size"),
        ("tokenize", {"max_length": 4}, "tokenize.max_length"),
    ],
)
def test_impossible_values(section: str, values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params({**MINIMAL, section: values})


def test_max_prompt_length_must_leave_room_for_a_completion() -> None:
    with pytest.raises(ConfigError, match=r"tokenize.*max_prompt_length \(256\) must be less"):
        parse_params({**MINIMAL, "tokenize": {"max_length": 256, "max_prompt_length": 256}})
    tokenize = parse_params({**MINIMAL, "tokenize": {"max_length": 256}}).tokenize
    assert tokenize.max_prompt_length is None and tokenize.prompt_limit == 128
    explicit = {"max_length": 256, "max_prompt_length": 200}
    assert parse_params({**MINIMAL, "tokenize": explicit}).tokenize.prompt_limit == 200


def test_split_fractions_must_sum_to_one() -> None:
    raw = {"data": {**MINIMAL["data"], "split": {"train": 0.5, "validation": 0.1, "test": 0.1}}}
    with pytest.raises(ConfigError, match=r"data\.split.*sum to 1"):
        parse_params(raw)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")
