"""Training checkpoints that survive a kill at any moment, and exact resume from them.

accelerate's state API does the saving and loading: `Accelerator.save_state` writes the model
(safetensors), the optimizer, every process's RNG states and the objects given to
`register_for_checkpointing` (the LR scheduler and the loop's `TrainState`); `load_state`
restores all of them. What this module adds: a checkpoint `checkpoints/step-NNNNNN/` is written
to `.tmp-step-NNNNNN/` and renamed into place, then `latest.json` is replaced atomically, so a
kill during a save leaves the previous checkpoint as the latest; and `latest.json` carries the
run's key (params, data, process count), so a checkpoint of another configuration is never
resumed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from accelerate import Accelerator

from rmcore.core.atomic import io_error

log = logging.getLogger(__name__)
# accelerate logs a line per file it saves or loads; one line per checkpoint (ours) is enough
logging.getLogger("accelerate.checkpointing").setLevel(logging.WARNING)

LATEST = "latest.json"


def _write_json_atomic(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def _removed_on_failure(tmp: Path, final: Path) -> Iterator[None]:
    """When the block fails (a full disk), remove `tmp`, so no half checkpoint stays behind,
    and let an OS error name `final`, so the CLI reports it in one line (exit status 3)."""
    try:
        yield
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        named = io_error(exc, final)
        if named is not None and named is not exc:
            raise named from exc
        raise


class Checkpoints:
    """The checkpoint directory of one training configuration (identified by `key`)."""

    def __init__(self, root: Path, key: str, accelerator: Accelerator) -> None:
        self.root = root
        self.key = key
        self.acc = accelerator

    def latest(self) -> Path | None:
        """The latest complete checkpoint of this configuration, if any."""
        path = self.root / LATEST
        if not path.is_file():
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
        if info.get("key") != self.key:
            log.warning("checkpoints in %s are of other params or data; starting over", self.root)
            return None
        directory = self.root / info["dir"]
        if not directory.is_dir():
            raise FileNotFoundError(f"{path} points at {directory}, which is missing")
        return directory

    def reset(self) -> None:
        """Remove stale checkpoints (other params/data, or a finished run). A `checkpoints/`
        that is a symbolic link or a mount point (room on another disk) is emptied instead:
        it cannot be removed, and must stay where the user put it."""
        if self.acc.is_main_process and self.root.exists():
            if self.root.is_symlink() or os.path.ismount(self.root):
                for entry in self.root.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            else:
                shutil.rmtree(self.root)
        self.acc.wait_for_everyone()

    def save(self, step: int, keep_best: str | None) -> Path:
        """Save the accelerator's whole state atomically (every process takes part)."""
        name = f"step-{step:06d}"
        tmp, final = self.root / f".tmp-{name}", self.root / name
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        with _removed_on_failure(tmp, final):
            self.acc.save_state(str(tmp), safe_serialization=True)
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            _write_json_atomic(self.root / LATEST, {"dir": name, "key": self.key, "step": step})
            for old in self.root.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
            self.prune_best(keep_best)
        self.acc.wait_for_everyone()
        log.info("checkpoint %s", final)
        return final

    def load(self, directory: Path) -> None:
        """Restore model, optimizer, RNG states and the registered objects from `directory`."""
        self.acc.load_state(str(directory))
        log.info("resumed from %s", directory)

    def save_best(self, step: int, save: Callable[[Path], None]) -> str:
        """Write `best-step-NNNNNN` atomically with what `save(dir)` writes; returns its name."""
        name = f"best-step-{step:06d}"
        if self.acc.is_main_process:
            tmp = self.root / f".tmp-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            with _removed_on_failure(tmp, self.root / name):
                save(tmp)
            shutil.rmtree(self.root / name, ignore_errors=True)
            os.replace(tmp, self.root / name)
        self.acc.wait_for_everyone()
        return name

    def prune_best(self, keep: str | None) -> None:
        """Delete best-model directories other than `keep` (main process)."""
        if self.acc.is_main_process:
            for old in self.root.glob("best-step-*"):
                if old.name != keep:
                    shutil.rmtree(old, ignore_errors=True)
