"""MLflow: the run of a pipeline, the pyfunc reward model, the registry and its aliases.

Nothing outside rmcore/register imports mlflow (the pyfunc model, `rmpipe score` and the
cleanup of killed runs beside this module do). Tracking URI:
`register.tracking_uri` > `$MLFLOW_TRACKING_URI` > `sqlite:////<project>/mlflow.db` with artifacts
in `<project>/mlartifacts`. In a DVC experiment's temporary copy (`dvc exp run --temp`, queued
experiments) `<project>` is the project the copy was made from, not the copy, which DVC deletes
after the run (`Layout.store_root`). An experiment's version moves no alias unless
`register.experiment_aliases`; `register.in_experiments: skip` registers nothing.

Registration is ordered so that a process killed at any point leaves nothing half-done that
matters: the model is logged and loaded back, then a version is created, loaded back from the
registry and tagged `rmpipe.validated`, and only then do aliases move. A version without that
tag is never aliased and is deleted by the next registration of the same model and data.
"""

from __future__ import annotations

import os

# Before mlflow is imported: no telemetry calls from offline machines.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from rmcore.core.config import SCORE_BATCH_SIZE, Params, RegisterConfig
from rmcore.core.paths import Layout, experiment_name
from rmcore.register import isolated, redact
from rmcore.register.candidate import (
    TAG_DATA_HASH,
    TAG_MODEL_HASH,
    ModelCandidate,
    RegistrationError,
    read_candidate,
)
from rmcore.register.card import model_card
from rmcore.register.leftovers import remove_run_leftovers
from rmcore.register.lineage import DatasetRecord, RunRecord, build_run_record, run_name
from rmcore.register.lock import exclusive_registration

log = logging.getLogger(__name__)

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
TAG_ACCURACY = "rmpipe.pairwise_accuracy"
TAG_VALIDATED = "rmpipe.validated"
TAG_EXPERIMENT = "rmpipe.dvc_experiment"  # the DVC experiment that registered a version
VERIFY_ATOL = 1e-4
MAX_PARAM_CHARS = 6000  # MLflow limit on a param value
BATCH = 1000  # MLflow limit on metrics per log_batch call
INPUT_EXAMPLE = pd.DataFrame(
    {
        "prompt": ["What is the capital of France?", [{"role": "user", "content": "Say hi."}]],
        "response": ["The capital of France is Paris.", "Hi!"],
    }
)


def resolve_tracking_uri(cfg: RegisterConfig, layout: Layout) -> str:
    """register.tracking_uri > $MLFLOW_TRACKING_URI > the project's SQLite file (absolute)."""
    uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return "sqlite:///" + str(layout.mlflow_db.resolve())
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # A relative SQLite path means relative to the project, not to the working directory.
        return "sqlite:///" + str((layout.store_root / uri[len("sqlite:///") :]).resolve())
    return uri


def _is_local_store(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "databricks"))


def connect(cfg: RegisterConfig, layout: Layout) -> MlflowClient:
    """Point mlflow at the tracking server or the project's store."""
    uri = resolve_tracking_uri(cfg, layout)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    log.info("MLflow tracking at %s", redact.redact_uri(uri))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: MlflowClient, cfg: RegisterConfig, layout: Layout) -> str:
    """The experiment's id, created with artifacts in the project for a local store."""
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        local = _is_local_store(client.tracking_uri)
        location = layout.mlflow_artifacts.resolve().as_uri() if local else None
        try:
            return client.create_experiment(cfg.experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(cfg.experiment)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise RegistrationError(
            f"MLflow experiment {cfg.experiment!r} is deleted; restore it "
            "(mlflow experiments restore) or set register.experiment to another name"
        )
    return str(experiment.experiment_id)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["mlflow", "torch", "transformers", "safetensors", "tokenizers", "numpy", "pandas"]
    names += ["pyarrow", "pydantic", "pyyaml", "datasets"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    # `prompt` is a string or a list of messages. Typed `string` (not AnyType) so that the
    # scoring server can read text/csv (it needs a pandas type per column); MLflow's string
    # check passes object columns, lists of messages included, as they are.
    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "response")]),
        outputs=Schema([ColSpec("double", "reward")]),
        params=ParamSchema(
            [
                ParamSpec("normalize", "boolean", False),
                ParamSpec("batch_size", "long", SCORE_BATCH_SIZE),
            ]
        ),
    )


def reference_rewards(
    model_dir: Path, frame: pd.DataFrame, trust_remote_code: bool = False
) -> np.ndarray:
    """Rewards of the train-time model (no MLflow in between) for the example rows."""
    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_texts
    from rmcore.register.pyfunc_model import as_prompt

    model = load_reward_model(model_dir, trust_remote_code=trust_remote_code)
    prompts = [as_prompt(p, i) for i, p in enumerate(frame["prompt"])]
    return np.asarray(score_texts(model, prompts, list(frame["response"])), dtype=np.float64)


def verify_loads(model_uri: str, expected: np.ndarray) -> None:
    """Load the model back through MLflow; its rewards must match the train-time model's."""
    try:
        got = np.asarray(mlflow.pyfunc.load_model(model_uri).predict(INPUT_EXAMPLE.copy()))
    except Exception as exc:
        raise RegistrationError(f"{model_uri} does not load or predict: {exc}") from exc
    if got.shape != expected.shape or not np.allclose(got, expected, atol=VERIFY_ATOL):
        raise RegistrationError(
            f"{model_uri} scores {got.tolist()} but the saved model scores {expected.tolist()}"
        )


def log_reward_model(layout: Layout, expected: np.ndarray, trust_remote_code: bool) -> str:
    """Log the pyfunc model into the active run, load it back; return its models:/ URI.

    `trust_remote_code` goes into the model's config, where consumers can see it: a model
    whose directory holds its own code is registered only by someone who trusted that code.
    """
    import rmcore

    info = mlflow.pyfunc.log_model(
        name="reward_model",
        python_model=str(PYFUNC_FILE),
        artifacts={"reward_model": str(layout.model_dir)},
        code_paths=[str(Path(rmcore.__file__).parent)],
        signature=_signature(),
        input_example=INPUT_EXAMPLE,
        pip_requirements=_pip_requirements(),
        model_config={"trust_remote_code": trust_remote_code},
    )
    verify_loads(info.model_uri, expected)
    return str(info.model_uri)


def forget_unvalidated(
    client: MlflowClient, exp_id: str, name: str, candidate: ModelCandidate
) -> None:
    """Delete versions of this model and data left unvalidated by a killed registration,
    mark runs of it that never finished as killed, and delete what those runs left in a
    local artifact store (rmcore/register/leftovers.py)."""
    for version in client.search_model_versions(candidate.search_filter(name)):
        if version.tags.get(TAG_VALIDATED) != "true":
            log.warning("deleting unvalidated %s version %s", name, version.version)
            client.delete_model_version(name, version.version)
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_MODEL_HASH}` = '{candidate.model_hash}' "
        "and attributes.status = 'RUNNING'",
    )
    for run in runs:
        log.warning("marking unfinished run %s as killed", run.info.run_id)
        client.set_terminated(run.info.run_id, "KILLED")
        remove_run_leftovers(client, exp_id, run.info.run_id)


def validated_version(
    client: MlflowClient, name: str, candidate: ModelCandidate
) -> ModelVersion | None:
    """A validated version of this very model and test data, if one exists."""
    for version in client.search_model_versions(candidate.search_filter(name)):
        if version.tags.get(TAG_VALIDATED) == "true":
            return version
    return None


def create_validated_version(
    client: MlflowClient,
    name: str,
    logged_uri: str,
    candidate: ModelCandidate,
    expected: np.ndarray,
    description: str = "",
    experiment: str | None = None,
) -> ModelVersion:
    """Register a new version (the model card as its description), load it back from the
    registry, then tag it validated."""
    tags = {
        TAG_MODEL_HASH: candidate.model_hash,
        TAG_DATA_HASH: candidate.data_hash,
        TAG_ACCURACY: repr(candidate.accuracy),
        **({TAG_EXPERIMENT: experiment} if experiment else {}),
    }
    version = mlflow.register_model(logged_uri, name, tags=tags)
    if description:
        client.update_model_version(name, version.version, description=description)
    verify_loads(f"models:/{name}/{version.version}", expected)
    client.set_model_version_tag(name, version.version, TAG_VALIDATED, "true")
    return client.get_model_version(name, version.version)


def log_and_register(
    client: MlflowClient, exp_id: str, params: Params, layout: Layout, candidate: ModelCandidate
) -> ModelVersion:
    """One MLflow run: the pipeline's record, the model card and the pyfunc model, then a
    validated version."""
    remote = params.model.trust_remote_code
    card = model_card(params, layout, redact.redact_uri(client.tracking_uri))
    expected = reference_rewards(layout.model_dir, INPUT_EXAMPLE, remote)
    hash_tags = {TAG_MODEL_HASH: candidate.model_hash, TAG_DATA_HASH: candidate.data_hash}
    record = build_run_record(params, layout)
    title = run_name(params.registry.model_name, record, candidate.data_hash)
    with mlflow.start_run(experiment_id=exp_id, tags=hash_tags, run_name=title) as run:
        log_run_record(client, run.info.run_id, record)
        client.log_text(run.info.run_id, card, "README.md")
        logged_uri = log_reward_model(layout, expected, remote)
        name = params.registry.model_name
        return create_validated_version(
            client, name, logged_uri, candidate, expected, card, experiment_name()
        )


def log_run_record(client: MlflowClient, run_id: str, record: RunRecord) -> None:
    """Params, metrics, tags, reports, plots and dataset inputs of one pipeline run."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    params = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in record.params.items()]
    # a train curve's point at the time its step ended in training, other metrics now
    metrics = [
        Metric(n, v, record.step_times.get(step, now) if n.startswith("train/") else now, step)
        for n, v, step in record.metrics
    ]
    tags = [RunTag(k, v) for k, v in record.tags.items()]
    for start in range(0, len(params), 100):  # MLflow accepts 100 params per call
        client.log_batch(run_id, params=params[start : start + 100])
    for start in range(0, len(tags), 100):
        client.log_batch(run_id, tags=tags[start : start + 100])
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])
    for name, text in record.texts.items():
        client.log_text(run_id, text, name)
    for path, folder in record.files:
        client.log_artifacts(run_id, str(path), folder)
    for dataset in record.datasets:
        _log_dataset(dataset)


def _log_dataset(dataset: DatasetRecord) -> None:
    from mlflow.data.pandas_dataset import from_pandas

    frame = pd.read_parquet(dataset.path)
    with warnings.catch_warnings():  # "" and file: both map to a local source; same thing
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        data = from_pandas(
            frame,
            source=dataset.source or dataset.path.resolve().as_uri(),
            name=f"normalized/{dataset.split}",
            digest=dataset.md5 or None,  # this split's own file
        )
    tags = {"md5": dataset.md5, **({"dvc_md5": dataset.dvc_md5} if dataset.dvc_md5 else {})}
    mlflow.log_input(data, context=dataset.context, tags=tags)


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def champion_accuracy(
    client: MlflowClient,
    cfg: RegisterConfig,
    layout: Layout,
    champion: ModelVersion,
    data_hash: str,
) -> tuple[float, str]:
    """The champion's pairwise accuracy on this test data: from its tags, else re-scored."""
    from rmcore.evaluate.evaluation import accuracy_on_groups, raw_test_groups

    cached = f"{TAG_ACCURACY}.{data_hash[:16]}"
    if champion.tags.get(TAG_DATA_HASH) == data_hash and TAG_ACCURACY in champion.tags:
        return float(champion.tags[TAG_ACCURACY]), "tag"
    if cached in champion.tags:
        return float(champion.tags[cached]), "tag"
    groups, groups_hash = raw_test_groups(layout)
    if groups_hash != data_hash:
        raise RegistrationError(
            "the test data changed since metrics/eval.json was written; run evaluate again"
        )
    uri = f"models:/{cfg.model_name}/{champion.version}"
    log.info("re-scoring champion %s on this test data (%d groups)", uri, len(groups))
    frame = pd.DataFrame(
        {
            "prompt": [g["prompt"] for g in groups for _ in g["completions"]],
            "response": [c for g in groups for c in g["completions"]],
        }
    )
    try:
        rewards = isolated.predict(uri, frame, client.tracking_uri)
    except isolated.IsolatedScoringError as exc:
        raise RegistrationError(
            f"the champion {uri} could not be re-scored ({exc}); repair it or remove its "
            f"alias `{cfg.champion_alias}`, then run register again"
        ) from exc
    accuracy = accuracy_on_groups(groups, rewards)
    client.set_model_version_tag(cfg.model_name, champion.version, cached, repr(accuracy))
    return accuracy, "rescored"


def apply_gate(
    client: MlflowClient,
    cfg: RegisterConfig,
    layout: Layout,
    version: ModelVersion,
    accuracy: float,
    data_hash: str,
) -> dict[str, Any]:
    """Move the champion alias to `version` if it is at least as accurate, else challenger."""
    name = cfg.model_name
    champion = _alias_version(client, name, cfg.champion_alias)
    gate: dict[str, Any] = {"champion_before": None, "champion_accuracy": None, "how": None}
    promote = champion is None or champion.version == version.version
    if champion is not None and not promote:
        champ_acc, how = champion_accuracy(client, cfg, layout, champion, data_hash)
        gate.update(champion_before=int(champion.version), champion_accuracy=champ_acc, how=how)
        promote = accuracy >= champ_acc
    if promote:
        client.set_registered_model_alias(name, cfg.champion_alias, version.version)
        # The registered model reads as its champion's card.
        client.update_registered_model(name, description=version.description or "")
        challenger = _alias_version(client, name, cfg.challenger_alias)
        if challenger is not None and challenger.version == version.version:
            client.delete_registered_model_alias(name, cfg.challenger_alias)
    else:
        client.set_registered_model_alias(name, cfg.challenger_alias, version.version)
    gate["decision"] = cfg.champion_alias if promote else cfg.challenger_alias
    log.info("%s version %s -> %s (%s)", name, version.version, gate["decision"], gate)
    return gate


def register_model(params: Params, layout: Layout) -> dict[str, Any]:
    """The register stage: log the run, register the model once, apply the champion gate;
    one registration at a time per store (rmcore/register/lock.py)."""
    experiment = experiment_name()
    if experiment is not None and params.registry.in_experiments == "skip":
        reason = f"DVC experiment {experiment!r} with register.in_experiments: skip"
        log.info("not registered: %s", reason)
        return {"name": params.registry.model_name, "registered": False, "reason": reason}
    candidate = read_candidate(layout)
    # Locked before the first access: two processes creating a new SQLite store at once
    # would both run its schema migrations and one would fail.
    with exclusive_registration(resolve_tracking_uri(params.registry, layout)):
        client = connect(params.registry, layout)
        return _register(client, params, layout, candidate)


def _register(
    client: MlflowClient, params: Params, layout: Layout, candidate: ModelCandidate
) -> dict[str, Any]:
    cfg = params.registry
    exp_id = experiment_id(client, cfg, layout)
    forget_unvalidated(client, exp_id, cfg.model_name, candidate)
    version = validated_version(client, cfg.model_name, candidate)
    reused = version is not None
    if version is None:
        version = log_and_register(client, exp_id, params, layout, candidate)
    else:
        log.info("%s version %s already holds this model and data", cfg.model_name, version.version)
    experiment = experiment_name()
    if experiment is None or cfg.experiment_aliases:
        gate = apply_gate(client, cfg, layout, version, candidate.accuracy, candidate.data_hash)
    else:  # a trial: production aliases stay where they are unless asked
        gate = {
            "decision": None,
            "skipped": f"DVC experiment {experiment!r}: no alias moves "
            "(register.experiment_aliases: false)",
        }
        log.info("%s version %s: %s", cfg.model_name, version.version, gate["skipped"])
    aliases = sorted(client.get_model_version(cfg.model_name, version.version).aliases)
    return {
        "registered": True,
        "dvc_experiment": experiment,
        "name": cfg.model_name,
        "version": int(version.version),
        "aliases": aliases,
        "run_id": version.run_id,
        "model_uri": f"models:/{cfg.model_name}/{version.version}",
        "source": version.source,
        "reused_version": reused,
        "pairwise_accuracy": candidate.accuracy,
        "model_hash": candidate.model_hash,
        "test_data_hash": candidate.data_hash,
        "gate": gate,
        "tracking_uri": redact.redact_uri(client.tracking_uri),
    }
