"""Processes: a training started by `dvc repro` dies with it, even when `dvc` is SIGKILLed;
two trainings of one project never run at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from rmcore import stages
from rmcore.__main__ import EXIT_CONFIG, main
from rmcore.core.paths import Layout
from rmcore.train.exclusive import lock_path, training_lock
from tests.conftest import REPO_ROOT
from tests.tiny import make_tiny_bert, sample_data_section, tiny_params, write_synthetic

psutil = pytest.importorskip("psutil")

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]

T = TypeVar("T")

DVC_YAML = """\
stages:
  train:
    cmd: python -m rmcore train
    deps: [data/tokenized]
    outs: [models/reward_model]
"""


def _wait_for(find: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what} after {timeout:.0f}s")


def _gone(process: Any) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("DVC_STAGE", None)
    return env


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with tokenised data and params for a training that runs for minutes."""
    base = tmp_path_factory.mktemp("processes")
    model = make_tiny_bert(base / "bert")
    layout = Layout(base / "project")
    write_synthetic(layout, n_train=64, n_val=8, n_test=4)
    stages.tokenize(tiny_params(model), layout)
    shutil.rmtree(layout.normalized)
    raw = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model},
        "train": {"epochs": 10_000, "batch_size": 2, "save_every": 0, "seed": 0},
    }
    (layout.root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return layout.root


@pytest.fixture
def project(tokenized: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "project"
    shutil.copytree(tokenized, root)
    yield root
    for process in psutil.Process().children(recursive=True):  # whatever a failure left
        if "rmcore" in " ".join(process.cmdline()):
            process.kill()


def _holder(root: Path) -> int | None:
    """The pid recorded by the training that holds the project's lock, if any."""
    owner = lock_path(root / "checkpoints")
    owner = owner.with_name(owner.name + ".owner")
    try:
        return int(json.loads(owner.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _start_dvc_repro(project: Path, dvc_yaml: str, shell: str) -> subprocess.Popen[bytes]:
    """`dvc repro -s train` of `dvc_yaml` in `project`, in its own session, with `shell`."""
    (project / "dvc.yaml").write_text(dvc_yaml)
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True)
    with (project / "dvc.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "-s", "train"],
            cwd=project,
            env={**_env(), "SHELL": shell},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# DVC runs a command with `$SHELL -c` (/bin/sh when unset): bash becomes the command, dash
# (Debian's /bin/sh) forks it and waits, leaving a process between DVC and the training.
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_sigkilled_dvc_repro_takes_its_training_with_it(project: Path, shell: str) -> None:
    if not Path(shell).exists():
        pytest.skip(f"{shell} is not on this machine")
    dvc = _start_dvc_repro(project, DVC_YAML, shell)
    try:
        pid = _wait_for(lambda: _holder(project), 180, "the training under dvc to start")
        trainer = psutil.Process(pid)
        assert "rmcore" in " ".join(trainer.cmdline())
        dvc.send_signal(signal.SIGKILL)
        dvc.wait(timeout=30)
        _wait_for(lambda: _gone(trainer), 10, f"the orphaned training (pid {pid}) to die")
    finally:
        if dvc.poll() is None:
            dvc.kill()


TORCHRUN_DVC_YAML = """\
stages:
  train:
    cmd: torchrun --standalone --nproc_per_node=2 -m rmcore train
    deps: [data/tokenized]
    outs: [models/reward_model]
"""


def test_a_sigkilled_dvc_repro_takes_torchrun_and_its_workers_with_it(project: Path) -> None:
    """torchrun stands between DVC and the training processes: each worker watches the
    processes DVC started for the stage and dies when DVC is gone; torchrun then ends."""
    if not Path(sys.executable).with_name("torchrun").exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    dvc = _start_dvc_repro(project, TORCHRUN_DVC_YAML, "/bin/sh")
    started: list[Any] = []
    try:
        _wait_for(lambda: _holder(project), 240, "the training under torchrun to start")
        started = psutil.Process(dvc.pid).children(recursive=True)
        workers = [p for p in started if "rmcore" in " ".join(p.cmdline())]
        assert len(workers) >= 2, [p.cmdline() for p in started]
        dvc.send_signal(signal.SIGKILL)
        dvc.wait(timeout=30)
        _wait_for(lambda: all(_gone(p) for p in started), 60, "torchrun and its workers to end")
    finally:
        if dvc.poll() is None:
            dvc.kill()
        for process in started:
            if not _gone(process):
                process.kill()


def test_a_second_training_of_the_project_stops_naming_the_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = str(project / "params.yaml")
    first = subprocess.Popen(
        [sys.executable, "-m", "rmcore", "train", "--params", params, "--root", str(project)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _holder(project) == first.pid, 180, "the first training to start")
        capsys.readouterr()
        assert main(["train", "--params", params, "--root", str(project)]) == EXIT_CONFIG
        err = capsys.readouterr().err
        (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
        assert line.startswith("error: another training of this project is running")
        assert f"(pid {first.pid} on " in line and "then run train again" in line
        assert first.poll() is None  # the first one trains on
    finally:
        first.kill()
        first.wait()
    with training_lock(project / "checkpoints", wait_s=5):  # the OS freed the killed one's lock
        pass
