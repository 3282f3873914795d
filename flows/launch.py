"""Chosen stages under a multi-process launcher (torchrun, accelerate launch), set by env.

dvc.yaml keeps `cmd: python -m rmcore train`. With

    RMPIPE_LAUNCHER="torchrun --nproc_per_node=8"     # RMPIPE_LAUNCH_STAGES=train (default)

the flow reproduces that stage as `dvc repro` does, with `python` replaced by the launcher:
remove the stage's outputs, run `torchrun --nproc_per_node=8 -m rmcore train`, then
`dvc commit --force <stage>` records deps, params and outputs in dvc.lock and the cache.
dvc.lock keeps the command as written in dvc.yaml, so switching launcher re-runs nothing.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from flows.dvc_graph import (
    ReproOutcome,
    StageFailed,
    absolute_target,
    run_command,
    run_dvc,
)

LAUNCHER_ENV = "RMPIPE_LAUNCHER"
STAGES_ENV = "RMPIPE_LAUNCH_STAGES"
DEFAULT_STAGES = "train"


class LaunchError(RuntimeError):
    """The launcher cannot be applied to a stage's command."""


def launcher_for(stage: str) -> str | None:
    """The launcher for `stage` from the environment, or None to run it with `dvc repro`."""
    launcher = os.environ.get(LAUNCHER_ENV, "").strip()
    stages = os.environ.get(STAGES_ENV, DEFAULT_STAGES).split(",")
    return launcher if launcher and stage in {name.strip() for name in stages} else None


def launched_command(cmd: str, launcher: str) -> str:
    """`python -m rmcore train` -> `torchrun --nproc_per_node=8 -m rmcore train`."""
    words = shlex.split(cmd)
    if not words or Path(words[0]).name not in {"python", "python3"}:
        raise LaunchError(
            f"{LAUNCHER_ENV}={launcher!r} needs a stage command starting with `python`, "
            f"got {cmd!r}; drop the stage from {STAGES_ENV}"
        )
    return f"{launcher} {shlex.join(words[1:])}"


def _remove_outputs(root: Path, name: str) -> None:
    """What `dvc repro` does before running a stage: its (non-persistent) outputs go."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.lock:
        for stage in repo.stage.collect(absolute_target(root, name)):
            stage.remove_outs(ignore_remove=False, force=False)


def launch(
    root: Path, name: str, cmd: str, launcher: str, on_line: Callable[[str], None]
) -> ReproOutcome:
    """Reproduce stage `name` with its command under `launcher`; StageFailed on failure."""
    start = time.monotonic()
    command = launched_command(cmd, launcher)
    _remove_outputs(root, name)
    on_line(f"> {command}")
    rc, tail = run_command(root, command, on_line)
    if rc != 0:
        raise StageFailed(name, rc, rc, "\n".join(tail))
    rc, commit_tail = run_dvc(root, ["commit", "--force", name], on_line)
    if rc != 0:
        raise StageFailed(name, None, rc, "\n".join([*tail, *commit_tail]))
    return ReproOutcome(restored=False, seconds=time.monotonic() - start, tail="\n".join(tail))
