"""Serving throughput: `mlflow models serve` of a registered reward model on loopback, with a
bounded number of client threads sending a fixed number of requests. Prints one JSON line:
requests/s, rows/s and p50/p99 latency at batch sizes 1 and 32 (rows per request).

    python benchmarks/serve.py                     # MiniLM-L6 registered here, hh-rlhf rows
    python benchmarks/serve.py --model-uri models:/reward-model@champion   # an existing one
    python benchmarks/serve.py --quick             # seconds: tiny model, the sample rows

Without --model-uri the packaged MiniLM-L6 backbone with a fresh head (--quick: a tiny
random BERT) is logged and registered as the register stage logs it (the pyfunc model,
rmcore as code) in a SQLite store under the work folder, its scoring precision recorded as the
train stage would (bf16 where the CPU computes it natively). With --model-uri,
$MLFLOW_TRACKING_URI says where the model lives. The server runs with `--env-manager local`
(this Python) and its default worker count; rows are (prompt, response) pairs from
../shared/data/hh-rlhf-harmless-base, or the embedded sample data with --quick or where that
folder is absent.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import harness as h  # also puts the repository on sys.path
import numpy as np
import requests

from tests.servers import stop_group, wait_until_answering

log = logging.getLogger("benchmarks.serve")
BATCH_SIZES = (1, 32)
MODEL_NAME = "reward-model-serve-bench"
SAMPLE = h.REPO / "data" / "sample" / "preferences.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny model, sample rows (CI)")
    p.add_argument("--model-uri", default=None, help="serve this model instead of registering")
    h.add_data_option(p)
    p.add_argument("--requests", type=int, default=None, help="per batch size (default 64)")
    p.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for it")
    args = p.parse_args(argv)
    args.requests = args.requests or (6 if args.quick else 64)
    return args


def hh_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    """(prompt messages, response) of hh-rlhf's chosen transcripts: every turn but the last
    assistant reply is the prompt."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            parts = re.split(r"\n\n(Human|Assistant): ", json.loads(line)["chosen"])[1:]
            turns = [
                {"role": "user" if role == "Human" else "assistant", "content": text.strip()}
                for role, text in zip(parts[::2], parts[1::2], strict=True)
            ]
            if len(turns) >= 2 and turns[-1]["role"] == "assistant":
                rows.append({"prompt": turns[:-1], "response": turns[-1]["content"]})
            if len(rows) >= limit:
                break
    return rows


def sample_rows(limit: int) -> list[dict[str, Any]]:
    rows = []
    with SAMPLE.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            rows += [{"prompt": record["prompt"], "response": c} for c in record["completions"]]
            if len(rows) >= limit:
                break
    return rows[:limit]


def load_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    wanted = max(BATCH_SIZES) * 8  # a pool the requests take their rows from
    hh = args.data / h.HH_FILE
    if not args.quick and hh.is_file():
        return hh_rows(hh, wanted), str(hh)
    return sample_rows(wanted), str(SAMPLE)


def register_model(work: Path, quick: bool) -> str:
    """A reward model logged as the register stage logs it and registered; its models:/ URI."""
    import mlflow
    import torch

    from rmcore.core.config import ModelConfig, TokenizeConfig
    from rmcore.core.paths import Layout
    from rmcore.model.reward_model import build_reward_model
    from rmcore.model.scoring import record_score_precision
    from rmcore.register.registry import INPUT_EXAMPLE, log_reward_model, reference_rewards
    from rmcore.train.accelerator import resolve_precision

    if quick:
        from tests.tiny import make_tiny_bert

        name = make_tiny_bert(work / "tiny-bert")
    else:
        name = "minilm-l6"
    torch.manual_seed(0)
    model = build_reward_model(ModelConfig(name=name), TokenizeConfig(max_length=512))
    record_score_precision(model, resolve_precision("auto", cuda=False))  # as train would
    layout = Layout(work / "project")
    model.save_pretrained(layout.model_dir)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("serve-benchmark")
    with mlflow.start_run():
        expected = reference_rewards(layout.model_dir, INPUT_EXAMPLE.copy())
        uri = log_reward_model(layout, expected, trust_remote_code=False)
    version = mlflow.register_model(uri, MODEL_NAME)
    return f"models:/{MODEL_NAME}/{version.version}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(model_uri: str, log_path: Path, timeout: float) -> Iterator[str]:
    """`mlflow models serve` on a free loopback port, in its own process group; its URL once
    /ping answers, and the whole group stopped afterwards."""
    port = free_port()
    cmd = [
        *(sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri),
        *("--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)),
    ]
    env = dict(os.environ)
    # the server starts its workers by name: this Python's scripts must be on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(h.REPO), env.get("PYTHONPATH", "")])
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(proc, f"{url}/ping", timeout, "mlflow models serve", log_path)
        yield url
    finally:
        stop_group(proc)


def load_test(
    url: str, rows: list[dict[str, Any]], batch: int, n_requests: int, clients: int
) -> dict[str, Any]:
    """`n_requests` requests of `batch` rows each from `clients` threads; latency per request.
    The requests start at rows spread evenly over the pool (wrapping round), at every batch
    size, so single rows are drawn from the whole pool as batches are."""
    starts = [i * len(rows) // n_requests for i in range(n_requests)]
    bodies = [
        {"dataframe_records": [rows[(start + j) % len(rows)] for j in range(batch)]}
        for start in starts
    ]
    local = threading.local()

    def send(body: dict[str, Any]) -> tuple[float, bool]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        reply = session.post(f"{url}/invocations", json=body, timeout=600)
        seconds = time.perf_counter() - start
        ok = reply.status_code == 200 and len(reply.json()["predictions"]) == batch
        return seconds, ok

    send(bodies[0])  # warm-up: the first request pays for lazy initialisation
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(send, bodies))
    wall = time.perf_counter() - start
    latencies = np.array([seconds for seconds, _ in results]) * 1000.0
    errors = sum(1 for _, ok in results if not ok)
    return {
        "batch_rows": batch,
        "requests": n_requests,
        "rows": n_requests * batch,
        "errors": errors,
        "seconds": round(wall, 3),
        "requests_per_s": round(n_requests / wall, 2),
        "rows_per_s": round(n_requests * batch / wall, 2),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU benchmark
    # a stopped benchmark stops its server too (SIGTERM would skip the cleanup otherwise)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="rmpipe-serve-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        env = {**h.environment(), "cpu": h.cpu_kind()}
        model_uri = args.model_uri
        if model_uri is None:
            # runs and registry both in the work folder's store (and the server reads it):
            # an exported MLFLOW_REGISTRY_URI would register the model somewhere else
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
            model_uri = register_model(work, args.quick)
        rows, source = load_rows(args)
        result: dict[str, Any] = {"benchmark": "serve", "model_uri": model_uri}
        with serving(model_uri, work / "serve.log", args.start_timeout) as url:
            for batch in BATCH_SIZES:
                figures = load_test(url, rows, batch, args.requests, args.clients)
                result[f"batch_{batch}"] = figures
                log.info("batch %d: %s", batch, figures)
        result["config"] = {
            "quick": args.quick,
            "requests_per_batch_size": args.requests,
            "clients": args.clients,
            "rows_from": source,
            "batch_sizes": list(BATCH_SIZES),
        }
        result["environment"] = env
        result["wall_s"] = round(time.perf_counter() - start, 1)
        h.emit(result)
        return result


if __name__ == "__main__":
    main()
