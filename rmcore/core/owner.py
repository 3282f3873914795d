"""Who holds a lock: a small JSON file beside it naming the process, so that a process that
cannot get the lock can say which one has it (the pipeline lock, the training lock)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def holder(owner: Path, unknown: str = "an unknown process") -> str:
    """`pid P on HOST since TIME` from an owner file, or `unknown` where it cannot be read."""
    try:
        info = json.loads(owner.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return unknown
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


@contextmanager
def claimed(owner: Path, **extra: str) -> Iterator[None]:
    """Write this process into `owner` for the duration; the lock itself is the caller's."""
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, **extra}
    owner.write_text(json.dumps(info), encoding="utf-8")
    try:
        yield
    finally:
        owner.unlink(missing_ok=True)
