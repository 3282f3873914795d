"""Stage processes that die with the process that started them.

`dvc repro` runs a stage's command as its child; killed with SIGKILL it cannot stop that child,
which then trains on for hours, orphaned, holding the machine (and the training lock). Of the
two ways to tie a child to its parent, a process group needs the parent to signal the group
as it dies, which SIGKILL forbids; Linux's `prctl(PR_SET_PDEATHSIG)` needs nothing from the
parent: the kernel signals the child when its parent exits, however it exits. So a stage
command started by DVC (which sets $DVC_STAGE) asks for it first thing; the flow's stage
processes do the same (flows/dvc_stages.py).

The kernel only watches the immediate parent, and DVC starts a command through `$SHELL -c`:
bash replaces itself with the command, but dash (`/bin/sh` on Debian, what DVC uses when
$SHELL is unset) forks and waits, and a launcher (torchrun) sits in between too. So a stage
process also watches every ancestor that DVC started for the stage (each one's environment
holds $DVC_STAGE; DVC's own does not) and dies when any of them loses its parent.

The signal is SIGKILL: a handler cannot delay or swallow it, and nothing is lost that a kill
at any other moment would not lose (outputs are written atomically, checkpoints survive).
Elsewhere than Linux this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STAGE_MARKER = b"DVC_STAGE="  # in the environment of every process DVC starts for a stage
MAX_ANCESTORS = 16  # how far up to look for the process that started the stage
WATCH_INTERVAL_S = 0.5


def die_with_parent(expected_parent: int | None = None, signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `signum` to this process when its parent exits; True where it can.

    The parent may have died before the request (then no signal would ever come): a process
    whose parent is no longer `expected_parent` (the pid it saw first) signals itself at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signum)
    return True


def die_with_stage_starter(expected_parent: int | None = None) -> bool:
    """`die_with_parent`, and die as well when the process that started the stage (DVC)
    exits while processes it started for the stage (a shell, a launcher) stand between."""
    if not die_with_parent(expected_parent):
        return False
    links = _stage_links()
    if links:
        threading.Thread(target=_watch, args=(links,), name="stage-starter", daemon=True).start()
    return True


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process; None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces; the fields after it do not.
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return int(fields[1]), int(fields[19])


def _started_for_stage(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(entry.startswith(STAGE_MARKER) for entry in environ.split(b"\0"))


def _stage_links() -> list[tuple[int, tuple[int, int]]]:
    """Each ancestor started for the stage, with its (parent, start time) as now."""
    links: list[tuple[int, tuple[int, int]]] = []
    pid = os.getppid()
    while len(links) < MAX_ANCESTORS and _started_for_stage(pid):
        stat = _proc_stat(pid)
        if stat is None:
            break
        links.append((pid, stat))
        pid = stat[0]
    return links


def _watch(links: list[tuple[int, tuple[int, int]]]) -> None:
    """Kill this process when one of `links` has exited or lost its parent."""
    while True:
        for pid, stat in links:
            if _proc_stat(pid) != stat:
                print(
                    f"the process that started this stage has exited (pid {pid} or its "
                    "parent): stopping too",
                    file=sys.stderr,
                    flush=True,
                )
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(WATCH_INTERVAL_S)
