"""Stage processes that die with the process that started them.

`dvc repro` runs a stage's command as its child; killed with SIGKILL it cannot stop that child,
which then trains on for hours, orphaned, holding the machine (and the training lock). Of the
two ways to tie a child to its parent, a process group needs the parent to signal the group
as it dies, which SIGKILL forbids; Linux's `prctl(PR_SET_PDEATHSIG)` needs nothing from the
parent: the kernel signals the child when its parent exits, however it exits. So a stage
command started by DVC (which sets $DVC_STAGE) asks for it first thing; the flow's stage
processes do the same (flows/dvc_stages.py).

The signal is SIGKILL: a handler cannot delay or swallow it, and nothing is lost that a kill
at any other moment would not lose (outputs are written atomically, checkpoints survive).
Elsewhere than Linux this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits; True where it can.

    The parent may have died before the request (then no signal would ever come): a process
    whose parent is no longer `expected_parent` (the pid it saw first) kills itself at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True
