"""Files handed from one stage to the next that are missing, truncated or not what they
should be (a disk that filled up under another tool, a copy cut short, a hand edit).

Reading such a file fails deep inside pyarrow, datasets or safetensors with a message that
names neither the file nor the way out. The readers turn it into `DamagedFile`: a ConfigError,
so the CLI prints one line and exits with status 2 (a retry reads the same bytes), naming the
file and the command that restores it.
"""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path

from rmcore.core.config import ConfigError

# What rmcore.__main__ reports as the file system refusing (exit status 3): a reader that meets
# one of these re-raises it instead of calling the file damaged.
FILESYSTEM_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EIO,
    }
)
HEADER_BYTES = 8  # a safetensors file starts with the header's length, little-endian u64


class DamagedFile(ConfigError):
    """A stage's input that cannot be read as what it should be; the message says how to
    restore it."""


def restore_hint(output: str, stage: str) -> str:
    """How to get a DVC output back: from the cache, or by running its stage again."""
    return (
        f"restore it with `dvc checkout {output}` or rebuild it with `dvc repro -f {stage}` "
        f"(without DVC: `python -m rmcore {stage}`)"
    )


def damaged(path: str | Path, reason: object, output: str, stage: str) -> DamagedFile:
    """The error for `path` (part of DVC output `output` of `stage`) that could not be read."""
    why = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return DamagedFile(
        f"{path} is truncated or damaged ({why[:200]}); {restore_hint(output, stage)}"
    )


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (header unreadable, data cut short), or None.

    Reads the header only: the file must be exactly as long as its header says.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = handle.read(HEADER_BYTES)
        if len(start) < HEADER_BYTES:
            return f"{size} bytes, shorter than a safetensors header"
        (length,) = struct.unpack("<Q", start)
        if length > size - HEADER_BYTES:
            return f"header of {length} bytes in a file of {size}"
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return "header is not JSON"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    ends = [
        int(t["data_offsets"][1])
        for name, t in header.items()
        if name != "__metadata__" and isinstance(t, dict) and "data_offsets" in t
    ]
    expected = HEADER_BYTES + length + max(ends, default=0)
    if size != expected:
        return f"{size} bytes where its header describes {expected}"
    return None


def check_model_files(directory: Path, output: str, stage: str) -> None:
    """Raise DamagedFile for the first safetensors file in `directory` that is not whole."""
    for path in sorted(directory.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem is not None:
            raise damaged(path, problem, output, stage)


def empty_split(path: str | Path, split: str, report: str | Path) -> ConfigError:
    """The error for a stage that needs groups in `split` and found none at `path`."""
    return ConfigError(
        f"{path} has no groups: the ingest put none in the {split} split (see {report}); add "
        f"data or give the split a larger share (data.split.{split} in params.yaml), then run "
        "`dvc repro`"
    )
