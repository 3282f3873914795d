"""Reading and writing the normalised splits (`data/normalized/<split>.parquet`).

The splits are written group by group (`SplitWriter`) and read batch by batch
(`iter_split_batches`), so neither holds a whole split in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rmcore.core.atomic import atomic_path, io_error
from rmcore.core.integrity import FILESYSTEM_ERRNOS, damaged
from rmcore.core.paths import Layout
from rmcore.data.records import IngestError
from rmcore.data.schema import GROUP_SCHEMA, SPLITS, RankedGroup

ROWS_PER_WRITE = 10_000  # groups buffered per split before a Parquet row group is written
HELD = "prompt_hash"
HELD_SCHEMA = GROUP_SCHEMA.append(pa.field(HELD, pa.binary()))  # a group waiting for its split


def groups_table(groups: Iterable[RankedGroup]) -> pa.Table:
    """Groups as an Arrow table with the canonical schema."""
    return pa.Table.from_pylist([g.to_row() for g in groups], schema=GROUP_SCHEMA)


class RowsWriter:
    """Rows written to one Parquet file in row groups of `ROWS_PER_WRITE` rows. A file of one
    row group is written whole at `close` by `pq.write_table` (so a small split is the file it
    always was); a write error names `shown` (the file's final path)."""

    def __init__(
        self, path: Path, schema: pa.Schema, rows: int | None = None, shown: Path | None = None
    ) -> None:
        self.path = path
        self.shown = shown or path
        self.schema = schema
        self.rows = rows or ROWS_PER_WRITE
        self.count = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self.touched = False  # whether a write was tried

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.rows:
            self.touched = True
            with self._naming_errors():
                if self._writer is None:
                    self._writer = pq.ParquetWriter(self.path, self.schema)
                self._writer.write_table(self._table())

    def _table(self) -> pa.Table:
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        self.count += len(self._buffer)
        self._buffer = []
        return table

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.touched = True
        with self._naming_errors():
            if self._writer is None:
                pq.write_table(self._table(), self.path)
                return
            if self._buffer:
                self._writer.write_table(self._table())
            self._writer.close()

    def abandon(self) -> None:
        """Stop without writing what is buffered (the file is about to be removed)."""
        self._closed = True
        if self._writer is not None:
            with suppress(Exception):  # the error that stopped the writing matters more
                self._writer.close()

    @contextmanager
    def _naming_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            named = io_error(exc, self.shown)
            if named is None or named is exc:
                raise
            raise named from exc


class SplitWriter:
    """The three Parquet splits, written as groups arrive and moved into place together on
    `commit`; leaving the block without `commit` (an error, or a failed ingest) leaves the
    previous splits as they were."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.groups = dict.fromkeys(SPLITS, 0)
        self.pairs = dict.fromkeys(SPLITS, 0)
        self._stack = ExitStack()
        self._writers: dict[str, RowsWriter] = {}
        self._done = False
        self._made: list[Path] = []
        self._held: RowsWriter | None = None
        self._held_path = layout.normalized / ".held.parquet"

    def __enter__(self) -> SplitWriter:
        return self

    def _open(self) -> None:
        """Start the files at the first group (an ingest stopped before writes nothing)."""
        folder = self.layout.normalized
        self._made = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            path = self.layout.split_file(split)
            tmp = self._stack.enter_context(atomic_path(path))
            self._writers[split] = RowsWriter(tmp, GROUP_SCHEMA, shown=path)

    def hold(self, row: dict[str, Any]) -> None:
        """Keep a group (a row of `HELD_SCHEMA`) in a temporary file until `held`."""
        if not self._writers:
            self._open()
        if self._held is None:
            self._held = RowsWriter(self._held_path, HELD_SCHEMA)
        self._held.add(row)

    def held(self) -> Iterator[dict[str, Any]]:
        """The groups kept by `hold`, in order."""
        if self._held is None:
            return
        self._held.close()
        held = pq.ParquetFile(self._held_path, pre_buffer=False)
        for batch in held.iter_batches(batch_size=ROWS_PER_WRITE):
            yield from batch.to_pylist()

    def add(self, row: dict[str, Any], pairs: int) -> None:
        """One group as a row of `GROUP_SCHEMA` (its `split` set), with its pair count."""
        if not self._writers:
            self._open()
        split = row["split"]
        self._writers[split].add(row)
        self.groups[split] += 1
        self.pairs[split] += pairs

    def commit(self) -> None:
        if not self._writers:
            self._open()
        self._done = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed: BaseException | None = None
        if kind is None and not self._done:  # nothing to finish: the splits are not wanted
            exc = _NotCommitted()
            kind, tb = type(exc), None
        if kind is None:
            try:
                for writer in self._writers.values():
                    writer.close()
            except BaseException as error:  # a write error: nothing is moved into place
                failed, kind, exc, tb = error, type(error), error, error.__traceback__
        if kind is not None:
            for writer in self._writers.values():
                writer.abandon()
        if self._held is not None:
            self._held.abandon()
            with suppress(OSError):
                self._held_path.unlink(missing_ok=True)
        writers = [*self._writers.values(), *([self._held] if self._held else [])]
        wrote = any(writer.touched for writer in writers)
        try:
            self._stack.__exit__(kind, exc, tb)  # removes the temporary files unless committed
        finally:
            if kind is not None and not wrote:
                for folder in self._made:  # an ingest stopped before writing leaves nothing
                    with suppress(OSError):
                        folder.rmdir()
        if failed is not None:
            raise failed


class _NotCommitted(Exception):
    """Leaves the splits as they were (the atomic writes are abandoned)."""


def iter_split_batches(
    layout: Layout, split: str, columns: list[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """`columns` of one normalised split, `batch_size` groups at a time."""
    parquet = _open_split(layout, split)
    path = layout.split_file(split)
    try:
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(path, exc) from exc


def split_rows(layout: Layout, split: str) -> int:
    """Groups in one normalised split (from the Parquet footer)."""
    return int(_open_split(layout, split).metadata.num_rows)


def _open_split(layout: Layout, split: str) -> pq.ParquetFile:
    path = _split_path(layout, split)
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps what it read
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(path, exc) from exc
    if not parquet.schema_arrow.equals(GROUP_SCHEMA):
        raise damaged(path, "not the schema of a normalised split", "data/normalized", "ingest")
    return parquet


def _split_path(layout: Layout, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = layout.split_file(split)
    if not path.exists():
        raise IngestError(f"{path} does not exist; run the ingest stage first (dvc repro ingest)")
    return path


def _unreadable(path: Path, exc: Exception) -> Exception:
    if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
        return exc  # the file system refused (exit status 3), not a damaged file
    return damaged(path, exc, "data/normalized", "ingest")


def read_split(layout: Layout, split: str) -> pa.Table:
    """One normalised split as an Arrow table with `GROUP_SCHEMA`."""
    path = _split_path(layout, split)
    try:
        return pq.read_table(path, schema=GROUP_SCHEMA)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
            raise  # the file system refused (exit status 3), not a damaged file
        raise damaged(path, exc, "data/normalized", "ingest") from exc
