"""The dvc.yaml pipeline through DVC's Python API: stage graph, status, reproduction, push.

Stages and their order come from DVC's graph (`Repo.index.graph`), never re-declared here;
`Repo.status` says whether a stage changed. A changed stage is reproduced by
`Repo.reproduce(stage, single_item=True)` in a child process, so its output streams into the
flow's log and DVC alone decides the rest (run-cache, outputs, dvc.lock, cache).

DVC raises the same error whatever status a stage command exits with, and gives the status
only inside its message. So the child points $SHELL, through which DVC runs each command
(`$SHELL -c CMD`), at a shim (`shell_main`) that runs the command, under a launcher such as
torchrun where one is set, and records its exit status in a file. No command recorded means
DVC restored the stage from its run-cache. An audit hook stops the child loudly should DVC
start a stage command any other way.

The child, the shim and the command each die with their parent (Linux's PR_SET_PDEATHSIG, see
rmcore/core/procs.py), so a flow killed with SIGKILL leaves no stage running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmcore.core.procs import die_with_parent

LAUNCHER_ENV = "RMPIPE_LAUNCHER"  # e.g. "torchrun --nproc_per_node=8"
STAGES_ENV = "RMPIPE_LAUNCH_STAGES"  # the stages it applies to, default "train"
# Between the flow, its child and the shim:
_SHELL = "RMPIPE_SHIM_SHELL"  # the shell that runs the commands
_STATUS = "RMPIPE_SHIM_STATUS"  # the file of exit statuses, one JSON line per command
_LAUNCHER = "RMPIPE_SHIM_LAUNCHER"  # the launcher of this stage, if any
_PARENT = "RMPIPE_SHIM_PARENT"  # the pid the child, then the shim, must see as its parent
TAIL_LINES = 40


@dataclass(frozen=True)
class Stage:
    """A dvc.yaml stage: `name` as `dvc repro` takes it, its commands as dvc.yaml has them."""

    name: str
    commands: tuple[str, ...]


class StageFailed(RuntimeError):
    """A stage was not reproduced: its command's exit status (None: DVC failed), log tail."""

    def __init__(self, stage: str, exit_status: int | None, tail: str) -> None:
        self.stage, self.exit_status, self.tail = stage, exit_status, tail
        self.attempts = 1  # set by the flow: how many times the stage was tried
        why = "DVC could not reproduce it"
        if exit_status is not None:
            why = f"its command exited with status {exit_status}"
        super().__init__(
            f"stage {stage!r} failed: {why}. dvc.lock was not updated for it.\n"
            f"--- last lines of its log ---\n{tail}"
        )


class LaunchError(RuntimeError):
    """The launcher cannot be applied to a stage's command."""


def plan(root: Path) -> list[Stage]:
    """The stages of `root`, each after those it depends on; else in dvc.yaml order."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = root.resolve()
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        declared = {stage: i for i, stage in enumerate(repo.index.stages)}
        order = nx.lexicographical_topological_sort(graph.reverse(), key=lambda s: declared[s])
        return [
            Stage(_address(root, stage), _commands(stage.cmd))
            for stage in order
            if isinstance(stage, PipelineStage)
        ]


def _address(root: Path, stage: Any) -> str:
    """`train` for a stage of root/dvc.yaml, `sub/dvc.yaml:train` for others (as `dvc repro`)."""
    dvcfile = os.path.relpath(stage.path, root)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def _commands(cmd: str | list[str]) -> tuple[str, ...]:
    return tuple(cmd) if isinstance(cmd, list) else tuple(cmd.splitlines())


def _target(root: Path, name: str) -> str:
    """A stage address that DVC's API resolves whatever the current directory."""
    dvcfile, sep, stage = name.rpartition(":")
    return f"{root / (dvcfile if sep else 'dvc.yaml')}:{stage}"


def changes(root: Path, name: str) -> list[str]:
    """What `Repo.status` reports for stage `name`, one short line each; [] = up to date."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[_target(root, name)])
    return [_describe(entry) for entries in status.values() for entry in entries]


def _describe(entry: Any) -> str:
    """`{"changed deps": {"params.yaml": {"train.epochs": "modified"}}}` as one short line."""
    if not isinstance(entry, dict):
        return str(entry)  # e.g. "always changed", "changed command"
    return "; ".join(f"{kind}: {_paths(items)}" for kind, items in entry.items())


def _paths(items: Any) -> str:
    if not isinstance(items, dict):
        return str(items)
    return ", ".join(
        f"{path} ({', '.join(f'{key} {how}' for key, how in what.items())})"
        if isinstance(what, dict)  # params: key -> "modified" / "new" / "deleted"
        else f"{path} {what}"
        for path, what in items.items()
    )


def launcher_for(stage: str) -> str | None:
    """The launcher for `stage` from the environment, or None to run its command as it is."""
    launcher = os.environ.get(LAUNCHER_ENV, "").strip()
    stages = {name.strip() for name in os.environ.get(STAGES_ENV, "train").split(",")}
    return launcher if launcher and stage in stages else None


# Progress bars are for a terminal: in a log they are a wall of lines (one per tqdm update).
QUIET_ENV = {
    "TQDM_MININTERVAL": "10",
    "DVC_NO_ANALYTICS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" too
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")  # rmcore's log format


def launched_command(cmd: str, launcher: str) -> str:
    """`python -m rmcore train` -> `torchrun --nproc_per_node=8 -m rmcore train`."""
    words = shlex.split(cmd)
    if not words or Path(words[0]).name not in {"python", "python3"}:
        raise LaunchError(
            f"{LAUNCHER_ENV}={launcher!r} needs a stage command starting with `python`, "
            f"got {cmd!r}; drop the stage from {STAGES_ENV}"
        )
    return f"{launcher} {shlex.join(words[1:])}"


def reproduce(
    root: Path, name: str, on_line: Callable[[str], None], launcher: str | None = None
) -> bool:
    """`Repo.reproduce(name, single_item=True)` in a child process, each output line to
    `on_line`; True if DVC restored the stage from its run-cache. Raises StageFailed."""
    tmp_root = root / ".dvc" / "tmp"  # not /tmp, which may forbid running the shim
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rmpipe-stage-", dir=tmp_root) as tmp:
        shim, status = Path(tmp) / "sh", Path(tmp) / "status.jsonl"
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(_python("shell_main"))} "$@"\n')
        shim.chmod(0o755)
        env = {"SHELL": str(shim), _SHELL: os.environ.get("SHELL") or "/bin/sh"}
        env.update({_STATUS: str(status), _LAUNCHER: launcher or "", _PARENT: str(os.getpid())})
        rc, tail = run_command(root, _python("child_main", str(root), name), on_line, env)
        lines = status.read_text().splitlines() if status.exists() else []
    statuses = [int(json.loads(line)["exit_status"]) for line in lines]
    failed = [code for code in statuses if code != 0]
    if failed or rc != 0:
        raise StageFailed(name, failed[-1] if failed else None, "\n".join(tail))
    return not statuses


def _python(function: str, *args: str) -> list[str]:
    """argv calling `flows.dvc_stages.<function>(args)` in a fresh interpreter."""
    flows_parent = str(Path(__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path.insert(0, {flows_parent!r}); "
        f"from flows.dvc_stages import {function}; sys.exit({function}(sys.argv[1:]))"
    )
    return [sys.executable, "-c", code, *args]


def child_main(argv: list[str]) -> int:
    """The child: DVC reproduces one stage, its commands going through the shim ($SHELL)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root, name = Path(argv[0]), argv[1]  # DVC logs to stdout and stderr as on the CLI
    _die_with_parent()
    os.environ[_PARENT] = str(os.getpid())  # what the shim, started by DVC, must see
    try:
        with Repo(str(root)) as repo:
            repo.scm_context.quiet = True  # its `git add` hint, once per stage: the summary has it
            [stage] = repo.stage.collect(_target(root, name))
            sys.addaudithook(_through_shim(os.environ["SHELL"], set(_commands(stage.cmd))))
            repo.reproduce(_target(root, name), single_item=True)
    except DvcException as exc:
        causes: list[BaseException] = [exc]
        while (cause := causes[-1].__cause__) is not None:
            causes.append(cause)
        print("error:", ": ".join(map(str, causes)), flush=True)
        return 1
    return 0


def _through_shim(shim: str, commands: set[str]) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook refusing to start a stage command other than through the shim."""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "subprocess.Popen":
            return
        argv = [args[1]] if isinstance(args[1], str | bytes) else list(args[1])
        if str(argv[0]) != shim and commands & {str(arg) for arg in argv}:
            raise RuntimeError(
                f"DVC started {argv} without $SHELL ({shim}), so the flow cannot see its exit "
                "status or apply a launcher: flows/dvc_stages.py needs updating for this DVC"
            )

    return hook


def shell_main(argv: list[str]) -> int:
    """The shim, called by DVC as `$SHELL -c CMD`: run CMD (under the stage's launcher, if
    any) with the real shell, and record its exit status for the flow."""
    shell, status = os.environ.pop(_SHELL), os.environ.pop(_STATUS)
    launcher = os.environ.pop(_LAUNCHER, "")
    os.environ["SHELL"] = shell
    if len(argv) != 2 or argv[0] != "-c":
        _die_with_parent()
        os.execv(shell, [shell, *argv])  # not a stage command
    command = launched_command(argv[1], launcher) if launcher else argv[1]
    if launcher:
        print(f"> {command}", flush=True)
    code = _run_as_group(shell, command)
    with open(status, "a", encoding="utf-8") as out:
        out.write(json.dumps({"command": argv[1], "exit_status": code}) + "\n")
    return code


def _run_as_group(shell: str, command: str) -> int:
    """Run `shell -c command` as a process group that dies with this shim's parent.

    The shell may fork the command rather than become it (dash does), and the command may
    start processes of its own, none of them ours to tie: so the shim asks for SIGTERM when
    its parent exits, and its handler kills the whole group before the shim exits. SIGTERM
    stays blocked until the handler is in place, so that no moment is left uncovered.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _die_with_parent(signal.SIGTERM)

    def in_child() -> None:  # the shim has one thread, so preexec_fn is safe here
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        die_with_parent(shim, signal.SIGKILL)  # the shell, should the shim be SIGKILLed

    shim = os.getpid()
    child = subprocess.Popen([shell, "-c", command], process_group=0, preexec_fn=in_child)

    def stop_group(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_group)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    return child.wait()


def _die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Die with the process that started this one (the flow, or DVC in the child), even when
    it is SIGKILLed: no stage goes on running for a flow that is gone (rmcore/core/procs.py).
    The parent's pid travels in the environment, so a parent that died before the request
    is noticed too."""
    expected = os.environ.pop(_PARENT, "")
    die_with_parent(int(expected) if expected.isdigit() else None, signum)


def run_command(
    root: Path, argv: list[str], on_line: Callable[[str], None], env: dict[str, str]
) -> tuple[int, deque[str]]:
    """Run `argv` in `root`, each output line to `on_line`; exit status and last lines.

    This interpreter's directory goes first on PATH (a stage's `python` is ours); Python
    output is unbuffered and tqdm throttled, so the log streams without flooding.
    """
    env = {**QUIET_ENV, **os.environ, **env}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        argv,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,  # universal newlines: a progress bar's "\r" also ends a line
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if line := raw.rstrip():
                tail.append(line)
                if shown := console_line(line):
                    on_line(shown)
    return proc.returncode, tail


def console_line(line: str) -> str | None:
    """A stage's output line as the flow's log shows it: without the stage logger's own
    timestamp (the flow's log has one); None for the stage's JSON summary: its results are in
    the stage's files and in the run's summary."""
    if line.startswith("{") and line.endswith("}"):
        return None
    return _TIMESTAMP.sub("", line, count=1)


def push(root: Path) -> str | None:
    """`Repo.push()` to the default remote: what was pushed, or None without a remote."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        remote = repo.config["core"].get("remote")
        if not remote:
            return None
        pushed = repo.push()
    return f"remote {remote!r}: {pushed} files pushed"
