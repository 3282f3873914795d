"""A SIGKILLed flow leaves no process behind: not its temporary Prefect server, not the DVC
child, the shim or the stage command it was running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flows.params import original_path, run_params
from tests.flows.conftest import REPO_ROOT

psutil = pytest.importorskip("psutil")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]


def _descendants(pid: int) -> list[Any]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _alive(process: Any) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(process: Any) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_a_killed_flow_orphans_no_process(project: Path, tmp_path: Path) -> None:
    """...and its params override, left in params.yaml, is undone when the next run starts."""
    params = project / "params.yaml"
    committed = params.read_bytes()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="150",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        PYTHONPATH=str(REPO_ROOT),
        # dash forks a command instead of becoming it, leaving a process between the shim
        # and the stage command: the case a tie to the parent alone would miss
        SHELL="/bin/sh",
    )
    command = [sys.executable, "-m", "flows.pipeline", "--root", str(project)]
    with (tmp_path / "flow.log").open("w") as log:
        flow = subprocess.Popen(
            [
                *command,
                "--no-validate",
                "--no-push",
                "--retries",
                "0",
                "--set",
                "prepare.sleep=600",
            ],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: list[Any] = []
    try:
        deadline = time.monotonic() + 240
        while not any("stage.py prepare" in _cmdline(p) for p in started):
            assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "flow.log").read_text()[-3000:]
            time.sleep(0.5)
            started = _descendants(flow.pid)
        assert any("uvicorn" in _cmdline(p) for p in started), [_cmdline(p) for p in started]
        flow.send_signal(signal.SIGKILL)
        flow.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [_cmdline(p)[:120] for p in started if _alive(p)]
        assert survivors == []
        # SIGKILL ran no cleanup: the run's params are still there, the original recorded
        assert b"sleep: 600" in params.read_bytes()
        with run_params(project) as changes:  # what the next run does first, under the lock
            assert changes == []
            assert params.read_bytes() == committed
        assert not original_path(project).exists()
    finally:
        if flow.poll() is None:
            flow.kill()
        for process in started:
            if _alive(process):
                process.kill()
