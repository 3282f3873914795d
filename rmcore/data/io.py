"""Reading and writing the normalised splits (`data/normalized/<split>.parquet`)."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from rmcore.core.atomic import atomic_path
from rmcore.core.integrity import FILESYSTEM_ERRNOS, damaged
from rmcore.core.paths import Layout
from rmcore.data.records import IngestError
from rmcore.data.schema import GROUP_SCHEMA, SPLITS, RankedGroup


def groups_table(groups: Iterable[RankedGroup]) -> pa.Table:
    """Groups as an Arrow table with the canonical schema."""
    return pa.Table.from_pylist([g.to_row() for g in groups], schema=GROUP_SCHEMA)


def write_splits(groups: list[RankedGroup], layout: Layout) -> dict[str, int]:
    """Write one Parquet file per split (empty splits too); return groups per split."""
    layout.normalized.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        rows = [g for g in groups if g.split == split]
        with atomic_path(layout.split_file(split)) as tmp:
            pq.write_table(groups_table(rows), tmp)
        counts[split] = len(rows)
    return counts


def read_split(layout: Layout, split: str) -> pa.Table:
    """One normalised split as an Arrow table with `GROUP_SCHEMA`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = layout.split_file(split)
    if not path.exists():
        raise IngestError(f"{path} does not exist; run the ingest stage first (dvc repro ingest)")
    try:
        return pq.read_table(path, schema=GROUP_SCHEMA)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
            raise  # the file system refused (exit status 3), not a damaged file
        raise damaged(path, exc, "data/normalized", "ingest") from exc
