"""Shared pieces of the benchmarks: data preparation through rmcore's own stages, matmul
peaks, model FLOPs, scoring and the one-line JSON output.

The benchmarks run from a checkout (`python benchmarks/<name>.py`); they put the repository
root on `sys.path` so `rmcore` (and, for `--quick`, `tests.tiny`) import without installing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from rmcore import stages  # noqa: E402
from rmcore.core.config import Params, parse_params  # noqa: E402
from rmcore.core.paths import Layout  # noqa: E402
from rmcore.model import last_layer  # noqa: E402
from rmcore.model.reward_model import RewardModel  # noqa: E402
from rmcore.text.tokenize import META_FILE, load_tokenized  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
HH_FILE = "hh-rlhf-harmless-base/test.jsonl.gz"
OASST_FILE = "oasst_en100/en_100_tree.jsonl"
HELDOUT_SPLIT = {"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 0}


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """`--data`: the shared data folder, made absolute as it is parsed (the stages run in
    projects the benchmarks write elsewhere, where a relative path would not be found)."""
    parser.add_argument(
        "--data",
        type=lambda value: Path(value).resolve(),
        default=SHARED_DATA,
        help="the shared data folder",
    )


def source(data_dir: Path, kind: str) -> dict[str, Any]:
    """A params.yaml source entry for one of the benchmark datasets."""
    if kind == "hh":
        return {"path": str(data_dir / HH_FILE), "format": "hh_rlhf", "name": "hh-rlhf"}
    if kind == "oasst":
        return {"path": str(data_dir / OASST_FILE), "format": "oasst", "name": "oasst"}
    if kind == "sample":  # the embedded synthetic data, as the repository's params.yaml reads it
        import yaml

        raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["data"]
        entry = dict(raw["sources"][0])
        entry["path"] = str(REPO / entry["path"])
        return entry
    raise ValueError(f"unknown dataset {kind!r}")


def make_params(
    kind: str,
    data_dir: Path,
    model: str,
    max_length: int,
    train: dict[str, Any],
    overrides: Sequence[str] = (),
) -> Params:
    """rmcore's defaults, with the benchmark's data, model and train settings, then
    `overrides` (`section.key=value`, value in YAML)."""
    import yaml

    raw: dict[str, Any] = {
        "data": {"sources": [source(data_dir, kind)], "split": HELDOUT_SPLIT},
        "tokenize": {"max_length": max_length},
        "model": {"name": model},
        "train": dict(train),
    }
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = yaml.safe_load(value)
    return parse_params(raw, "<benchmark>")


def prepare(params: Params, root: Path) -> tuple[Layout, dict[str, Any]]:
    """Ingest and tokenise with rmcore's stages; returns the layout and tokenize figures."""
    layout = Layout(root)
    stages.ingest(params, layout)
    start = time.perf_counter()
    report = stages.tokenize(params, layout)
    seconds = time.perf_counter() - start
    totals = report["totals"]
    pairs = sum(count_pairs(load_tokenized(layout, s)) for s in report["splits"])
    return layout, {
        "tokenize_groups": totals["groups"],
        "tokenize_pairs": pairs,
        "tokenize_seconds": round(seconds, 3),
        "tokenize_pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
    }


def count_pairs(ds: datasets.Dataset) -> int:
    """Pairs of different rank in all groups of a tokenised split."""
    return sum(pair_count(r) for r in ds["ranks"]) if len(ds) else 0


def pair_count(ranks: list[int]) -> int:
    """Ordered pairs of different rank in a group."""
    return sum(1 for a in ranks for b in ranks if a < b)


def first_groups(ds: datasets.Dataset, pairs: int, only_pairs: bool) -> datasets.Dataset:
    """The first groups of `ds` holding `pairs` pairs (only_pairs: k = 2 groups without a tie,
    so that one group is one pair, as TRL reads data)."""
    return ds.select(_first_rows(ds["ranks"], pairs, only_pairs, 0))


def consecutive_groups(
    ds: datasets.Dataset, counts: Sequence[int | None], only_pairs: bool
) -> list[datasets.Dataset]:
    """Disjoint selections of `ds`, each starting after the previous one's last group,
    holding `counts` pairs each (None: every group left), as `first_groups` picks them."""
    ranks, out, start = ds["ranks"], [], 0
    for pairs in counts:
        rows = _first_rows(ranks, pairs, only_pairs, start)
        out.append(ds.select(rows))
        start = rows[-1] + 1 if rows else start
    return out


def _first_rows(
    ranks: list[list[int]], pairs: int | None, only_pairs: bool, start: int
) -> list[int]:
    keep, total = [], 0
    for i in range(start, len(ranks)):
        n = pair_count(ranks[i])
        if n == 0 or (only_pairs and len(ranks[i]) != 2):
            continue
        keep.append(i)
        total += n
        if pairs is not None and total >= pairs:
            break
    if pairs is not None and total < pairs:
        raise ValueError(f"only {total} pairs available from group {start}, {pairs} requested")
    return keep


def write_project(root: Path, source_layout: Layout, splits: dict[str, datasets.Dataset]) -> Layout:
    """A project whose data/tokenized holds the given splits (and the source's meta.json)."""
    layout = Layout(root)
    shutil.rmtree(layout.tokenized, ignore_errors=True)
    layout.tokenized.mkdir(parents=True)
    shutil.copy(source_layout.tokenized / META_FILE, layout.tokenized / META_FILE)
    for name, ds in splits.items():
        ds.save_to_disk(str(layout.tokenized / name))
    return layout


def matmul_peak(
    dtype: torch.dtype, device: str, sizes: tuple[int, ...], budget_s: float, rounds: int = 1
) -> dict:
    """Best measured GFLOP/s of square matmuls (the machine's reachable peak for `dtype`):
    every size in turn, `rounds` times, so that a moment of other load or a slow clock
    costs one measurement, not the figure."""
    best, best_n = 0.0, 0
    for _ in range(rounds):
        for n in sizes:
            rate = _matmul_rate(dtype, device, n, budget_s)
            if rate > best:
                best, best_n = rate, n
    return {"gflops": round(best, 2), "size": best_n}


def _matmul_rate(dtype: torch.dtype, device: str, n: int, budget_s: float) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # warm-up
    _sync(device)
    reps, start = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - start < budget_s:
        a @ b
        reps += 1
        _sync(device)
        if time.perf_counter() - start > 4 * budget_s:
            break
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def nonembedding_params(model: torch.nn.Module) -> int:
    """Parameters outside embedding tables (token, position, type embeddings)."""
    embedded = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding)
        for p in m.parameters(recurse=False)
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embedded)


def train_flops(config: Any, n_params: int, lengths: np.ndarray) -> float:
    """Training FLOPs of sequences of `lengths`: 6 N per token plus attention (forward
    QK^T and AV, 4 L d per token and layer, times 3 for the backward), as in PaLM's MFU."""
    layers, width = config.num_hidden_layers, config.hidden_size
    tokens = float(lengths.sum())
    attention = 12.0 * layers * width * float((lengths.astype(np.float64) ** 2).sum())
    return 6.0 * n_params * tokens + attention


def skipped_last_layer_flops(model: RewardModel, lengths: np.ndarray) -> float:
    """Training FLOPs `train_flops` counts but the model does not compute: where its last
    layer runs for the pooled tokens only (`rmcore.model.last_layer`), the output projection
    and MLP of every other token of that layer."""
    if not model.pooled_last_layer:
        return 0.0
    modules = last_layer.pooled_only_modules(model.backbone) or []
    params = sum(p.numel() for module in modules for p in module.parameters())
    return 6.0 * params * float(lengths.sum() - len(lengths))


def sequence_lengths(ds: datasets.Dataset) -> np.ndarray:
    """Token count of every (prompt + completion) sequence of a tokenised split."""
    out = [
        len(p) + len(c)
        for p, cs in zip(ds["prompt_ids"], ds["completion_ids"], strict=True)
        for c in cs
    ]
    return np.asarray(out, dtype=np.int64)


def decoder_dir(
    root: Path, layers: int, width: int, heads: int, tokenizer: str = "minilm-l6"
) -> str:
    """A random-init GPT-NeoX (rotary, parallel residual, like Pythia) with our packaged
    tokenizer, saved as a model directory usable as `model.name`."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from rmcore.text.tokenizer import load_tokenizer

    root = Path(root)
    if (root / "config.json").is_file():
        return str(root)
    tok = load_tokenizer(tokenizer)
    config = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=2048,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return str(root)


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 dot products in hardware


def cpu_kind() -> dict[str, Any]:
    """The CPU's model, the flags that decide its matmul speed per precision, and whether
    rmcore treats it as computing bf16 natively (RMPIPE_CPU_BF16 may override the flags)."""
    from rmcore.train.accelerator import BF16_OVERRIDE, cpu_has_native_bf16

    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    words = set(text.split())
    return {
        "model": model,
        "flags": [flag for flag in CPU_FLAGS if flag in words],
        "native_bf16": cpu_has_native_bf16(),
        BF16_OVERRIDE: os.environ.get(BF16_OVERRIDE),
    }


def start_benchmark(device: str = "cpu") -> None:
    """Logging to stderr, no progress bars, and on the CPU no GPU (accelerate would pick one)."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    datasets.disable_progress_bars()


def environment() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_avg_1m": round(load[0], 2),
    }


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one JSON line on stdout (logs go to stderr)."""
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()
