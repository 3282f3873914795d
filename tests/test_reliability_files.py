"""Files as users have them: JSON with a UTF-8 byte-order mark, and `checkpoints/` as a
symbolic link or a mount point."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from rmcore.data.readers import read_file

RECORDS = [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}, {"prompt": "Bye?"}]


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.jsonl", _jsonl(RECORDS)),
        ("a.json", json.dumps(RECORDS, indent=1).encode()),
        ("a.json", _jsonl(RECORDS)),  # JSON lines in a .json file
        ("a.json", json.dumps(RECORDS[0]).encode()),  # one object
        ("a.jsonl.gz", gzip.compress(codecs.BOM_UTF8 + _jsonl(RECORDS))),
    ],
    ids=["jsonl", "json-array", "json-lines", "json-object", "jsonl-gz"],
)
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_record(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(content)
        plain = gzip.decompress(content).removeprefix(codecs.BOM_UTF8)
    else:
        path.write_bytes(codecs.BOM_UTF8 + content)
        plain = content
    got = [(ref.line, record) for ref, record in read_file(path, name, [])]
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / name.removesuffix(".gz")).write_bytes(plain)
    want = [
        (ref.line, record)
        for ref, record in read_file(tmp_path / "plain" / name.removesuffix(".gz"), name, [])
    ]
    assert got == want and isinstance(got[0][1], dict) and got[0][1]["prompt"] == "Hi?"
