"""Stage order from DVC's graph, stage status, reproducing one stage, the project lock."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.dvc_stages import (
    LAUNCHER_ENV,
    LaunchError,
    StageFailed,
    _through_shim,
    changes,
    launched_command,
    launcher_for,
    plan,
    reproduce,
)
from flows.lock import PipelineLocked, project_lock
from flows.pipeline import _retryable
from tests.flows.conftest import REPO_ROOT, runs


def _set(project: Path, old: str, new: str) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace(old, new))


def test_order_comes_from_the_graph(project: Path) -> None:
    stages = plan(project)  # dvc.yaml lists them register, train, prepare
    assert [stage.name for stage in stages] == ["prepare", "train", "register"]
    assert stages[1].commands == ("python stage.py train",)


def test_plan_shows_stages_added_to_dvc_yaml(project: Path) -> None:
    with (project / "dvc.yaml").open("a") as dvc_yaml:
        dvc_yaml.write(
            "  report:\n    cmd: python stage.py report\n    deps: [registered.json]\n"
            "  check:\n    cmd: [python stage.py check, python stage.py check2]\n"
            "    deps: [data/prepared]\n"
        )
    assert [(stage.name, stage.commands) for stage in plan(project)] == [
        ("prepare", ("python stage.py prepare",)),
        ("train", ("python stage.py train",)),
        ("register", ("python stage.py register",)),
        ("report", ("python stage.py report",)),
        ("check", ("python stage.py check", "python stage.py check2")),
    ]
    assert changes(project, "report") == ["changed deps: registered.json deleted"]


def test_project_pipeline_order() -> None:
    names = [stage.name for stage in plan(REPO_ROOT)]
    assert names == ["ingest", "tokenize", "train", "evaluate", "register"]


def test_status_then_reproduce_one_stage(project: Path) -> None:
    assert any("params.yaml" in change for change in changes(project, "prepare"))
    lines: list[str] = []
    assert reproduce(project, "prepare", lines.append) is False  # ran, not restored
    assert "prepare: done" in lines
    assert changes(project, "prepare") == []
    assert runs(project) == ["prepare"]  # single item: nothing downstream ran


def test_run_cache_restore_is_known_without_reading_the_log(project: Path) -> None:
    _set(project, 'say: ""', "say: Stage 'prepare' is cached - skipping run")
    assert reproduce(project, "prepare", lambda _: None) is False  # whatever it printed
    _set(project, "rows: 5", "rows: 6")
    assert reproduce(project, "prepare", lambda _: None) is False
    _set(project, "rows: 6", "rows: 5")
    assert reproduce(project, "prepare", lambda _: None) is True  # DVC's run-cache
    assert runs(project) == ["prepare", "prepare"]
    assert (project / "data/prepared/rows.txt").read_text().split() == list("01234")
    assert changes(project, "prepare") == []


def test_failed_stage_reports_status_and_tail(project: Path) -> None:
    _set(project, "fail: 0", "fail: 4")
    reproduce(project, "prepare", lambda _: None)
    with pytest.raises(StageFailed) as info:
        reproduce(project, "train", lambda _: None)
    assert info.value.stage == "train"
    assert info.value.exit_status == 4
    assert "train: failing on purpose" in info.value.tail
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == {"prepare"}


def test_dvc_failure_has_no_exit_status(project: Path) -> None:
    with pytest.raises(StageFailed) as info:  # its input data/prepared does not exist
        reproduce(project, "train", lambda _: None)
    assert info.value.exit_status is None
    assert "DVC could not reproduce it" in str(info.value)
    assert runs(project) == []


class _State:
    def __init__(self, exc: Exception) -> None:
        self.data = exc


def test_usage_errors_are_not_retried() -> None:
    assert not _retryable(None, None, _State(StageFailed("train", 2, "bad params")))
    assert _retryable(None, None, _State(StageFailed("train", 1, "oom")))
    assert _retryable(None, None, _State(StageFailed("train", None, "dvc failed")))
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
    lines: list[str] = []
    assert reproduce(project, "train", lines.append, launcher) is False
    assert "> torchrun --standalone --nproc_per_node=2 stage.py train" in lines
    assert sorted(runs(project)) == ["prepare", "train", "train"]  # one per process
    assert changes(project, "train") == []  # recorded by DVC as any run
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]
    assert locked["cmd"] == "python stage.py train"
    assert (project / "models/m/weights.txt").read_text() == "5"


def test_launcher_needs_a_python_command() -> None:
    with pytest.raises(LaunchError, match="starting with `python`"):
        launched_command("bash run.sh", "torchrun")
    assert launched_command("python -m rmcore train", "torchrun --nproc_per_node=8") == (
        "torchrun --nproc_per_node=8 -m rmcore train"
    )


def test_stage_commands_must_go_through_the_shim() -> None:
    hook = _through_shim("/p/.dvc/tmp/sh", {"python stage.py train"})
    hook("subprocess.Popen", ("/p/.dvc/tmp/sh", ["/p/.dvc/tmp/sh", "-c", "python stage.py train"]))
    hook("subprocess.Popen", ("git", ["git", "status"], None, None))  # not a stage command
    hook("open", ("python stage.py train", "r", 0))
    for argv in (["/bin/bash", "-c", "python stage.py train"], "python stage.py train"):
        with pytest.raises(RuntimeError, match=r"without \$SHELL"):
            hook("subprocess.Popen", (None, argv, None, None))


def test_the_console_shows_stage_lines_without_their_timestamp_or_json_summary() -> None:
    from flows.dvc_stages import console_line

    stamped = "2026-12-02 14:03:43,880 INFO rmcore.train.recipe: training 53 steps"
    assert console_line(stamped) == "INFO rmcore.train.recipe: training 53 steps"
    assert console_line('{"splits": {"train": {"groups": 847}}, "totals": {}}') is None
    assert console_line("> python -m rmcore train") == "> python -m rmcore train"
    assert console_line("{not a summary") == "{not a summary"
