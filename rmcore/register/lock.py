"""One registration at a time per MLflow store.

Two `rmpipe register` runs against the same store (two schedules, a retry beside a manual
run) would both find no version of their model and register it twice, and one could delete the
other's not-yet-validated version as a leftover of a killed run. An OS file lock (`flock`)
around the whole registration serialises them: the second waits, then finds the first one's
validated version and reuses it. The OS releases the lock when its holder dies, so a killed
registration never blocks the next one.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rmcore.register.candidate import RegistrationError

log = logging.getLogger(__name__)

LOCK_WAIT_S = 1800.0  # how long a registration waits for another one to the same store


def lock_path(tracking_uri: str) -> Path:
    """Beside a SQLite store (so every project using that file shares it); for a server, in
    the temporary directory, one per URI (registrations from this machine)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :].split("?")[0] + ".lock")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rmpipe-register-{digest}.lock"


@contextmanager
def exclusive_registration(tracking_uri: str, wait_s: float = LOCK_WAIT_S) -> Iterator[Path]:
    """Hold the store's registration lock for the block, waiting up to `wait_s` for it."""
    path = lock_path(tracking_uri)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another registration to this store is running; waiting for %s", path)
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise RegistrationError(
                f"another `rmpipe register` has held {path} for {wait_s:.0f} s; let it finish "
                "(look for `rmcore register` processes), then run register again"
            ) from None
    try:
        yield path
    finally:
        lock.release()
