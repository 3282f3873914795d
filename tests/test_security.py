"""Untrusted model files: weights load from safetensors only (a pickle is never opened) and
code shipped with a model runs only when the user sets model.trust_remote_code."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from rmcore.core.config import ConfigError, ModelConfig, TokenizeConfig
from rmcore.model.reward_model import META_FILE, build_reward_model, load_reward_model
from tests.conftest import REPO_ROOT
from tests.tiny import make_tiny_bert


class _Payload:
    """Unpickling it creates the directory `marker`: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def _plant_pickle(directory: Path, marker: Path, name: str = "pytorch_model.bin") -> None:
    with (directory / name).open("wb") as handle:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _Payload(marker)}, handle)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(make_tiny_bert(tmp_path_factory.mktemp("security") / "bert"))


@pytest.fixture(scope="module")
def reward_model(backbone: Path) -> Path:
    out = backbone.parent / "reward_model"
    build_reward_model(
        ModelConfig(name=str(backbone)), TokenizeConfig(max_length=32)
    ).save_pretrained(out)
    return out


def test_backbone_with_only_pickle_weights_is_refused(backbone: Path, tmp_path: Path) -> None:
    model = tmp_path / "pickled"
    shutil.copytree(backbone, model)
    (model / "model.safetensors").unlink()
    _plant_pickle(model, tmp_path / "unpickled")
    with pytest.raises(ConfigError) as err:
        build_reward_model(ModelConfig(name=str(model)))
    message = str(err.value)
    assert f"model.name {model} has weights only in pickle files (pytorch_model.bin)" in message
    assert "safetensors only" in message
    assert not (tmp_path / "unpickled").exists()


def test_reward_model_with_only_pickle_weights_is_refused(
    reward_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "pickled"
    shutil.copytree(reward_model, model)
    (model / "model.safetensors").unlink()
    _plant_pickle(model, tmp_path / "unpickled")
    with pytest.raises(ConfigError, match=r"reward model .* pickle files \(pytorch_model.bin\)"):
        load_reward_model(model)
    assert not (tmp_path / "unpickled").exists()


def test_a_pickle_beside_safetensors_is_never_opened(reward_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "both"
    shutil.copytree(reward_model, model)
    _plant_pickle(model, tmp_path / "unpickled")
    _plant_pickle(model, tmp_path / "unpickled-pt", name="training_args.bin")
    loaded = load_reward_model(model)
    assert loaded.config.num_labels == 1
    assert not (tmp_path / "unpickled").exists() and not (tmp_path / "unpickled-pt").exists()


EVIL = """
import pathlib
pathlib.Path(__file__).resolve().parent.joinpath("ran-remote-code").mkdir()
from transformers import BertConfig
class EvilConfig(BertConfig):
    model_type = "{model_type}"
"""


def _with_own_code(backbone: Path, model: Path, model_type: str) -> Path:
    """A copy of `backbone` whose config asks for Python code shipped in the directory; that
    code would create `ran-remote-code` when imported."""
    shutil.copytree(backbone, model)
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "evil.py").write_text(EVIL.format(model_type=model_type))
    return model


def test_trust_remote_code_is_off_unless_set() -> None:
    assert ModelConfig().trust_remote_code is False
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert params["model"]["trust_remote_code"] is False


def test_code_of_an_unknown_model_type_is_refused(backbone: Path, tmp_path: Path) -> None:
    model = _with_own_code(backbone, tmp_path / "custom", "rmpipe-test-custom")
    with pytest.raises(ValueError, match="trust_remote_code"):
        build_reward_model(ModelConfig(name=str(model)))
    assert not (model / "ran-remote-code").exists()


def test_code_beside_a_known_model_type_is_ignored(backbone: Path, tmp_path: Path) -> None:
    """transformers' own BERT class is used; the directory's code never runs."""
    model = _with_own_code(backbone, tmp_path / "custom", "bert")
    loaded = build_reward_model(ModelConfig(name=str(model)))
    assert type(loaded.backbone).__module__.startswith("transformers.models.bert")
    assert not (model / "ran-remote-code").exists()


def test_a_reward_model_that_needs_its_own_code_loads_only_on_opt_in(
    reward_model: Path, tmp_path: Path
) -> None:
    """The directory's rmpipe.json cannot turn trust_remote_code on by itself."""
    model = tmp_path / "remote"
    shutil.copytree(reward_model, model)
    meta = json.loads((model / META_FILE).read_text())
    (model / META_FILE).write_text(json.dumps({**meta, "trust_remote_code": True}))
    with pytest.raises(ConfigError, match=r"model.trust_remote_code: true"):
        load_reward_model(model)
    assert load_reward_model(model, trust_remote_code=True).trust_remote_code is True
