"""The files a killed registration left in a local artifact store.

A registration killed after logging its model leaves the run's artifacts (its reports and
plots) and the logged model (a copy of models/reward_model, tens to hundreds of MB) under
mlartifacts/. The next registration of the same model marks such runs killed
(`registry.forget_unvalidated`) and, through this module, deletes what they left: their
artifact directory, their logged models and those models' files. Only `file:` locations are
touched; a tracking server keeps its artifacts (see `mlflow gc`). A run that a model version
still refers to keeps everything.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient

log = logging.getLogger(__name__)


def local_path(uri: str, owner: str) -> Path | None:
    """The directory of `owner` (a run or model id) that holds the artifacts at `uri`, when
    `uri` is a local path that names it; else None."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(url2pathname(parsed.path))
    if path.name == "artifacts":
        path = path.parent
    return path if path.name == owner else None  # never anything wider than its own folder


def remove_run_leftovers(client: MlflowClient, exp_id: str, run_id: str) -> list[Path]:
    """Delete the logged models of `run_id` and the local files of the run and its models,
    unless a model version refers to the run; return the directories removed."""
    if client.search_model_versions(f"run_id = '{run_id}'"):
        return []
    removed = []
    run_dir = local_path(client.get_run(run_id).info.artifact_uri or "", run_id)
    for model in client.search_logged_models([exp_id]):
        if model.source_run_id != run_id:
            continue
        model_dir = local_path(model.artifact_location or "", model.model_id)
        client.delete_logged_model(model.model_id)
        if model_dir is not None and model_dir.exists():
            shutil.rmtree(model_dir)
            removed.append(model_dir)
    if run_dir is not None and run_dir.exists():
        shutil.rmtree(run_dir)
        removed.append(run_dir)
    for path in removed:
        log.warning("removed %s, left by the killed registration run %s", path, run_id)
    return removed
