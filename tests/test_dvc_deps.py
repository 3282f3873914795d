"""Every project file a dvc.yaml stage runs is one of that stage's deps.

A stage runs `python -m rmcore <stage>`: rmcore/__main__.py, rmcore/stages.py and that stage's
function there, then every `rmcore.*` / `flows.*` module they import, transitively (imports
inside functions count: they run when the stage does). If one of those files is not covered
by a dep (the file itself or a folder above it), DVC would not re-run the stage when it
changes, and the cached outputs would silently be stale. The other way round, a code dep the
stage never runs would only re-run it needlessly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

PROJECT_PACKAGES = ("rmcore", "flows")
ENTRY = REPO_ROOT / "rmcore" / "__main__.py"
STAGES_FILE = REPO_ROOT / "rmcore" / "stages.py"


def module_file(name: str) -> Path | None:
    """The file of a project module (a package: its __init__.py); None outside the project."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = REPO_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(node: ast.AST, path: Path) -> set[str]:
    """Every module an import statement under `node` may load (`from a import b`: a and a.b)."""
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            names.update(alias.name for alias in sub.names)
        elif isinstance(sub, ast.ImportFrom):
            base = sub.module or ""
            if sub.level:
                package = _package_of(path).split(".")
                anchor = ".".join(package[: len(package) - sub.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in sub.names)
    return names


def with_parents(name: str) -> set[str]:
    """Importing a.b.c runs the __init__ of a and a.b too."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    stmts = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
    return set().union(*(imported_modules(s, path) for s in stmts))


def stage_function_imports(stage: str) -> set[str]:
    tree = ast.parse(STAGES_FILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == stage:
            return imported_modules(node, STAGES_FILE)
    raise AssertionError(f"rmcore/stages.py has no function for the dvc.yaml stage {stage!r}")


def import_closure(stage: str) -> set[Path]:
    """Project files that `python -m rmcore <stage>` runs."""
    # Of these two files only the top level and this stage's function run.
    files = {ENTRY, STAGES_FILE}
    seen = {"rmcore.__main__", "rmcore.stages"}
    todo = {"rmcore"} | top_level_imports(ENTRY) | top_level_imports(STAGES_FILE)
    todo |= stage_function_imports(stage)
    while todo:
        name = todo.pop()
        for full in with_parents(name) - seen:
            seen.add(full)
            path = module_file(full)
            if path is not None and path not in files:
                files.add(path)
                todo |= imported_modules(ast.parse(path.read_text(encoding="utf-8")), path)
    return files


def dvc_stages() -> dict[str, dict]:
    return dict(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def dep_paths(stage: dict) -> list[Path]:
    return [REPO_ROOT / dep for dep in stage.get("deps", [])]


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == dep or dep in path.parents for dep in deps)


def test_closure_follows_imports_inside_functions() -> None:
    """The control: the tokenize stage imports rmcore.text.tokenize inside its function only."""
    files = import_closure("tokenize")
    assert REPO_ROOT / "rmcore" / "text" / "tokenize.py" in files
    assert REPO_ROOT / "rmcore" / "data" / "__init__.py" in files  # a parent package
    assert REPO_ROOT / "rmcore" / "register" / "registry.py" not in files


@pytest.mark.parametrize("name", list(dvc_stages()))
def test_every_file_a_stage_runs_is_a_dep(name: str) -> None:
    stage = dvc_stages()[name]
    assert stage["cmd"] == f"python -m rmcore {name}", "the closure assumes this command"
    deps = dep_paths(stage)
    missing = sorted(
        str(path.relative_to(REPO_ROOT)) for path in import_closure(name) if not covered(path, deps)
    )
    assert not missing, f"dvc.yaml stage {name!r} runs files that are not among its deps: {missing}"


@pytest.mark.parametrize("name", list(dvc_stages()))
def test_code_deps_exist_and_are_run(name: str) -> None:
    """A code dep the stage does not run would only re-run it needlessly."""
    deps = dep_paths(dvc_stages()[name])
    code = [d for d in deps if d.relative_to(REPO_ROOT).parts[0] in PROJECT_PACKAGES]
    files = import_closure(name)
    unused = [
        str(d.relative_to(REPO_ROOT)) for d in code if not any(covered(f, [d]) for f in files)
    ]
    assert not unused, f"dvc.yaml stage {name!r} names code deps it does not run: {unused}"
