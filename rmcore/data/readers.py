"""Read records from local files (jsonl, json, csv, parquet; optionally .gz) and hub datasets.

Readers yield `(RecordRef, record)` where record is a dict, or a `RecordError` for a record that
could not be parsed (a malformed line never stops the run). A file that cannot be read at all
raises `IngestError` naming the file and what to do.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import logging
import os
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

from rmcore.data.records import IngestError, RecordError, RecordRef

log = logging.getLogger(__name__)

RawRecord = tuple[RecordRef, dict[str, Any] | RecordError]
FILE_TYPES = (".jsonl", ".json", ".csv", ".parquet")
_GLOB_CHARS = set("*?[")


def expand_path(pattern: str, root: Path) -> list[Path]:
    """Files matching a path or glob (relative to the project root); error if none."""
    full = pattern if os.path.isabs(pattern) else str(root / pattern)
    if _GLOB_CHARS & set(pattern):
        files = sorted(Path(p) for p in glob.glob(full, recursive=True) if os.path.isfile(p))
        if not files:
            raise IngestError(
                f"data source `{pattern}` matches no file (looked in {root.resolve()}); "
                "check the path in params.yaml"
            )
        return files
    path = Path(full)
    if not path.exists():
        raise IngestError(
            f"data file not found: {pattern} (looked in {root.resolve()}); "
            "check data.sources[].path in params.yaml"
        )
    if path.is_dir():
        raise IngestError(f"{pattern} is a directory; give a file or a glob such as {pattern}/*")
    return [path]


def file_type(path: Path) -> str:
    """The record format of a file from its name: .jsonl, .json, .csv or .parquet."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext in FILE_TYPES:
        if name.endswith(ext):
            return ext
    raise IngestError(
        f"{path}: unknown file type; name it *{', *'.join(FILE_TYPES)} (optionally .gz)"
    )


def _cannot_read(shown: str, exc: BaseException) -> IngestError:
    if isinstance(exc, FileNotFoundError):
        what = "file not found; check the path"
    elif isinstance(exc, PermissionError):
        what = "permission denied; make the file readable (chmod +r) or copy it"
    elif isinstance(exc, gzip.BadGzipFile):
        what = "not gzip-compressed although named .gz; rename it or compress it"
    elif isinstance(exc, (EOFError, zlib.error)):
        what = "the gzip stream is truncated or corrupt; download the file again"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return IngestError(f"cannot read {shown}: {what}")


def _open_binary(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb")


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        with _open_binary(path) as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(shown, exc) from None


def _parse_line(raw: bytes) -> dict[str, Any] | RecordError:
    shown = raw.decode("utf-8", errors="replace").rstrip("\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"byte {raw[exc.start]:#04x} at offset {exc.start}"
        return RecordError("not_utf8", None, detail, raw=shown)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError("malformed_json", None, f"{exc.msg} at column {exc.colno}", raw=shown)
    if not isinstance(value, dict):
        return RecordError("not_an_object", None, f"got a JSON {type(value).__name__}", raw=shown)
    return value


def read_jsonl(path: Path, shown: str) -> Iterator[RawRecord]:
    """One record per non-blank line; blank lines are not records."""
    index = 0
    try:
        with _open_binary(path) as handle:
            for line_no, raw in enumerate(handle, start=1):
                if line_no == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)  # as editors on Windows save it
                if not raw.strip():
                    continue
                yield RecordRef(shown, index, line_no), _parse_line(raw)
                index += 1
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(shown, exc) from None


def read_json(path: Path, shown: str) -> Iterator[RawRecord]:
    """A JSON array of objects (or JSON lines in a .json file), with each record's line."""
    data = _read_bytes(path, shown).removeprefix(codecs.BOM_UTF8)
    if not data.lstrip().startswith(b"["):
        yield from _object_or_lines(data, shown)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(f"{shown}, line {line}: not UTF-8; re-encode the file as UTF-8") from None
    decoder = json.JSONDecoder()
    pos, line, counted, index = text.index("[") + 1, 1, 0, 0
    while True:
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == "]":
            return
        start = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"{shown}, line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg}); "
                "a JSON array cannot be read past an error: repair the file, or convert it to "
                "JSON lines (.jsonl) so that bad records are quarantined one by one"
            ) from None
        line += text.count("\n", counted, start)
        counted = start
        record = (
            value
            if isinstance(value, dict)
            else RecordError("not_an_object", None, f"got a JSON {type(value).__name__}")
        )
        yield RecordRef(shown, index, line), record
        index += 1
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            raise IngestError(f"{shown}, line {line}: expected `,` or `]` after a record")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _object_or_lines(data: bytes, shown: str) -> Iterator[RawRecord]:
    """A .json file that is not an array: one (possibly multi-line) object, or JSON lines."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        yield from _jsonl_from_bytes(data, shown)
        return
    line = data[: len(data) - len(data.lstrip())].count(b"\n") + 1
    record = value if isinstance(value, dict) else RecordError("not_an_object", None, "")
    yield RecordRef(shown, 0, line), record


def _jsonl_from_bytes(data: bytes, shown: str) -> Iterator[RawRecord]:
    index = 0
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if raw.strip():
            yield RecordRef(shown, index, line_no), _parse_line(raw)
            index += 1


def read_csv(path: Path, shown: str, required: list[str]) -> Iterator[RawRecord]:
    """CSV with a header row; every value is a string. A missing column is a file error.

    Read row by row: a large file is never held whole."""
    try:
        with (
            _open_binary(path) as raw,
            io.TextIOWrapper(raw, "utf-8-sig", errors="surrogateescape", newline="") as text,
        ):
            yield from _csv_rows(csv.reader(text), shown, required)
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(shown, exc) from None


def _csv_rows(reader: Any, shown: str, required: list[str]) -> Iterator[RawRecord]:
    header = next(reader, None)
    if header is None:
        return
    missing = [name for name in required if name not in header]
    if missing:
        raise IngestError(
            f"{shown}: no column {', '.join(repr(m) for m in missing)} (columns: "
            f"{', '.join(header)}); the whole file is unusable: rename the column or set the "
            "source options to the column names"
        )
    index, line_end = 0, reader.line_num
    for row in reader:
        start, line_end = line_end + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        ref = RecordRef(shown, index, start)
        index += 1
        if len(row) != len(header):
            yield (
                ref,
                RecordError(
                    "wrong_field_count", None, f"{len(row)} cells, header has {len(header)}"
                ),
            )
            continue
        bad = [name for name, cell in zip(header, row, strict=True) if _has_surrogates(cell)]
        if bad:
            yield ref, RecordError("not_utf8", bad[0], "bytes that are not UTF-8")
            continue
        yield ref, dict(zip(header, row, strict=True))


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def read_parquet(path: Path, shown: str, required: list[str]) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        if path.name.lower().endswith(".gz"):
            parquet = pq.ParquetFile(io.BytesIO(_read_bytes(path, shown)))
        else:
            parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps what it read
    except IngestError:
        raise
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise _cannot_read(shown, exc) from None
    _check_columns(shown, parquet.schema_arrow.names, required)
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield RecordRef(shown, index), row
            index += 1


def _check_columns(shown: str, columns: list[str], required: list[str]) -> None:
    missing = [name for name in required if name not in columns]
    if missing:
        raise IngestError(
            f"{shown}: no column {', '.join(repr(m) for m in missing)} (columns: "
            f"{', '.join(columns)}); set the source options to the column names"
        )


def read_file(path: Path, shown: str, required: list[str]) -> Iterator[RawRecord]:
    """Records of one local file, by its type; `required` columns are checked for tables."""
    kind = file_type(path)
    if not os.access(path, os.R_OK):
        raise _cannot_read(shown, PermissionError())
    if kind == ".jsonl":
        return read_jsonl(path, shown)
    if kind == ".json":
        return read_json(path, shown)
    if kind == ".csv":
        return read_csv(path, shown, required)
    return read_parquet(path, shown, required)


def _offline_setting() -> str | None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return var
    return None


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub endpoint cannot be reached (a short TCP probe), or None if it can."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached within {timeout:g} s ({exc})"
    return None


_LOCAL_FILE_HINT = (
    "download the dataset files on a connected machine and point the source at them with "
    "`path:` (jsonl/json/csv/parquet, optionally .gz) instead of `hf:`"
)


def read_hub(name: str, config: str | None, split: str, required: list[str]) -> Iterator[RawRecord]:
    """Rows of a hub dataset (or a local dataset directory) via `datasets.load_dataset`.

    Offline, this fails in seconds: with HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set `datasets` only
    looks in its cache; without them a short probe of the hub replaces minutes of retries.
    """
    shown = f"hf:{name}" + (f"/{config}" if config else "") + f"[{split}]"
    offline = None if os.path.isdir(name) else _offline_setting()
    if not os.path.isdir(name) and offline is None:
        unreachable = hub_unreachable()
        if unreachable:
            raise IngestError(
                f"cannot load {shown}: the Hugging Face Hub is offline ({unreachable}). "
                "If the dataset is in the local Hugging Face cache, set HF_HUB_OFFLINE=1 to "
                f"use it; otherwise {_LOCAL_FILE_HINT}"
            )
    import datasets

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets raises many types; all mean "cannot load"
        hint = (
            f"{offline} is set (offline) and the dataset is not in the local cache; "
            + _LOCAL_FILE_HINT
            if offline
            else "check the name, hf_config and hf_split"
        )
        raise IngestError(f"cannot load {shown}: {type(exc).__name__}: {exc}; {hint}") from None
    _check_columns(shown, list(dataset.column_names), required)
    for index, row in enumerate(dataset):
        yield RecordRef(shown, index), row
