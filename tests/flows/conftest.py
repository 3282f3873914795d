"""Fixtures for the flow tests: a small throw-away DVC project and a real Prefect server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import stop_group, wait_until_answering

REPO_ROOT = Path(__file__).resolve().parents[2]

# Three stages, declared in reverse order: the flow must take its order from DVC's graph.
DVC_YAML = """\
stages:
  register:
    cmd: python stage.py register
    deps: [stage.py, models/m]
    params: [register]
    outs:
      - registered.json:
          cache: false
  train:
    cmd: python stage.py train
    deps: [stage.py, data/prepared]
    params: [train]
    outs: [models/m]
  prepare:
    cmd: python stage.py prepare
    deps: [stage.py]
    params: [prepare]
    outs: [data/prepared]
"""

PARAMS_YAML = """\
# Test pipeline params: one section per stage.
prepare:
  rows: 5  # lines written to data/prepared/rows.txt
  sleep: 0
  say: ""  # a line to print
train:
  epochs: 1
  fail: 0  # exit status to fail with on every attempt (0 = succeed)
  fail_once: false  # fail the first attempt only (a transient failure)
register:
  name: tiny
"""

STAGE_PY = '''\
"""One stage of the test pipeline: python stage.py <prepare|train|register>."""
import json, os, pathlib, sys, time, yaml

name = sys.argv[1]
p = yaml.safe_load(pathlib.Path("params.yaml").read_text())[name]
with open("runs.log", "a") as log:  # not tracked by DVC: counts real executions
    log.write(name + "\\n")
rank = int(os.environ.get("RANK", "0"))  # set by torchrun
print(f"{name}: start (rank {rank})", flush=True)
if p.get("say"):
    print(p["say"], flush=True)
if rank != 0:
    sys.exit(0)  # only rank 0 writes outputs
time.sleep(p.get("sleep", 0))
if p.get("fail_once") and not pathlib.Path(f"{name}.failed-once").exists():
    pathlib.Path(f"{name}.failed-once").touch()
    print(f"{name}: transient failure", flush=True)
    sys.exit(1)
if p.get("fail"):
    print(f"{name}: failing on purpose", flush=True)
    sys.exit(p["fail"])
if name == "prepare":
    pathlib.Path("data/prepared").mkdir(parents=True, exist_ok=True)
    pathlib.Path("data/prepared/rows.txt").write_text("\\n".join(map(str, range(p["rows"]))))
elif name == "train":
    rows = pathlib.Path("data/prepared/rows.txt").read_text().split()
    pathlib.Path("models/m").mkdir(parents=True, exist_ok=True)
    pathlib.Path("models/m/weights.txt").write_text(str(len(rows) * p["epochs"]))
else:
    weights = pathlib.Path("models/m/weights.txt").read_text()
    pathlib.Path("registered.json").write_text(json.dumps({"name": p["name"], "weights": weights}))
print(f"{name}: done", flush=True)
'''


def sh(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a command, fail the test with its output if it fails; return stdout+stderr."""
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out}"
    return out


def dvc(*args: str, cwd: Path) -> str:
    return sh([sys.executable, "-m", "dvc", *args], cwd)


def git(*args: str, cwd: Path) -> str:
    return sh(["git", *args], cwd)


@pytest.fixture(scope="session", autouse=True)
def _git_identity() -> None:
    for key, value in {
        "GIT_AUTHOR_NAME": "rmpipe tests",
        "GIT_AUTHOR_EMAIL": "tests@rmpipe.invalid",
        "GIT_COMMITTER_NAME": "rmpipe tests",
        "GIT_COMMITTER_EMAIL": "tests@rmpipe.invalid",
    }.items():
        os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project with the three test stages, committed, and a local DVC remote."""
    base = tmp_path_factory.mktemp("template")
    root = base / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(PARAMS_YAML)
    (root / "stage.py").write_text(STAGE_PY)
    (root / ".gitignore").write_text("runs.log\n*.failed-once\n")
    git("init", "-q", "-b", "main", cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    dvc("config", "core.check_update", "false", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "test pipeline", cwd=root)
    return root


@pytest.fixture
def project(project_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the test project with its own DVC remote directory (tmp/remote)."""
    root = tmp_path / "project"
    shutil.copytree(project_template, root, symlinks=True)
    dvc("remote", "add", "-d", "--local", "store", str(tmp_path / "remote"), cwd=root)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on loopback; yields the env its clients need."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_COLORS="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_until_answering(server, f"{api}/health", 120, "prefect server", log_path)
        env["PREFECT_API_URL"] = api
        yield env
    finally:
        stop_group(server)


def run_flow(
    project: Path, env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m flows.pipeline --root <project> --no-validate <args>` against the server."""
    return subprocess.run(
        [sys.executable, "-m", "flows.pipeline", "--root", str(project), "--no-validate", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def runs(project: Path) -> list[str]:
    """Stage executions recorded by stage.py, in order."""
    log = project / "runs.log"
    return log.read_text().split() if log.exists() else []
