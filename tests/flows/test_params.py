"""Params file and KEY=VALUE overrides applied to params.yaml, the way DVC records them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from flows.params import (
    ParamsError,
    apply_params,
    original_path,
    parse_override,
    restore_params,
    run_params,
)
from rmcore.core.config import ConfigError, parse_params
from tests.flows.conftest import REPO_ROOT


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def _read(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def test_overrides_are_typed_and_comments_survive(root: Path) -> None:
    changes = apply_params(root, overrides=["train.epochs=2", "train.lr=1e-4", "data.strict=true"])
    assert changes == [
        "train.epochs: 1 -> 2",
        "train.lr: 5e-05 -> 0.0001",
        "data.strict: False -> True",
    ]
    params = _read(root)
    assert params["train"]["epochs"] == 2
    assert params["train"]["lr"] == pytest.approx(1e-4)
    assert params["data"]["strict"] is True
    text = (root / "params.yaml").read_text()
    assert "# The embedded synthetic dataset" in text
    assert text.startswith("# Every value the pipeline uses")


def test_unchanged_params_leave_the_file_alone(root: Path) -> None:
    params = root / "params.yaml"
    params.write_text(params.read_text() + "extra:\n  none: null  # kept as null\n  e: ~\n")
    before = params.read_bytes()
    assert apply_params(root) == []
    assert apply_params(root, overrides=["train.epochs=1"]) == []
    assert apply_params(root, params_file=params) == []
    assert params.read_bytes() == before
    apply_params(root, overrides=["train.epochs=2"])
    assert "  none: null  # kept as null\n" in params.read_text()


def test_list_values_and_indices(root: Path) -> None:
    apply_params(root, overrides=["data.sources.0.name=mine"])
    assert _read(root)["data"]["sources"][0]["name"] == "mine"
    apply_params(root, overrides=["data.sources=[{path: a.jsonl, format: preference}]"])
    assert _read(root)["data"]["sources"] == [{"path": "a.jsonl", "format": "preference"}]


def test_unknown_key_is_an_error_unless_added(root: Path) -> None:
    with pytest.raises(ParamsError, match=r"no key 'epoch' under train.*\+train\.epoch"):
        apply_params(root, overrides=["train.epoch=2"])
    with pytest.raises(ParamsError, match="not an index"):
        apply_params(root, overrides=["data.sources.5.name=x"])
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        parse_override("train.epochs")
    apply_params(root, overrides=["+train.note=hello"])
    assert _read(root)["train"]["note"] == "hello"


def test_invalid_params_are_rejected_before_writing(root: Path) -> None:
    before = (root / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        apply_params(root, overrides=["train.epochs=-3"], validate=parse_params)
    assert (root / "params.yaml").read_bytes() == before


def test_params_file_replaces_params_yaml(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    text = (root / "params.yaml").read_text().replace("epochs: 1", "epochs: 4  # longer")
    other.write_text(text)
    changes = apply_params(root, params_file=other, overrides=["train.seed=7"])
    assert changes[0] == f"params.yaml <- {other}"
    assert "epochs: 4  # longer" in (root / "params.yaml").read_text()
    assert _read(root)["train"]["seed"] == 7


def test_run_params_last_for_the_run_only(root: Path) -> None:
    """Inside the block params.yaml is the run's; after it, byte for byte the project's."""
    params = root / "params.yaml"
    params.write_bytes(params.read_bytes().replace(b"\n", b"\r\n", 3))  # odd bytes survive
    before = params.read_bytes()
    notes: list[str] = []
    with run_params(root, overrides=["train.epochs=2"], log=notes.append) as changes:
        assert changes == ["train.epochs: 1 -> 2"]
        assert _read(root)["train"]["epochs"] == 2
        assert original_path(root).exists()
    assert params.read_bytes() == before
    assert not original_path(root).exists()
    assert notes == [f"{params} restored to the project's own params"]
    with run_params(root) as changes:  # no overrides: nothing written, nothing recorded
        assert changes == []
        assert not original_path(root).exists()
    assert params.read_bytes() == before


def test_run_params_restores_after_an_exception(root: Path) -> None:
    before = (root / "params.yaml").read_bytes()
    with (
        pytest.raises(RuntimeError, match="stage failed"),
        run_params(root, overrides=["train.epochs=5"]),
    ):
        raise RuntimeError("stage failed")
    assert (root / "params.yaml").read_bytes() == before
    assert not original_path(root).exists()


def test_rejected_params_record_nothing(root: Path) -> None:
    before = (root / "params.yaml").read_bytes()
    with (
        pytest.raises(ConfigError, match=r"train\.epochs"),
        run_params(root, overrides=["train.epochs=-3"], validate=parse_params),
    ):
        pytest.fail("the block must not run")
    assert (root / "params.yaml").read_bytes() == before
    assert not original_path(root).exists()


def test_next_run_restores_what_a_killed_run_left(root: Path) -> None:
    """A run killed inside the block (no finally) leaves its params and the record; the next
    run puts the project's params back before it applies its own (or none)."""
    params = root / "params.yaml"
    before = params.read_bytes()
    block = run_params(root, overrides=["train.epochs=7"])
    block.__enter__()  # never exited: what SIGKILL leaves
    assert _read(root)["train"]["epochs"] == 7
    notes: list[str] = []
    with run_params(root, log=notes.append) as changes:
        assert changes == []
        assert params.read_bytes() == before
    assert notes == [
        f"a previous run did not end cleanly: {params} restored to the project's own params"
    ]
    assert not original_path(root).exists()
    assert restore_params(root) is None


def test_an_edit_made_since_the_run_wrote_is_kept(root: Path) -> None:
    params = root / "params.yaml"
    block = run_params(root, overrides=["train.epochs=7"])
    block.__enter__()  # never exited, as if killed
    params.write_text(params.read_text().replace("epochs: 7", "epochs: 9"))
    edited = params.read_bytes()
    assert (
        restore_params(root) == f"{params} was edited during the run: kept as it is, not restored"
    )
    assert params.read_bytes() == edited
    assert not original_path(root).exists()


def test_a_damaged_record_is_an_error_naming_it(root: Path) -> None:
    side = original_path(root)
    side.parent.mkdir(parents=True)
    side.write_text("{not json")
    with pytest.raises(ParamsError, match=f"{side}: unreadable record.*git diff params.yaml"):
        restore_params(root)
