"""Outputs written whole or not at all.

A stage killed mid-write (SIGKILL, disk full, power cut of the process) must not leave a
truncated `metrics/eval.json` or Parquet split that the next stage reads as a good one. Every
output is written to a hidden sibling (`.<name>.tmp`) and renamed onto its path only once it is
complete: `os.replace` is atomic on POSIX, so readers see the old output or the new one.

The temporary name is fixed, so the leftover of a killed run is overwritten by the next one
(and DVC removes stage outputs before it runs a stage anyway).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

NULL_REASONS = "null_reasons"  # the key listing the values written as null, and why


def temp_sibling(path: Path) -> Path:
    """Where `path` is written before it is moved into place."""
    return path.with_name(f".{path.name}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap(tmp: Path, path: Path) -> None:
    """Move `tmp` onto `path`; a directory replaces a directory (old one removed after)."""
    if not (tmp.is_dir() and path.is_dir()):
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.old")
    _remove(old)
    os.replace(path, old)  # between these two renames `path` is absent, never partial
    os.replace(tmp, path)
    _remove(old)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write one file or directory into.

    When the block ends normally it replaces `path`; when it raises, it is removed and `path`
    is left as it was. An OSError without a file name (a failed `write()`), or one a library
    reported in words, gets `path` (`io_error`), so disk-full and permission errors name the
    output they hit.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        _swap(tmp, path)
    except BaseException as exc:
        _remove_quietly(tmp)
        named = io_error(exc, path)
        if named is not None and named is not exc:
            raise named from exc
        raise


_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust libraries (safetensors) report errno
# torch.save's writer reports a failed write() without its errno, in one of these words.
_TORCH_WRITE_FAILED = re.compile(
    r"PytorchStreamWriter failed writing|inline_container\.cc.*(file write failed|unexpected pos)"
)
LOW_SPACE_BYTES = 16 << 20  # a write that failed with less than this left: the disk was full


def io_error(exc: BaseException, path: str | Path) -> OSError | None:
    """`exc` as an OSError that names a path: itself when it names one; a copy naming `path`
    when it has an errno but no file name (a failed `write()`), or when a library reported
    an OS error in words (safetensors: "I/O error: No space left on device (os error 28)");
    None when it is no OS error."""
    if isinstance(exc, OSError):
        if exc.filename is None and exc.errno is not None:
            return OSError(exc.errno, exc.strerror or str(exc), str(path))
        return exc
    if not isinstance(exc, Exception):
        return None
    match = _OS_ERROR.search(str(exc))
    if match is not None:
        code = int(match.group(1))
    elif _TORCH_WRITE_FAILED.search(str(exc)):
        code = _why_a_write_failed(Path(path))
    else:
        return None
    return OSError(code, os.strerror(code), str(path))


def _why_a_write_failed(path: Path) -> int:
    """The likely errno of a write under `path` that failed without one: a full disk, the
    file size limit (`ulimit -f`), else an I/O error."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    with suppress(OSError):
        if shutil.disk_usage(existing).free < LOW_SPACE_BYTES:
            return errno.ENOSPC
    if resource is not None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            return errno.EFBIG
    return errno.EIO


def _remove_quietly(path: Path) -> None:
    with suppress(OSError):  # the original error matters more than a failed clean-up
        _remove(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically, flushed to disk before the rename.

    A path that is neither a file nor a directory (`/dev/stdout`, a named pipe) is written
    directly: renaming onto it would replace the device or pipe itself.
    """
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        return path
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def finite(data: Any, where: str = "", reasons: dict[str, str] | None = None) -> Any:
    """`data` with each NaN or infinite float replaced by None; `reasons` gets the dotted key of
    each one and what it was ("NaN", "inf", "-inf")."""
    if isinstance(data, dict):
        return {k: finite(v, f"{where}{k}.", reasons) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v, f"{where}{i}.", reasons) for i, v in enumerate(data)]
    if isinstance(data, float) and not math.isfinite(data):
        if reasons is not None:
            reasons[where.rstrip(".")] = "NaN" if math.isnan(data) else repr(data)
        return None
    return data


def json_text(data: dict[str, Any]) -> str:
    """Strict JSON (no NaN or Infinity, which JSON parsers reject) of a metrics mapping: each
    non-finite value is written as null and listed under `null_reasons` with what it was."""
    reasons: dict[str, str] = {}
    safe = finite(data, "", reasons)
    if reasons:
        safe[NULL_REASONS] = {key: f"was {what}" for key, what in reasons.items()}
    return json.dumps(safe, indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a metrics mapping to `path` atomically as strict JSON (see `json_text`)."""
    return write_text(path, json_text(data))
