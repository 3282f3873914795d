"""The `rmpipe` command line: `run` (the flow), the stage commands' `--set` and `--root`,
`params`, `--version`, and the packaging split (core vs the `pipeline` extra)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows import cli
from rmcore.core.config import parse_params
from tests.conftest import REPO_ROOT

VALID: dict[str, Any] = {
    "data": {"sources": [{"path": "nowhere.jsonl", "format": "hh_rlhf"}]},
    "train": {"epochs": 1, "batch_size": 4},
}


def _project(path: Path, raw: dict[str, Any] = VALID) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _rmpipe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`rmpipe ARGV` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import rmcore

    status, out, _ = _rmpipe(capsys, "--version")
    assert status == 0
    assert out.split() == ["rmpipe", rmcore.__version__]
    assert rmcore.__version__ == importlib.metadata.version("rmpipe")


def test_help_lists_run_and_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _rmpipe(capsys, "--help")
    assert status == 0
    commands = re.search(r"\{([\w,]+)\}", out)
    assert commands is not None, out
    listed = set(commands[1].split(","))
    stages = {"ingest", "tokenize", "train", "evaluate", "register"}
    assert listed == {"run", "params", "score", "sample", *stages}


def test_run_help_is_the_flows_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _rmpipe(capsys, "run", "--help")
    assert status == 0
    assert out.startswith("usage: rmpipe run ")
    for option in ("--set", "--params", "--root", "--no-push", "--retries", "--no-validate"):
        assert f"  {option}" in out


def test_params_come_from_root_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here = _project(tmp_path / "cwd", {**VALID, "train": {"epochs": 1}})
    there = _project(tmp_path / "there", {**VALID, "train": {"epochs": 7}})
    monkeypatch.chdir(here)
    status, out, err = _rmpipe(capsys, "params", "--root", str(there))
    assert status == 0, err
    assert yaml.safe_load(out)["train"]["epochs"] == 7
    # a stage command too: ingest reads there/params.yaml, whose source is missing there
    (here / "nowhere.jsonl").write_text("{}\n", encoding="utf-8")
    status, _, err = _rmpipe(capsys, "ingest", "--root", str(there))
    assert status == 2
    assert "error: data file not found: nowhere.jsonl" in err


def test_params_prints_the_effective_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path)
    before = (root / "params.yaml").read_bytes()
    status, out, err = _rmpipe(
        capsys, "params", "--root", str(root), "--set", "train.lr=1e-4", "--set", "train.epochs=3"
    )
    assert status == 0, err
    printed = yaml.safe_load(out)
    # every section, defaults filled in, the YAML keys (`register`, not `registry`)
    assert set(printed) == {"data", "tokenize", "model", "loss", "train", "eval", "register"}
    assert printed["train"]["lr"] == pytest.approx(1e-4) and printed["train"]["epochs"] == 3
    assert printed["train"]["batch_size"] == 4  # the file's own value stays
    effective = parse_params(printed, "the printed params")
    assert effective.train.lr == pytest.approx(1e-4)
    assert yaml.safe_load(yaml.safe_dump(effective.model_dump(mode="json", by_alias=True))) == (
        printed
    )
    assert (root / "params.yaml").read_bytes() == before  # --set never rewrites the file


def test_params_file_option_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "root")
    other = _project(tmp_path / "elsewhere", {**VALID, "train": {"epochs": 5}}) / "params.yaml"
    monkeypatch.chdir(tmp_path)
    status, out, err = _rmpipe(
        capsys, "params", "--root", str(root), "--params", "elsewhere/params.yaml"
    )
    assert status == 0, err
    assert yaml.safe_load(out)["train"]["epochs"] == 5
    assert other.exists()


BAD_SETS = [
    ("train.epoch=2", "unknown key `train.epoch`; the keys of train: epochs, batch_size"),
    ("trian.epochs=2", "unknown key `trian`; the keys of the top level: data, tokenize"),
    ("+train.epoch=2", "unknown key `train.epoch`"),
    ("data.sources.0.colour=red", "unknown key `data.sources.0.colour`"),
    ("train.epochs.max=2", "`train.epochs` is a single value, not a section"),
    ("train.epochs=-1", "key `train.epochs`: Input should be greater than 0 (got -1)"),
    ("train.batch_size=true", "key `train.batch_size`"),
    ("train.epochs", "expected KEY=VALUE"),
]


@pytest.mark.parametrize(("override", "message"), BAD_SETS, ids=[b[0] for b in BAD_SETS])
@pytest.mark.parametrize("command", ["params", "train"])
def test_a_bad_set_stops_the_command_naming_the_key(
    command: str,
    override: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path / "project")
    before = (root / "params.yaml").read_bytes()
    status, out, err = _rmpipe(capsys, command, "--root", str(root), "--set", override)
    assert status == 2, err
    assert message in err and "Traceback" not in err
    assert out == ""
    assert sorted(p.name for p in root.iterdir()) == ["params.yaml"]  # no work was done
    assert (root / "params.yaml").read_bytes() == before


def test_an_unknown_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path)
    status, _, err = _rmpipe(capsys, "train", "--root", str(root), "--set", "train.epoch=2")
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "unknown key `train.epoch`" in lines[0]


def test_an_invalid_file_is_reported_by_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, {**VALID, "train": {"epochs": 0}})
    status, out, err = _rmpipe(capsys, "params", "--root", str(root))
    assert status == 2 and out == ""
    assert f"{root / 'params.yaml'}: key `train.epochs`" in err


def test_stage_set_reaches_the_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ingest with its source path overridden looks for the overridden file."""
    root = _project(tmp_path)
    override = "data.sources=[{path: other.jsonl, format: preference}]"
    status, _, err = _rmpipe(capsys, "ingest", "--root", str(root), "--set", override)
    assert status == 2
    assert "error: data file not found: other.jsonl" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=2", "no key 'epoch' under train"),
        ("train.epochs=-1", "key `train.epochs`: Input should be greater than 0"),
    ],
)
@pytest.mark.parametrize("entry", ["rmpipe run", "python -m flows.pipeline"])
def test_a_bad_flow_set_fails_before_the_prefect_server_starts(
    entry: str,
    override: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows import pipeline, reaper

    def no_server() -> None:
        raise AssertionError("the Prefect server was started for a run that cannot start")

    monkeypatch.setattr(reaper, "temporary_server", no_server)
    root = _project(tmp_path)
    before = (root / "params.yaml").read_bytes()
    argv = ["--root", str(root), "--set", override, "--no-push"]
    if entry == "rmpipe run":
        status, _, err = _rmpipe(capsys, "run", *argv)
    else:
        status = pipeline.main(argv)
        err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("pipeline not started: ") and message in err
    assert "Traceback" not in err
    assert (root / "params.yaml").read_bytes() == before


def test_a_bad_flow_setting_fails_before_the_prefect_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows import reaper

    monkeypatch.setattr(reaper, "temporary_server", lambda: pytest.fail("server started"))
    monkeypatch.setenv("RMPIPE_RETRY_DELAY", "soon")
    status, _, err = _rmpipe(capsys, "run", "--root", str(_project(tmp_path)))
    assert status == 2
    assert "RMPIPE_RETRY_DELAY='soon': expected a number" in err


# --- packaging: what a consumer who only scores installs ---------------------------------

PIPELINE_ONLY = {"dvc", "prefect", "networkx", "fastapi", "sqlalchemy"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_core_dependencies_leave_out_dvc_and_prefect() -> None:
    project = _pyproject()["project"]
    core = [_name(r) for r in project["dependencies"]]
    assert len(core) == len(set(core)), f"a core dependency is listed twice: {core}"
    assert not PIPELINE_ONLY & set(core)
    extras = project["optional-dependencies"]
    pipeline = {_name(r) for r in extras["pipeline"]}
    assert {"dvc", "prefect"} <= pipeline
    assert "rmpipe[pipeline]" in extras["dev"]
    assert project["scripts"]["rmpipe"] == "flows.cli:main"
    assert "flows*" in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert '-e ".[pipeline]"' in makefile  # `make run` installs what the flow needs


def test_flows_imports_only_core_or_pipeline_packages() -> None:
    """Every third-party package flows/ imports is declared (core or the pipeline extra)."""
    project = _pyproject()["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for r in project["optional-dependencies"]["pipeline"]}
    aliases = {"yaml": "pyyaml", "ruamel": "ruamel.yaml"}
    used = set()
    for path in (REPO_ROOT / "flows").rglob("*.py"):
        used |= {aliases.get(top, top) for top in _top_level_imports(path)}
    third_party = used - set(sys.stdlib_module_names) - {"flows", "rmcore", "__future__"}
    assert third_party <= declared, f"undeclared: {sorted(third_party - declared)}"


def _top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_rmcore_imports_no_pipeline_package() -> None:
    for path in (REPO_ROOT / "rmcore").rglob("*.py"):
        assert not _top_level_imports(path) & PIPELINE_ONLY, path


# Every rmcore module imported with DVC and Prefect made unimportable; then the score
# command's help, and `rmpipe run`'s message saying what to install.
WITHOUT_PIPELINE = """
import pkgutil, sys
for name in ("dvc", "prefect"):
    sys.modules[name] = None
import rmcore
for module in pkgutil.walk_packages(rmcore.__path__, "rmcore."):
    __import__(module.name)
from flows.cli import main
assert main(["run", "--no-push"]) == 1
try:
    main(["score", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
assert not [m for m in sys.modules if m.split(".")[0] in ("dvc", "prefect") and sys.modules[m]]
"""


def test_rmcore_and_score_work_without_dvc_and_prefect() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PIPELINE],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage: rmpipe score" in done.stdout
    assert "`rmpipe run` needs dvc, which is not installed: pip install 'rmpipe[pipeline]'" in (
        done.stderr
    )
