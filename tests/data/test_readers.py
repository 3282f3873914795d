from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmcore.data.readers import expand_path, read_file
from rmcore.data.records import IngestError, RecordError
from tests.data.helpers import write_jsonl


def _records(path: Path, required: list[str] | None = None) -> list:
    return list(read_file(path, path.name, required or []))


def test_jsonl_lines_skip_blanks_and_count_from_one(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n\n{"x": 2}\n')
    refs = [ref for ref, _ in _records(path)]
    assert [(r.position, r.line) for r in refs] == [(0, 1), (1, 3)]


def test_gzip_jsonl_reads_like_plain(tmp_path: Path) -> None:
    rows = [{"x": i} for i in range(3)]
    plain = _records(write_jsonl(tmp_path / "a.jsonl", rows))
    packed = _records(write_jsonl(tmp_path / "b.jsonl.gz", rows, gz=True))
    assert [r for _, r in plain] == [r for _, r in packed] == rows


def test_json_array_gives_each_record_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"x": 1}, {"x": 2}, 3], indent=1))
    items = _records(path)
    assert [ref.line for ref, _ in items] == [2, 5, 8]
    assert isinstance(items[2][1], RecordError)
    assert items[2][1].rejection.reason == "not_an_object"


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"x": 1}\n{"x": 2}\n')
    assert [r for _, r in _records(path)] == [{"x": 1}, {"x": 2}]


def test_json_file_holding_one_object_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('\n{\n  "x": 1,\n  "y": [1, 2]\n}\n')
    assert [(ref.line, r) for ref, r in _records(path)] == [(2, {"x": 1, "y": [1, 2]})]


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffq,a\nx,1\n".encode())
    assert [r for _, r in _records(path, ["q"])] == [{"q": "x", "a": "1"}]


def test_csv_rows_are_strings_with_start_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('q,a\n"multi\nline",1\nz,2\n')
    items = _records(path, ["q", "a"])
    assert [ref.line for ref, _ in items] == [2, 4]
    assert items[0][1] == {"q": "multi\nline", "a": "1"}


def test_parquet_rows_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"q": ["x", "y"], "n": [1, 2]}), path)
    assert [r for _, r in _records(path, ["q"])] == [{"q": "x", "n": 1}, {"q": "y", "n": 2}]
    with pytest.raises(IngestError, match=r"a\.parquet: no column 'z'"):
        _records(path, ["z"])


def test_unknown_extension_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(IngestError, match=r"unknown file type"):
        _records(path)


def test_directory_and_glob_errors(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IngestError, match="is a directory"):
        expand_path("d", tmp_path)
    (tmp_path / "d" / "b.jsonl").write_text("{}\n")
    (tmp_path / "d" / "a.jsonl").write_text("{}\n")
    assert [p.name for p in expand_path("d/*.jsonl", tmp_path)] == ["a.jsonl", "b.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("{}\n")
    path.chmod(0)
    with pytest.raises(IngestError, match=r"a\.jsonl: permission denied"):
        _records(path)


def test_permission_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where tests run as root, the permission check is simulated."""
    path = tmp_path / "a.jsonl"
    path.write_text("{}\n")
    monkeypatch.setattr(os, "access", lambda *args: False)
    with pytest.raises(IngestError, match=r"cannot read a\.jsonl: permission denied"):
        _records(path)


def test_truncated_gzip_midway_is_a_file_error(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b'{"x": %d}\n' % i for i in range(5000)))
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="truncated or corrupt"):
        _records(path)
