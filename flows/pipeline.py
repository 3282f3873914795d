"""The Prefect flow: one task per dvc.yaml stage, in DVC's graph order, then `dvc push`.

DVC decides what is stale and reproduces it (flows/dvc_stages.py), so after a run
`dvc status` is clean and `dvc repro` does nothing; Prefect adds retries, logs, a per-stage
table artifact, schedules and workers.

    python -m flows.pipeline [--params PATH] [--set train.epochs=2 ...] [--retries N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvc.exceptions import DvcException
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run

from flows import dvc_stages, reaper, report
from flows.dvc_stages import StageFailed
from flows.lock import project_lock
from flows.params import ParamsError, merge_params, run_params
from rmcore.__main__ import EXIT_CONFIG
from rmcore.core.config import ConfigError, parse_params

DEFAULTS = {"RMPIPE_RETRIES": 1.0, "RMPIPE_RETRY_DELAY": 10.0, "RMPIPE_LOCK_TIMEOUT": 900.0}


def _setting(value: float | None, env: str) -> float:
    """A flow parameter, else the environment variable, else the default."""
    if value is not None:
        return float(value)
    raw = os.environ.get(env)
    try:
        return float(raw) if raw else DEFAULTS[env]
    except ValueError:
        raise ParamsError(f"{env}={raw!r}: expected a number") from None


def _retryable(_task: Any, _run: Any, state: Any) -> bool:
    """Retry a failed stage unless its command rejected its params or data (exit status 2)."""
    exc = getattr(state, "data", None)
    return not (isinstance(exc, StageFailed) and exc.exit_status == EXIT_CONFIG)


@task(name="dvc-stage", task_run_name="{name}", cache_policy=NO_CACHE, persist_result=False)
def run_stage(root: str, name: str) -> dict[str, Any]:
    """Reproduce one stage through DVC if DVC's status says it changed; else skip it."""
    logger = get_run_logger()
    attempt = task_run.run_count or 1
    changes = dvc_stages.changes(Path(root), name)
    if not changes:
        logger.info("stage %r is up to date (dvc status clean): skipped", name)
        return report.stage_row(name, report.UP_TO_DATE, attempt - 1)
    reason = " | ".join(changes)
    launcher = dvc_stages.launcher_for(name)
    how = f" under {launcher}" if launcher else ""
    logger.info("stage %r changed (%s): reproducing%s (attempt %d)", name, reason, how, attempt)
    start = time.monotonic()
    try:
        restored = dvc_stages.reproduce(
            Path(root), name, lambda line: logger.info("%s | %s", name, line), launcher
        )
    except StageFailed as exc:
        exc.attempts = attempt
        raise
    result, seconds = report.RESTORED if restored else report.RAN, time.monotonic() - start
    logger.info("stage %r %s in %.1fs", name, result, seconds)
    reason += f" | launched: {launcher}" if launcher and not restored else ""
    return report.stage_row(name, result, attempt, seconds, reason)


@task(name="dvc-push", cache_policy=NO_CACHE, persist_result=False)
def push_outputs(root: str) -> str:
    """`dvc push` to the default remote: the cached data and model leave this machine."""
    pushed = dvc_stages.push(Path(root))
    if pushed is None:
        get_run_logger().warning("no default DVC remote (dvc remote add -d ...): not pushed")
        return "skipped: no default DVC remote"
    get_run_logger().info("dvc push: %s", pushed)
    return pushed


def _run_stages(root: Path, retries: int, delay: float) -> list[dict[str, Any]]:
    """Every stage in graph order; on failure the table so far is published, then re-raised."""
    stages = dvc_stages.plan(root)
    if not stages:
        raise RuntimeError(f"{root}: dvc.yaml has no stages to run")
    get_run_logger().info("stages in DVC graph order: %s", " -> ".join(s.name for s in stages))
    for stage in stages:  # a launcher that cannot apply fails the run before any stage
        if launcher := dvc_stages.launcher_for(stage.name):
            for command in stage.commands:
                dvc_stages.launched_command(command, launcher)
    stage_task = run_stage.with_options(
        retries=retries, retry_delay_seconds=delay, retry_condition_fn=_retryable
    )
    rows: list[dict[str, Any]] = []
    for position, stage in enumerate(stages):
        try:
            rows.append(stage_task(str(root), stage.name))
        except Exception as exc:
            rows.append(report.failed_row(stage.name, exc))
            rows += [report.stage_row(s.name, report.NOT_RUN) for s in stages[position + 1 :]]
            _publish_table(rows, failed=True)
            raise
    return rows


def _publish_table(rows: list[dict[str, Any]], failed: bool = False) -> None:
    """The stage table as an artifact; in the log too when the run failed (the command line
    prints it after a run that succeeded, with the summary)."""
    if failed:
        get_run_logger().info("pipeline stages:\n%s", report.table_text(rows))
    create_table_artifact(
        table=rows, key="pipeline-stages", description="What each dvc.yaml stage did in this run"
    )


@flow(name="reward-model-pipeline")
def pipeline(
    root: str = ".",
    params: str | None = None,
    overrides: list[str] | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    push: bool = True,
    lock_timeout: float | None = None,
    validate_params: bool = True,
) -> dict[str, Any]:
    """Run the dvc.yaml pipeline of `root` stage by stage, then push its outputs.

    params: a params file that becomes root/params.yaml for this run; overrides: KEY=VALUE
    (`+KEY=VALUE` adds a key) applied on top. Both last for this run only: params.yaml is
    put back byte for byte when the run ends (a killed run's, at the next run's start).
    retries / retry_delay per stage (default $RMPIPE_RETRIES or 1, $RMPIPE_RETRY_DELAY or
    10 s); lock_timeout: how long to wait for another run of this project
    ($RMPIPE_LOCK_TIMEOUT or 900 s). validate_params checks the params against rmcore's
    schema before they are written.
    """
    logger = get_run_logger()
    project = Path(root).resolve()
    n_retries = int(_setting(retries, "RMPIPE_RETRIES"))
    delay = _setting(retry_delay, "RMPIPE_RETRY_DELAY")
    wait = _setting(lock_timeout, "RMPIPE_LOCK_TIMEOUT")
    validator = parse_params if validate_params else None
    with (
        project_lock(project, wait, run_label=str(flow_run.name or "")),
        # this run's params, in params.yaml until the run ends (whichever way it ends)
        run_params(project, params, overrides or [], validator, logger.info) as changes,
    ):
        for change in changes:
            logger.info("params.yaml for this run: %s", change)
        rows = _run_stages(project, n_retries, delay)
        _publish_table(rows)
        pushed = "skipped (push disabled)"
        if push:
            pusher = push_outputs.with_options(retries=n_retries, retry_delay_seconds=delay)
            pushed = pusher(str(project))
    summary: dict[str, Any] = {
        "root": str(project),
        "stages": rows,
        "verdict": report.verdict(rows),
        "params_changes": changes,
        "push": pushed,
        "results": report.results(project),
    }
    # The whole summary is the run's artifact (and what the command line prints): the log
    # keeps the verdict, so a console run does not show the summary twice.
    logger.info("%s (summary: artifact 'pipeline-results')", summary["verdict"])
    create_markdown_artifact(report.markdown(summary), key="pipeline-results")
    return summary


def _parser(prog: str = "python -m flows.pipeline") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--root", default=".", help="DVC project root (default: current directory)")
    add("--params", help="params file to use as the project's params.yaml for this run")
    add(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param, e.g. train.epochs=2 (value in YAML; +KEY=VALUE adds a key)",
    )
    add("--retries", type=int, help="retries per stage (default $RMPIPE_RETRIES or 1)")
    add("--retry-delay", type=float, help="seconds between retries ($RMPIPE_RETRY_DELAY or 10)")
    add("--lock-timeout", type=float, help="wait for another run ($RMPIPE_LOCK_TIMEOUT or 900)")
    add("--no-push", dest="push", action="store_false", help="skip `dvc push` at the end")
    add(
        "--no-validate",
        dest="validate_params",
        action="store_false",
        help="do not check params against rmcore's schema (for other DVC projects)",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m flows.pipeline") -> int:
    """Run the flow from the command line; print the stage table and where results are.

    Bad params, overrides or settings exit 2 at once, before the Prefect server starts.
    """
    args = _parser(prog).parse_args(argv)
    try:
        for value, env in (
            (args.retries, "RMPIPE_RETRIES"),
            (args.retry_delay, "RMPIPE_RETRY_DELAY"),
            (args.lock_timeout, "RMPIPE_LOCK_TIMEOUT"),
        ):
            _setting(value, env)
        # what the run will write to params.yaml, checked without writing it
        validator = parse_params if args.validate_params else None
        merge_params(Path(args.root), args.params, args.overrides, validator)
    except (ParamsError, ConfigError) as exc:
        print(f"pipeline not started: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        reaper.temporary_server()  # dies with this process, even a SIGKILLed one
        summary = pipeline(**vars(args))
    # Expected failures (a stage, the lock, bad params, DVC, push): a message, no traceback.
    except (RuntimeError, ParamsError, ConfigError, DvcException) as exc:
        cause = f"\n  because: {exc.__cause__}" if exc.__cause__ else ""
        print(f"\npipeline failed: {exc}{cause}", file=sys.stderr)
        return 1
    print(report.summary_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
