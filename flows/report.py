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
        found["eval_metrics"] = {
            key: value for key, value in metrics.items() if isinstance(value, int | float | str)
        }
    registration = _read_json(layout.registration)
    if registration is not None:
        found["registration"] = registration
    found["mlflow_ui"] = _mlflow_ui(layout, registration)
    found["prefect_ui"] = _prefect_ui(root)
    return found


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
    """The end-of-run message: stages, params, push, results and how to look at them."""
    lines = ["", table_text(report["stages"]), ""] if with_table else []
    lines.append(report["verdict"])
    lines += [f"params: {change}" for change in report["params_changes"]]
    lines.append(f"dvc push: {report['push']}")
    found = report["results"]
    if "eval_metrics" in found:
        lines += ["", f"Eval metrics ({found['eval_metrics_file']}):"]
        lines += [f"  {key}: {value}" for key, value in found["eval_metrics"].items()]
    if "registration" in found:
        reg = found["registration"]
        lines += ["", f"Registered model: {reg.get('model_uri')}"]
        lines += [f"  {key}: {reg[key]}" for key in ("name", "version", "aliases") if key in reg]
    lines += [
        "",
        f"MLflow UI:  {found['mlflow_ui']}",
        f"Prefect UI: {found['prefect_ui']}",
    ]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The results as a Prefect markdown artifact."""
    return "\n\n".join(["```", summary_text(report).strip(), "```"])
