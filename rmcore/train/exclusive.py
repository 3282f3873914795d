"""One training per project at a time.

Two trainings of one project (a manual `rmpipe train` beside a scheduled run, or an orphan of
a killed `dvc repro`) would share `checkpoints/`: each would resume from, prune and finally
delete the other's checkpoints, and both would write `models/reward_model`. The main process
of a training holds an OS file lock for the whole run; a second training waits a few seconds
(for one that is just finishing), then stops with exit status 2, naming the holder's pid. The
OS releases the lock when its holder dies, so a killed training never blocks the next one. The
other processes of a distributed training (RANK > 0) share their main process's lock.

The lock file lives in the temporary directory, named after the real path of `checkpoints/`:
inside the project it would be deleted with the checkpoints of a finished run (while a second
training may wait on it) or show up in `git status`; and two projects whose `checkpoints/`
link to one directory share one lock, as they must.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rmcore.core.config import ConfigError
from rmcore.core.owner import claimed, holder

WAIT_S = 5.0


class TrainingLocked(ConfigError):
    """Another training of the same project is running."""


def lock_path(checkpoints: Path) -> Path:
    """The lock of the trainings that use `checkpoints` (wherever it really is)."""
    digest = hashlib.sha256(str(checkpoints.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rmpipe-train-{digest}.lock"


@contextmanager
def training_lock(checkpoints: Path, wait_s: float = WAIT_S) -> Iterator[Path]:
    """Hold the lock of `checkpoints` for the block; TrainingLocked when another training
    holds it for longer than `wait_s` seconds."""
    path = lock_path(checkpoints)
    owner = path.with_name(path.name + ".owner")  # who holds it (the lock file stays empty)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        yield path
        return
    lock = FileLock(path)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        who = holder(owner, "a process that has not said who it is")
        raise TrainingLocked(
            f"another training of this project is running ({who}; it holds {path} "
            f"for {checkpoints}); wait for it to finish or stop it, then run train again"
        ) from None
    try:
        with claimed(owner, checkpoints=str(checkpoints.resolve())):
            yield path
    finally:
        lock.release()
