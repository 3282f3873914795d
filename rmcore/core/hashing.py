"""Content hashes that identify what a stage made: a directory, evaluated groups, a config.

Stable across machines and runs (sorted, JSON-canonical), so equal hashes mean equal content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def directory_hash(path: Path) -> str:
    """sha256 of every file's relative path and bytes under `path` (sorted, stable)."""
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}; run the train stage first")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def groups_hash(group_ids: Iterable[str], ranks: Iterable[Iterable[int]]) -> str:
    """sha256 of the evaluated groups: their ids (hashes of source, prompt, completions) + ranks.

    Independent of the tokenizer, so two models are compared on the same data exactly when
    this hash matches.
    """
    lines = sorted(
        f"{g}\t{json.dumps([int(r) for r in rs])}" for g, rs in zip(group_ids, ranks, strict=True)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-able parts (params sections, data identity, world size)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
