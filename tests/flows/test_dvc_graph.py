"""Stage order from DVC's graph, stage status, `dvc repro` of one stage, the project lock."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.dvc_graph import StageFailed, pipeline_stages, reproduce, stage_changes
from flows.launch import LAUNCHER_ENV, LaunchError, launch, launched_command, launcher_for
from flows.lock import PipelineLocked, project_lock
from flows.pipeline import _retryable
from tests.flows.conftest import REPO_ROOT, runs


def test_order_comes_from_the_graph(project: Path) -> None:
    stages = pipeline_stages(project)  # dvc.yaml lists them register, train, prepare
    assert [stage.name for stage in stages] == ["prepare", "train", "register"]
    by_name = {stage.name: stage for stage in stages}
    assert by_name["register"].upstream == ("train",)
    assert by_name["train"].deps == ("stage.py", "data/prepared")
    assert by_name["train"].params == ("params.yaml:train",)
    assert by_name["train"].outs == ("models/m",)


def test_project_pipeline_order() -> None:
    names = [stage.name for stage in pipeline_stages(REPO_ROOT)]
    assert names == ["ingest", "tokenize", "train", "evaluate", "register"]


def test_status_then_reproduce_one_stage(project: Path) -> None:
    assert any("params.yaml" in change for change in stage_changes(project, "prepare"))
    lines: list[str] = []
    outcome = reproduce(project, "prepare", lines.append)
    assert not outcome.restored
    assert "prepare: done" in lines
    assert stage_changes(project, "prepare") == []
    assert runs(project) == ["prepare"]  # --single-item: nothing downstream ran


def test_failed_stage_reports_status_and_tail(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("fail: 0", "fail: 4"))
    reproduce(project, "prepare", lambda _: None)
    with pytest.raises(StageFailed) as info:
        reproduce(project, "train", lambda _: None)
    assert info.value.stage == "train"
    assert info.value.exit_status == 4
    assert "train: failing on purpose" in info.value.tail
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == {"prepare"}


class _State:
    def __init__(self, exc: Exception) -> None:
        self.data = exc


def test_usage_errors_are_not_retried() -> None:
    assert not _retryable(None, None, _State(StageFailed("train", 2, 255, "bad params")))
    assert _retryable(None, None, _State(StageFailed("train", 1, 255, "oom")))
    assert _retryable(None, None, _State(RuntimeError("dvc lock busy")))


def test_second_lock_holder_waits_then_stops(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    busy = r"in progress \(pid \d+ on .*Gave up after"
    with (
        project_lock(tmp_path, timeout=1),
        pytest.raises(PipelineLocked, match=busy),
        project_lock(tmp_path, timeout=0.3),
    ):
        pass
    with project_lock(tmp_path, timeout=0):  # released on exit: free again
        pass


def test_launcher_runs_a_stage_under_torchrun(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reproduce(project, "prepare", lambda _: None)
    monkeypatch.setenv(LAUNCHER_ENV, "torchrun --standalone --nproc_per_node=2")
    assert launcher_for("prepare") is None
    launcher = launcher_for("train")
    assert launcher == "torchrun --standalone --nproc_per_node=2"
    train = {stage.name: stage for stage in pipeline_stages(project)}["train"]
    lines: list[str] = []
    launch(project, "train", train.cmd, launcher, lines.append)
    assert "> torchrun --standalone --nproc_per_node=2 stage.py train" in lines
    assert sorted(runs(project)) == ["prepare", "train", "train"]  # one per process
    assert stage_changes(project, "train") == []  # recorded as if by `dvc repro`
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]
    assert locked["cmd"] == "python stage.py train"
    assert (project / "models/m/weights.txt").read_text() == "5"


def test_launcher_needs_a_python_command() -> None:
    with pytest.raises(LaunchError, match="starting with `python`"):
        launched_command("bash run.sh", "torchrun")
    assert launched_command("python -m rmcore train", "torchrun --nproc_per_node=8") == (
        "torchrun --nproc_per_node=8 -m rmcore train"
    )
