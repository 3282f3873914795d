"""Servers started on loopback by the tests and benchmarks (MLflow, Prefect): wait until one
answers, stop its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests


def wait_until_answering(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    what: str,
    log_path: Path | None = None,
) -> None:
    """Return once GET `url` answers 200; raise if `proc` exits first or `timeout` passes,
    with the end of its log."""
    tail = lambda: log_path.read_text(errors="replace")[-3000:] if log_path else ""  # noqa: E731
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail()}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what}: no answer from {url} in {timeout:.0f}s:\n{tail()}")


def stop_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session=True), then
    SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
