"""Apply a params file and `key=value` overrides to the project's params.yaml for one run.

The DVC way, as `dvc exp run --set-param` does it: the values land in the workspace's
params.yaml (comments and layout kept by ruamel.yaml), so `dvc.lock` records them for each
stage that reads them and the stages (and their MLflow runs) see exactly what DVC tracked.
Unlike `dvc exp run`, a pipeline run puts the project's own params.yaml back when it ends
(`run_params`), so the next run (a scheduled one) starts from the committed params.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

# The override syntax is rmcore's, so `rmpipe <stage> --set` and `rmpipe run --set` agree.
from rmcore.core.overrides import ParamsError, parse_override, set_param

__all__ = ["ParamsError", "apply_params", "merge_params", "parse_override", "run_params"]

PARAMS_FILE = "params.yaml"

# Checks the merged params (a plain dict) before they are written; raises on bad values.
Validator = Callable[[dict[str, Any], str], Any]


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps comments, key order and scalar spelling
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096
    # `null` stays `null` (ruamel would write an empty value)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _load(path: Path) -> Any:
    try:
        data = _yaml().load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = _yaml().load("{}")
    if not isinstance(data, MutableMapping):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def _dump(data: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _plain(data: Any) -> dict[str, Any]:
    """ruamel's commented containers as plain Python values (for validators)."""
    import yaml

    plain = yaml.safe_load(_dump(data))
    return plain if isinstance(plain, dict) else {}


def merge_params(
    root: Path,
    params_file: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    validate: Validator | None = None,
) -> tuple[str | None, list[str]]:
    """The text `root/params.yaml` should have for a run, and a line per changed value.

    `params_file` (if given) replaces params.yaml's content; `overrides` are then applied on
    top. The merged params are validated here. The text is None when params.yaml already
    holds these values (nothing to write).
    """
    target = root / PARAMS_FILE
    overrides = list(overrides)
    if params_file is None and not overrides:
        return None, []  # params.yaml as it is: not even re-written
    source = Path(params_file) if params_file else target
    if not source.is_absolute() and not source.exists():
        source = root / source
    data = _load(source)
    changes: list[str] = []
    for override in overrides:
        key, old, new = set_param(data, override, str(source))
        changes.append(f"{key}: {old!r} -> {new!r}")
    values = _plain(data)
    if target.exists() and values == _plain(_load(target)):
        return None, []  # same values: the file (and its spelling of them) stays as it is
    if validate is not None:
        validate(values, str(target))
    if source.resolve() != target.resolve():
        changes.insert(0, f"params.yaml <- {source}")
    return _dump(data), changes


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (a hidden sibling, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def apply_params(
    root: Path,
    params_file: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    validate: Validator | None = None,
) -> list[str]:
    """Make `root/params.yaml` the merged params for good; return a line per changed value.

    The merged params are validated before anything is written, and the file is replaced
    atomically, so a rejected run leaves params.yaml as it was. A pipeline run uses
    `run_params`, which puts the file back when the run ends.
    """
    text, changes = merge_params(root, params_file, overrides, validate)
    if text is not None:
        _replace(root / PARAMS_FILE, text.encode("utf-8"))
    return changes


# A run's params last for that run only. Before writing them, the run records the project's
# own params.yaml here (inside `.dvc/tmp`, which DVC keeps out of git); it puts the file back
# when it ends, and the next run puts it back first if a run was killed before it could.
ORIGINAL_NAME = "rmpipe-params.original.json"


def original_path(root: Path) -> Path:
    """Where a run keeps the params.yaml it replaced, until it has put it back."""
    return root / ".dvc" / "tmp" / ORIGINAL_NAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def restore_params(root: Path) -> str | None:
    """Put back the params.yaml a run replaced; None when no run left one to put back.

    Byte for byte, as recorded before the run wrote its own. If params.yaml was edited since
    the run wrote it (it is neither the run's nor the original), the edit is kept and the
    message says so.
    """
    side = original_path(root)
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
        original = record["original"]
        written = record["written_sha256"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ParamsError(
            f"{side}: unreadable record of the original params.yaml ({exc}); check "
            f"{root / PARAMS_FILE} against git (git diff params.yaml), then delete {side}"
        ) from None
    target = root / PARAMS_FILE
    current = _read_bytes(target)
    before = None if original is None else original.encode("utf-8")
    if current is not None and current != before and _sha256(current) != written:
        side.unlink()
        return f"{target} was edited during the run: kept as it is, not restored"
    if before is None:
        target.unlink(missing_ok=True)
    elif current != before:
        _replace(target, before)
    side.unlink()
    return f"{target} restored to the project's own params"


@contextmanager
def run_params(
    root: Path,
    params_file: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    validate: Validator | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Iterator[list[str]]:
    """params.yaml holds the run's params inside the block, the project's own after it.

    First puts back what a killed run left; then records the file, writes the merged params
    and yields the changed values; restores the file however the block ends. Hold the
    project lock (flows/lock.py) around it: the file is the project's, one run at a time.
    """
    if recovered := restore_params(root):
        log(f"a previous run did not end cleanly: {recovered}")
    text, changes = merge_params(root, params_file, overrides, validate)
    if text is None:
        yield changes
        return
    target = root / PARAMS_FILE
    before = _read_bytes(target)
    record = {
        "original": None if before is None else before.decode("utf-8"),
        "written_sha256": _sha256(text.encode("utf-8")),
    }
    side = original_path(root)
    side.parent.mkdir(parents=True, exist_ok=True)
    _replace(side, json.dumps(record).encode("utf-8"))
    try:
        _replace(target, text.encode("utf-8"))
        yield changes
    finally:
        if restored := restore_params(root):
            log(restored)
