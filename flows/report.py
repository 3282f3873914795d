"""What a pipeline run did and where its results are, as data and as text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rmcore.core.paths import Layout

# Stage results in the per-stage table.
RAN = "ran"
RESTORED = "restored from run-cache"
UP_TO_DATE = "up to date"
FAILED = "failed"
NOT_RUN = "not run"


def stage_row(
    stage: str, result: str, attempts: int = 0, seconds: float = 0.0, reason: str = ""
) -> dict[str, Any]:
    """One row of the per-stage table (JSON-able: it is also a Prefect table artifact)."""
    return {
        "stage": stage,
        "result": result,
        "attempts": attempts,
        "seconds": round(seconds, 1),
        "reason": reason,
    }


def failed_row(stage: str, exc: BaseException) -> dict[str, Any]:
    """The row of a failed stage: its command's exit status (flows.dvc_stages), or the error."""
    status = getattr(exc, "exit_status", None)
    why = f"exit status {status}" if status is not None else f"{type(exc).__name__}: {exc}"
    return stage_row(stage, FAILED, getattr(exc, "attempts", 1), 0.0, why[:200])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mlflow_ui(layout: Layout, registration: dict[str, Any] | None) -> str:
    """Where the register stage logged (as it recorded), else where it would by default."""
    uri = (registration or {}).get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    uri = uri or f"sqlite:///{layout.mlflow_db.resolve()}"
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def _prefect_ui(root: Path) -> str:
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"open {api.removesuffix('/').removesuffix('/api')}"
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser().resolve()
    return f"PREFECT_HOME={home} prefect server start  # then open http://127.0.0.1:4200"


def results(root: Path) -> dict[str, Any]:
    """Where the run's results are: eval metrics, the registered model, the UIs."""
    layout = Layout(root)
    found: dict[str, Any] = {}
    metrics = _read_json(layout.eval_metrics)
    if metrics is not None:
        found["eval_metrics_file"] = str(layout.eval_metrics)
        found["eval_metrics"] = metrics
    registration = _read_json(layout.registration)
    if registration is not None:
        found["registration"] = registration
    found["mlflow_ui"] = _mlflow_ui(layout, registration)
    found["prefect_ui"] = _prefect_ui(root)
    resolved = root.resolve()
    found["in_git"] = any((d / ".git").exists() for d in (resolved, *resolved.parents))
    return found


HEADLINE = ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau", "ece")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_text(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics, rounded, beside the baselines of the same pairs."""
    found = metrics.get("baselines")
    baselines: dict[str, Any] = found if isinstance(found, dict) else {}
    names = sorted(baselines)
    rows = [["metric", "model", *(name.replace("_", " ") for name in names)]]
    for key in HEADLINE:
        if key in metrics:
            cells = [_number((baselines[name] or {}).get(key)) for name in names]
            rows.append([key, _number(metrics[key]), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table_text(rows: list[dict[str, Any]]) -> str:
    """The per-stage table as aligned text (reasons shortened; the artifact has them whole)."""
    header = ["stage", "result", "attempts", "seconds", "reason"]
    cells = [header] + [
        [str(row[key]) for key in header[:-1]] + [_short(row["reason"])] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in cells
    )


def verdict(rows: list[dict[str, Any]]) -> str:
    """One line: which stages ran, or that nothing had to."""
    ran = [row["stage"] for row in rows if row["result"] in (RAN, RESTORED)]
    if not ran and all(row["result"] == UP_TO_DATE for row in rows):
        return f"Nothing to reproduce: all {len(rows)} stages were up to date, none re-ran."
    fresh = [row["stage"] for row in rows if row["result"] == UP_TO_DATE]
    return f"Reproduced: {', '.join(ran) or 'none'}; up to date: {', '.join(fresh) or 'none'}."


def summary_text(report: dict[str, Any], with_table: bool = True) -> str:
    """The end-of-run message: stages, params, push, results and where to look next."""
    lines = ["", table_text(report["stages"]), ""] if with_table else []
    lines.append(report["verdict"])
    lines += [f"params: {change}" for change in report["params_changes"]]
    lines.append(f"dvc push: {report['push']}")
    found = report["results"]
    if "eval_metrics" in found:
        metrics = found["eval_metrics"]
        pairs = f"{metrics['n_pairs']} pairs, " if "n_pairs" in metrics else ""
        lines += ["", f"Held-out test ({pairs}{found['eval_metrics_file']}):"]
        lines += metrics_text(metrics)
    lines += ["", "Next:"]
    if "registration" in found:
        reg = found["registration"]
        aliases = ", ".join(reg.get("aliases") or []) or "no alias"
        lines.append(
            f"  model:    {reg.get('model_uri')} (version {reg.get('version')}, {aliases})"
        )
        lines.append(
            f"  score:    rmpipe score --model-uri {reg.get('model_uri')} --input rows.jsonl"
        )
    lines += [
        f"  MLflow:   {found['mlflow_ui']}",
        f"  Prefect:  {found['prefect_ui']}",
    ]
    if found.get("in_git") and report["params_changes"]:
        # params.yaml was put back after the run; dvc.lock holds the run's params
        lines.append(
            "  keep:     put the params above in params.yaml and commit it, to run on them"
        )
    elif found.get("in_git"):
        lines.append("  record:   git add dvc.lock params.yaml && git commit  # this run, for DVC")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The results as a Prefect markdown artifact."""
    return "\n\n".join(["```", summary_text(report).strip(), "```"])
