"""The pipeline as DVC sees it: stages in dependency order, their status, and `dvc repro`.

Stages come from `dvc.yaml` through DVC's own graph, never re-declared here. Each stage is
reproduced by `dvc repro --single-item <stage>` in a subprocess: one clean process per stage,
its output streamed line by line, and DVC writing `dvc.lock` only when the stage succeeded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# DVC's message when a stage's command fails: "... failed to run: <cmd>, exited with 3"
_EXIT_RE = re.compile(r"exited with (-?\d+)")
_RUN_CACHE_RE = re.compile(r"is cached - skipping run")

TAIL_LINES = 40


@dataclass(frozen=True)
class Stage:
    """One dvc.yaml stage: `name` is what `dvc repro`/`dvc status` accept."""

    name: str
    cmd: str
    deps: tuple[str, ...]  # files and directories
    params: tuple[str, ...]  # "params.yaml:train" ...
    outs: tuple[str, ...]
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class ReproOutcome:
    restored: bool  # outputs checked out from DVC's run-cache instead of running the command
    seconds: float
    tail: str


class StageFailed(RuntimeError):
    """`dvc repro` of one stage failed; carries the stage, exit statuses and the log tail."""

    def __init__(self, stage: str, exit_status: int | None, dvc_status: int, tail: str) -> None:
        self.stage = stage
        self.exit_status = exit_status
        self.dvc_status = dvc_status
        self.tail = tail
        self.attempts = 1  # set by the flow: how many times the stage was tried
        status = (
            f"its command exited with status {exit_status}"
            if exit_status is not None
            else f"dvc repro exited with status {dvc_status}"
        )
        super().__init__(
            f"stage {stage!r} failed: {status}. dvc.lock was not updated for it.\n"
            f"--- last lines of its log ---\n{tail}"
        )


def pipeline_stages(root: Path) -> list[Stage]:
    """The dvc.yaml stages of `root` in an order that runs every stage after its inputs.

    Topological order of DVC's stage graph; among stages free to go, dvc.yaml order.
    """
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = root.resolve()
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        declared = {stage: i for i, stage in enumerate(repo.index.stages)}
        ordered = nx.lexicographical_topological_sort(
            graph.reverse(copy=True), key=lambda stage: declared.get(stage, -1)
        )
        return [
            Stage(
                name=_address(stage.path, stage.name, root),
                cmd=" && ".join(stage.cmd) if isinstance(stage.cmd, list) else str(stage.cmd),
                deps=tuple(
                    str(dep.def_path) for dep in stage.deps if not isinstance(dep, ParamsDependency)
                ),
                params=tuple(
                    f"{dep.def_path}:{key}"
                    for dep in stage.deps
                    if isinstance(dep, ParamsDependency)
                    for key in dep.params
                ),
                outs=tuple(str(out.def_path) for out in stage.outs),
                upstream=tuple(
                    _address(up.path, up.name, root)
                    for up in graph.successors(stage)
                    if isinstance(up, PipelineStage)
                ),
            )
            for stage in ordered
            if isinstance(stage, PipelineStage)
        ]


def _address(dvcfile: str, stage: str, root: Path) -> str:
    """`train` for a stage of root/dvc.yaml, `sub/dvc.yaml:train` for others (as `dvc repro`)."""
    rel = os.path.relpath(dvcfile, root)
    return stage if rel == "dvc.yaml" else f"{rel}:{stage}"


def absolute_target(root: Path, name: str) -> str:
    """A stage address that DVC's Python API resolves whatever the current directory."""
    dvcfile, sep, stage = name.rpartition(":")
    return f"{root / (dvcfile if sep else 'dvc.yaml')}:{stage}"


def stage_changes(root: Path, name: str) -> list[str]:
    """What `dvc status <stage>` reports as changed, one short line each; [] = up to date."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[absolute_target(root, name)])
    return [_describe(entry) for entries in status.values() for entry in entries]


def _describe(entry: Any) -> str:
    """`{"changed deps": {"params.yaml": {"train.epochs": "modified"}}}` as one short line."""
    if not isinstance(entry, dict):
        return str(entry)  # e.g. "always changed", "changed command"
    parts = []
    for kind, items in entry.items():
        if not isinstance(items, dict):
            parts.append(f"{kind}: {items}")
            continue
        what = [
            f"{path} ({', '.join(f'{key} {how}' for key, how in detail.items())})"
            if isinstance(detail, dict)
            else f"{path} {detail}"
            for path, detail in items.items()
        ]
        parts.append(f"{kind}: {', '.join(what)}")
    return "; ".join(parts)


def subprocess_env() -> dict[str, str]:
    """Environment of `dvc` and the stage commands it starts.

    This interpreter's directory goes first on PATH so a stage's `python` is ours; Python
    output is unbuffered and tqdm throttled so the log streams without flooding.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TQDM_MININTERVAL", "10")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def run_command(
    root: Path, command: list[str] | str, on_line: Callable[[str], None]
) -> tuple[int, deque[str]]:
    """Run `command` (argv, or a shell line) in `root`, each output line to `on_line`.

    Returns the exit status and the last TAIL_LINES lines.
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,  # universal newlines: a progress bar's "\r" also ends a line
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                on_line(line)
        rc = proc.wait()
    return rc, tail


def run_dvc(root: Path, args: list[str], on_line: Callable[[str], None]) -> tuple[int, deque[str]]:
    """`dvc <args>` with this interpreter's DVC, in `root`."""
    return run_command(root, [sys.executable, "-m", "dvc", *args], on_line)


def reproduce(root: Path, name: str, on_line: Callable[[str], None]) -> ReproOutcome:
    """`dvc repro --single-item <stage>`; raise StageFailed with the log tail if it fails."""
    start = time.monotonic()
    rc, tail = run_dvc(root, ["repro", "--single-item", name], on_line)
    text = "\n".join(tail)
    if rc != 0:
        found = _EXIT_RE.findall(text)
        raise StageFailed(name, int(found[-1]) if found else None, rc, text)
    restored = bool(_RUN_CACHE_RE.search(text))
    return ReproOutcome(restored=restored, seconds=time.monotonic() - start, tail=text)


def default_remote(root: Path) -> str | None:
    """The name of the DVC default remote (`core.remote`), or None when there is none."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        remote = repo.config["core"].get("remote")
    return str(remote) if remote else None
