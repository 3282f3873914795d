"""One pipeline run per project at a time.

DVC's own repo lock only covers one `dvc` command; a flow run is several (status, repro per
stage, push) plus the params.yaml edit and MLflow writes. This file lock spans the whole run:
a second run waits up to a timeout, then stops with a message naming the holder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rmcore.core.owner import claimed, holder

log = logging.getLogger(__name__)

LOCK_NAME = "rmpipe-flow.lock"


class PipelineLocked(RuntimeError):
    """Another pipeline run held the project lock for longer than we were willing to wait."""


def lock_path(root: Path) -> Path:
    """The lock file: inside `.dvc/tmp`, which DVC keeps out of git."""
    return root / ".dvc" / "tmp" / LOCK_NAME


def owner_path(root: Path) -> Path:
    """Who holds the lock (pid, host, since when), for the message of a run that waits."""
    return lock_path(root).with_name(LOCK_NAME + ".owner")


@contextmanager
def project_lock(root: Path, timeout: float, run_label: str = "") -> Iterator[Path]:
    """Hold the project's pipeline lock; wait at most `timeout` seconds for it."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning(
            "another pipeline run holds %s (%s); waiting up to %gs",
            path,
            holder(owner_path(root)),
            timeout,
        )
        try:
            lock.acquire(timeout=timeout, poll_interval=0.5)
        except Timeout:
            who = holder(owner_path(root))
            raise PipelineLocked(
                f"another pipeline run of {root} is in progress ({who}; lock {path}). "
                f"Gave up after waiting {timeout:g}s. Wait for it to finish, or raise "
                "--lock-timeout / RMPIPE_LOCK_TIMEOUT to wait longer."
            ) from None
    try:
        with claimed(owner_path(root), run=run_label):
            yield path
    finally:
        lock.release()
