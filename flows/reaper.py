"""The flow's temporary Prefect server dies with the flow, even when the flow is SIGKILLed.

Without $PREFECT_API_URL, Prefect starts a temporary server as a plain child process
(`prefect.server.api.server.SubprocessASGIServer`, `python -m uvicorn ...`) and stops it from
an atexit hook, which a SIGKILL skips: the server then lives on, orphaned. Prefect offers no
way to tie that child to its parent (no preexec_fn, no hook before its Popen). So the flow's
command line starts the server itself, before the flow runs (Prefect's client finds it running
and uses it), and hands its pid to a watchdog: a small process blocked reading a pipe whose
writing end only the flow holds. However the flow ends, the kernel closes that end; the
watchdog reads end-of-file and stops the server (SIGTERM, then SIGKILL), unless it is gone.
The stage processes need no watchdog: they ask the kernel to kill them with their parent
(rmcore/core/procs.py, flows/dvc_stages.py).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

# Run as `python -c WATCHDOG PID START`: START is the process's start time in /proc, so a
# new process that got the pid of a server gone meanwhile is never signalled.
WATCHDOG = """
import os, signal, sys, time
pid, start = int(sys.argv[1]), sys.argv[2]
def alive():
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"
sys.stdin.buffer.read()  # returns at end-of-file: the flow is gone
for sig in (signal.SIGTERM, signal.SIGKILL):
    if alive():
        os.kill(pid, sig)
    for _ in range(50):
        if not alive():
            sys.exit(0)
        time.sleep(0.1)
"""

_watchdogs: list[subprocess.Popen[bytes]] = []  # their pipes stay open while the flow lives


def start_time(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (/proc), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_with_this_process(pid: int) -> bool:
    """Start a watchdog that stops process `pid` once this process is gone; False where it
    cannot (no /proc: not Linux)."""
    start = start_time(pid)
    if start is None:
        return False
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(pid), start],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # no Ctrl-C from the terminal: it outlives the flow on purpose
    )
    _watchdogs.append(watchdog)
    return True


def temporary_server() -> Any | None:
    """Start Prefect's temporary server, if the flow will need one (no $PREFECT_API_URL),
    tied to this process by a watchdog; return it (None with a configured server)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    server = SubprocessASGIServer()  # the instance Prefect's client looks up and reuses
    server.start()
    process = server.server_process
    if process is not None:
        stop_with_this_process(process.pid)
    return server
