"""Exit statuses of the stages when their inputs are empty, truncated or missing, when the disk
fills up while a checkpoint or the model is saved, and when a registration cannot go on.

Each case ends in one `error:` line that names the file and the command that fixes it, and
exit status 2 (bad params or data: a retry reads the same bytes) or 3 (the file system
refused: free space, then retry), as docs/operations.md documents.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rmcore import stages
from rmcore.__main__ import EXIT_CONFIG, EXIT_FILESYSTEM, FILESYSTEM_ERRORS, main
from rmcore.core.integrity import FILESYSTEM_ERRNOS
from rmcore.core.paths import Layout
from tests.conftest import REPO_ROOT
from tests.tiny import (
    make_tiny_bert,
    sample_data_section,
    tiny_params,
    write_groups,
    write_synthetic,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = {"epochs": 1, "batch_size": 4, "max_steps": 2, "seed": 0, "mixed_precision": "no"}


def _write_params(root: Path, model: str, **train: Any) -> Path:
    raw = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model},
        "train": {**TRAIN, **train},
        "register": {"tracking_uri": f"sqlite:///{root / 'store.db'}"},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with ingest's splits, the tokenised data and a trained tiny model."""
    base = tmp_path_factory.mktemp("exits")
    model = make_tiny_bert(base / "bert")
    layout = Layout(base / "project")
    write_synthetic(layout, n_train=16, n_val=8, n_test=8)
    params = tiny_params(model, train=TRAIN)
    stages.tokenize(params, layout)
    stages.train(params, layout)
    (layout.root / "model_path").write_text(model)
    return layout.root


def _copy(trained: Path, tmp_path: Path, **train: Any) -> Layout:
    root = tmp_path / "project"
    shutil.copytree(trained, root)
    _write_params(root, (root / "model_path").read_text(), **train)
    return Layout(root)


def _run(layout: Layout, stage: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`rmpipe <stage>` in this process: its exit status and its one `error:` line."""
    capsys.readouterr()
    params = str(layout.root / "params.yaml")
    status = main([stage, "--params", params, "--root", str(layout.root)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    return status, lines[0]


def _truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def test_the_readers_and_the_cli_agree_on_file_system_errors() -> None:
    assert set(FILESYSTEM_ERRORS) == FILESYSTEM_ERRNOS


@pytest.mark.parametrize(("split", "stage"), [("train", "train"), ("test", "evaluate")])
def test_an_empty_split_is_bad_data(
    trained: Path, tmp_path: Path, split: str, stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _copy(trained, tmp_path)
    write_groups(layout, {split: []})
    argv = ["tokenize", "--params", str(layout.root / "params.yaml"), "--root", str(layout.root)]
    assert main(argv) == 0
    status, line = _run(layout, stage, capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {layout.tokenized / split} has no groups")
    assert f"data.split.{split}" in line and "`dvc repro`" in line


def test_a_truncated_parquet_split_is_named(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _copy(trained, tmp_path)
    _truncate(layout.split_file("validation"))
    status, line = _run(layout, "tokenize", capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {layout.split_file('validation')} is truncated or damaged")
    assert "`dvc checkout data/normalized`" in line and "`dvc repro -f ingest`" in line


def test_a_truncated_arrow_file_is_named(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _copy(trained, tmp_path)
    (arrow,) = (layout.tokenized / "train").glob("*.arrow")
    _truncate(arrow)
    status, line = _run(layout, "train", capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {arrow} is truncated or damaged")
    assert "`dvc checkout data/tokenized`" in line and "`dvc repro -f tokenize`" in line


@pytest.mark.parametrize("stage", ["evaluate", "register"])
def test_a_truncated_model_is_named(
    trained: Path, tmp_path: Path, stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _copy(trained, tmp_path)
    weights = layout.model_dir / "model.safetensors"
    _truncate(weights)
    status, line = _run(layout, stage, capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {weights} is truncated or damaged")
    assert "`dvc checkout models/reward_model`" in line and "`dvc repro -f train`" in line


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "not found"),
        ("{model_name: oops", "is truncated or damaged (not JSON"),
        ('{"vocab_size": 3}', "is truncated or damaged (no model_name, max_length)"),
    ],
    ids=["missing", "garbage", "incomplete"],
)
def test_a_bad_tokenizer_meta_is_named(
    trained: Path,
    tmp_path: Path,
    content: str | None,
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout = _copy(trained, tmp_path)
    meta = layout.tokenized / "meta.json"
    if content is None:
        meta.unlink()
    else:
        meta.write_text(content)
    status, line = _run(layout, "train", capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {meta} {says}")
    assert "`dvc repro -f tokenize`" in line


def test_disk_full_while_saving_a_checkpoint(
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from accelerate import Accelerator

    layout = _copy(trained, tmp_path, save_every=1)

    def half_then_full(self: Any, output_dir: str, **kwargs: Any) -> None:
        Path(output_dir, "model.safetensors").write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a failed write(): no path

    monkeypatch.setattr(Accelerator, "save_state", half_then_full)
    status, line = _run(layout, "train", capsys)
    assert status == EXIT_FILESYSTEM
    step = layout.checkpoints / "step-000001"
    assert line.startswith(f"error: {step}: no space left on the device (ENOSPC)")
    assert "free disk space there" in line
    assert not list(layout.checkpoints.glob(".tmp-*"))


def test_disk_full_while_saving_the_model_in_a_library(
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """safetensors reports a full disk as its own error, the errno only in its message."""
    import rmcore.train.recipe

    layout = _copy(trained, tmp_path, seed=1)
    before = (layout.model_dir / "model.safetensors").read_bytes()

    def full(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(rmcore.train.recipe, "set_reward_stats", full)
    status, line = _run(layout, "train", capsys)
    assert status == EXIT_FILESYSTEM
    assert line.startswith(f"error: {layout.model_dir}: no space left on the device (ENOSPC)")
    assert (layout.model_dir / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in layout.model_dir.parent.iterdir()) == ["reward_model"]


def _train_with_files_capped(layout: Layout, max_bytes: int) -> subprocess.CompletedProcess[str]:
    """`rmpipe train` in a fresh process whose files may not grow past `max_bytes`."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.RLIM_INFINITY))

    return subprocess.run(
        [sys.executable, "-m", "rmcore", "train", "--params", str(layout.root / "params.yaml")],
        cwd=layout.root,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=300,
    )


# The tiny model's weights are 4 MiB, its AdamW state 8 MiB. Capped at 1 MiB, safetensors
# meets a real EFBIG from the kernel; at 6 MiB the weights pass and torch.save (the optimizer
# state) fails, reporting the failed write() without its errno.
@pytest.mark.parametrize("max_bytes", [1 << 20, 6 << 20], ids=["safetensors", "torch-save"])
def test_file_size_limit_while_saving_a_checkpoint(
    trained: Path, tmp_path: Path, max_bytes: int
) -> None:
    layout = _copy(trained, tmp_path, save_every=1)
    shutil.rmtree(layout.model_dir)
    done = _train_with_files_capped(layout, max_bytes)
    assert done.returncode == EXIT_FILESYSTEM, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: checkpoints/step-000001: file size limit exceeded (EFBIG)")
    assert not list(layout.checkpoints.glob(".tmp-*")) and not layout.model_dir.exists()


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "garbage"])
def test_an_expected_registration_failure_is_one_line(
    trained: Path, tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _copy(trained, tmp_path)
    if content is not None:
        layout.eval_metrics.parent.mkdir(parents=True, exist_ok=True)
        layout.eval_metrics.write_text(content)
    status, line = _run(layout, "register", capsys)
    assert status == EXIT_CONFIG
    assert line.startswith(f"error: {layout.eval_metrics} ")
    assert "dvc repro" in line and "evaluate" in line


@pytest.mark.parametrize(
    ("free", "size_limit", "expected"),
    [(0, None, errno.ENOSPC), (1 << 40, 1 << 20, errno.EFBIG), (1 << 40, None, errno.EIO)],
    ids=["disk-full", "size-limit", "other"],
)
def test_a_torch_writer_failure_gets_its_likely_errno(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    free: int,
    size_limit: int | None,
    expected: int,
) -> None:
    from collections import namedtuple

    from rmcore.core import atomic

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _p: usage(1 << 41, 0, free))
    limit = resource.RLIM_INFINITY if size_limit is None else size_limit
    monkeypatch.setattr(atomic.resource, "getrlimit", lambda _r: (limit, limit))
    exc = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    named = atomic.io_error(exc, tmp_path / "checkpoint")
    assert named is not None and named.errno == expected
    assert named.filename == str(tmp_path / "checkpoint")
    assert atomic.io_error(RuntimeError("some other failure"), tmp_path) is None
