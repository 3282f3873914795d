"""Shared test settings: offline, no telemetry, and where the real datasets live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_key, _value)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# mlflow.set_tracking_uri / set_registry_uri export these: a test that starts a process of its
# own store drops both, or the process would follow an earlier test's store.
MLFLOW_URI_VARS = frozenset({"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"})


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real preference datasets beside the checkout; skip where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (only on development machines)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest (and identically in subprocesses) on one thread; a module
    opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def run_benchmark(name: str, *args: str, workdir: Path, timeout: int = 600) -> dict[str, Any]:
    """`python benchmarks/<name>.py ARGS --workdir WORKDIR`: it must succeed and print exactly
    one JSON line on stdout (its logs go to stderr); that line, parsed."""
    script = REPO_ROOT / "benchmarks" / f"{name}.py"
    done = subprocess.run(
        [sys.executable, str(script), *args, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0])
    return result
