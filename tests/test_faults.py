"""Faults a scheduled run meets: a full disk, a denied write, a file where a directory belongs,
a kill in the middle of writing an output.

The CLI turns file-system errors into one line (path, what happened, what to do) and exit
status 3; outputs are written whole or not at all (rmcore/core/atomic.py), so the previous output
survives a failed or killed write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from rmcore import stages
from rmcore.__main__ import EXIT_FILESYSTEM, main
from rmcore.core import atomic
from rmcore.core.paths import Layout
from tests.conftest import REPO_ROOT
from tests.data.helpers import PAIR_OPTIONS, pair, write_jsonl
from tests.tiny import make_tiny_bert, tiny_params, write_synthetic

TOPICS = ["cats", "rain", "math", "tea", "boats", "chess", "stars", "bread"]


def _project(root: Path, n: int = 40) -> Path:
    """A small corpus and the params that ingest it; returns the params file."""
    rows = [
        pair(f"Tell me about {TOPICS[i % 8]}, {i}?", f"Good {i}.", f"Bad {i}.") for i in range(n)
    ]
    write_jsonl(root / "pairs.jsonl", rows)
    source = {"path": "pairs.jsonl", "format": "mapping", "name": "pairs", "options": PAIR_OPTIONS}
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"sources": [source]}}), encoding="utf-8")
    return params


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize(
    ("code", "todo"),
    [
        (errno.ENOSPC, "free disk space there"),
        (errno.EDQUOT, "free space within your quota"),
        (errno.EACCES, "fix the permissions of that path"),
        (errno.EPERM, "fix the ownership or attributes"),
        (errno.EROFS, "choose a writable directory with --root"),
    ],
    ids=["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS"],
)
def test_write_error_is_one_line_and_keeps_the_previous_output(
    code: int, todo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    params = _project(tmp_path)
    argv = ["ingest", "--params", str(params), "--root", str(tmp_path)]
    assert main(argv) == 0
    split = Layout(tmp_path).split_file("train")
    before = split.read_bytes()

    def fails_halfway(table: Any, where: Any, **kwargs: Any) -> None:
        Path(where).write_bytes(b"PAR1 half a file")  # what a full disk leaves behind
        raise OSError(code, os.strerror(code))  # as a failed write(): no file name

    monkeypatch.setattr(pq, "write_table", fails_halfway)
    capsys.readouterr()
    assert main(argv) == EXIT_FILESYSTEM
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {split}: ") and f"({errno.errorcode[code]})" in line
    assert todo in line
    assert split.read_bytes() == before  # the previous split, not half a new one
    assert not atomic.temp_sibling(split).exists()


def test_wrapped_error_is_found_and_a_pathless_permission_error_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    params = _project(tmp_path)
    argv = ["ingest", "--params", str(params), "--root", str(tmp_path)]
    artifact = tmp_path / "mlartifacts" / "model.safetensors"

    def library_wraps_it(*args: Any) -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(artifact))
        except OSError as exc:
            raise RuntimeError("could not log the artifacts") from exc

    monkeypatch.setitem(stages.STAGES, "ingest", library_wraps_it)
    assert main(argv) == EXIT_FILESYSTEM
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {artifact}: no space left on the device (ENOSPC)")

    def socket_refused(*args: Any) -> None:  # e.g. a firewall: not the file system
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setitem(stages.STAGES, "ingest", socket_refused)
    with pytest.raises(PermissionError):
        main(argv)


def test_file_where_a_directory_belongs(tmp_path: Path, capsys: Any) -> None:
    """A real ENOTDIR (root cannot bypass it): `data` is a file."""
    params = _project(tmp_path)
    (tmp_path / "data").write_text("not a directory")
    assert main(["ingest", "--params", str(params), "--root", str(tmp_path)]) == EXIT_FILESYSTEM
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {tmp_path / 'data' / 'normalized'}: ")
    assert "(ENOTDIR)" in line and "move that file away" in line


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))


def test_file_size_limit_through_the_cli(tmp_path: Path) -> None:
    """A real EFBIG from the kernel (any user, root too): files capped at 4 KiB."""
    params = _project(tmp_path, n=400)
    command = [sys.executable, "-m", "rmcore", "ingest", "--params", str(params)]
    done = subprocess.run(
        [*command, "--root", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_FILESYSTEM, done.stderr[-3000:]
    (line,) = _error_lines(done.stderr)
    split = tmp_path / "data" / "normalized" / "train.parquet"
    assert line.startswith(f"error: {split}: file size limit exceeded (EFBIG)")
    assert list(split.parent.iterdir()) == []  # no partial split, no temporary file


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes regardless of permissions")
def test_read_only_directory(tmp_path: Path, capsys: Any) -> None:
    params = _project(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o555)
    try:
        assert main(["ingest", "--params", str(params), "--root", str(tmp_path)]) == 3
    finally:
        (tmp_path / "data").chmod(0o755)
    (line,) = _error_lines(capsys.readouterr().err)
    assert "(EACCES)" in line and "fix the permissions" in line


def test_killed_writer_leaves_the_old_output(tmp_path: Path) -> None:
    """SIGKILL in the middle of an atomic write: the output is the old one; the leftover
    temporary file is overwritten by the next write."""
    target = tmp_path / "metrics" / "eval.json"
    atomic.write_text(target, '{"pairwise_accuracy": 0.5}\n')
    code = (
        "import os, signal, sys; from rmcore.core.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('{\"pairwise_accu')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"pairwise_accuracy": 0.5}
    assert atomic.temp_sibling(target).read_text() == '{"pairwise_accu'  # the kill's leftover
    atomic.write_text(target, '{"pairwise_accuracy": 0.75}\n')
    assert json.loads(target.read_text()) == {"pairwise_accuracy": 0.75}
    assert sorted(p.name for p in target.parent.iterdir()) == ["eval.json"]


def test_a_pipe_is_written_not_replaced(tmp_path: Path) -> None:
    """`rmpipe score --output /dev/stdout` and named pipes: written through, kept as they are."""
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()))
    reader.start()
    atomic.write_text(pipe, '{"reward": 1.5}\n')
    reader.join(timeout=10)
    assert received == ['{"reward": 1.5}\n']
    assert pipe.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_directory_output_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with atomic.atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("ne")
        raise KeyboardInterrupt
    assert (out / "weights").read_text() == "old"
    with atomic.atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("new")
    assert (out / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_failed_model_save_keeps_the_previous_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The train stage fails while writing models/reward_model (disk full after the weights):
    the previous model and metrics stay, not a model without its reward stats."""
    import rmcore.train.recipe

    layout = Layout(tmp_path)
    write_synthetic(layout, n_train=16, n_val=8, n_test=4)
    params = tiny_params(make_tiny_bert(tmp_path / "bert"), train={"max_steps": 2})
    stages.tokenize(params, layout)
    stages.train(params, layout)
    model, metrics = _tree_hash(layout.model_dir), layout.train_metrics.read_text()

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rmcore.train.recipe, "set_reward_stats", disk_full)
    with pytest.raises(OSError, match="No space left") as err:
        stages.train(tiny_params(params.model.name, train={"max_steps": 2, "seed": 1}), layout)
    assert err.value.filename == str(layout.model_dir)
    assert _tree_hash(layout.model_dir) == model
    assert layout.train_metrics.read_text() == metrics
    assert sorted(p.name for p in layout.model_dir.parent.iterdir()) == ["reward_model"]
