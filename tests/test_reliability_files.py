"""Files as users have them: JSON with a UTF-8 byte-order mark, and `checkpoints/` as a
symbolic link or a mount point."""

from __future__ import annotations

import codecs
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from rmcore import stages
from rmcore.core.paths import Layout
from rmcore.data.readers import read_file
from tests.tiny import make_tiny_bert, tiny_params, write_synthetic

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


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    base = tmp_path_factory.mktemp("checkpoints")
    params = tiny_params(
        make_tiny_bert(base / "bert"), train={"max_steps": 2, "batch_size": 4, "save_every": 1}
    )
    layout = Layout(base / "project")
    write_synthetic(layout, n_train=16, n_val=4, n_test=4)
    stages.tokenize(params, layout)
    return params, layout.root


def _stale(directory: Path) -> None:
    """What a run of other params leaves: a checkpoint and a latest.json with another key."""
    (directory / "step-000005").mkdir(parents=True)
    (directory / "step-000005" / "model.safetensors").write_bytes(b"old")
    (directory / "latest.json").write_text('{"dir": "step-000005", "key": "other", "step": 5}')


@pytest.mark.usefixtures("one_thread")
def test_checkpoints_as_a_symbolic_link_are_emptied_not_removed(
    tokenized: tuple[Any, Path], tmp_path: Path
) -> None:
    params, source = tokenized
    layout = Layout(tmp_path / "project")
    shutil.copytree(source, layout.root)
    elsewhere = tmp_path / "big-disk" / "checkpoints"
    _stale(elsewhere)
    layout.checkpoints.symlink_to(elsewhere, target_is_directory=True)
    stages.train(params, layout)
    assert layout.model_dir.is_dir()
    assert layout.checkpoints.is_symlink() and layout.checkpoints.resolve() == elsewhere
    assert list(elsewhere.iterdir()) == []  # stale and finished checkpoints gone


@pytest.mark.usefixtures("one_thread")
def test_checkpoints_as_a_mount_point_are_emptied_not_removed(
    tokenized: tuple[Any, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount point cannot be removed (EBUSY); pretend the directory is one."""
    params, source = tokenized
    layout = Layout(tmp_path / "project")
    shutil.copytree(source, layout.root)
    _stale(layout.checkpoints)
    mount = str(layout.checkpoints)
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) == mount or real_ismount(p))
    stages.train(params, layout)
    assert layout.model_dir.is_dir()
    assert layout.checkpoints.is_dir() and list(layout.checkpoints.iterdir()) == []
