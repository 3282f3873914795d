"""Training checkpoints that survive a kill at any moment, and exact resume from them.

A checkpoint `checkpoints/step-NNNNNN/` holds accelerate's state (model as safetensors,
optimizer), each process's torch RNG state (safetensors) and `trainer_state.json` (loop
position, scheduler, metric history). It is written to a `.tmp-*` directory and renamed into
place; `latest.json` is then replaced atomically. A kill during a save leaves the previous
checkpoint as the latest; a checkpoint of other params or data (fingerprint) is not resumed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

LATEST = "latest.json"
STATE_FILE = "trainer_state.json"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _rng_file(directory: Path, rank: int) -> Path:
    return directory / f"rng_state_{rank}.safetensors"


def _save_rng(directory: Path, rank: int) -> None:
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = state
    save_file(tensors, str(_rng_file(directory, rank)))


def _load_rng(directory: Path, rank: int) -> None:
    path = _rng_file(directory, rank)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} missing: the checkpoint was written by fewer processes; resume with the "
            "same number of processes or delete checkpoints/ to start over"
        )
    tensors = load_file(str(path))
    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [tensors[f"cuda_{i}"] for i in range(torch.cuda.device_count())]
        )


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
        directory = self.root / info["dir"]
        if info.get("key") != self.key:
            log.warning("checkpoints in %s are of other params or data; starting over", self.root)
            return None
        if not (directory / STATE_FILE).is_file():
            raise FileNotFoundError(f"{path} points at {directory}, which is incomplete")
        return directory

    def reset(self) -> None:
        """Remove stale checkpoints (other params/data, or a finished run)."""
        if self.acc.is_main_process and self.root.exists():
            shutil.rmtree(self.root)
        self.acc.wait_for_everyone()

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write a checkpoint atomically from every process; returns its directory."""
        name = f"step-{step:06d}"
        tmp = self.root / f".tmp-{name}"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp), safe_serialization=True)
        _save_rng(tmp, self.acc.process_index)
        self.acc.wait_for_everyone()
        final = self.root / name
        if self.acc.is_main_process:
            _write_json_atomic(tmp / STATE_FILE, state)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            _write_json_atomic(self.root / LATEST, {"dir": name, "key": self.key, "step": step})
            for old in self.root.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
            self.prune_best(state.get("best_dir"))
        self.acc.wait_for_everyone()
        log.info("checkpoint %s", final)
        return final

    def load(self, directory: Path) -> dict[str, Any]:
        """Restore model, optimizer and RNG from `directory`; returns the trainer state."""
        self.acc.load_state(str(directory))
        _load_rng(directory, self.acc.process_index)  # after load_state, which sets its own
        state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        log.info("resumed from %s (step %d)", directory, state["step"])
        return state

    def save_best(self, step: int, save: Any) -> str:
        """Write `best-step-NNNNNN` atomically with what `save(dir)` writes; returns its name."""
        name = f"best-step-{step:06d}"
        if self.acc.is_main_process:
            tmp = self.root / f".tmp-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
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
