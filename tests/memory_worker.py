"""One process of tests/test_memory.py: trains a 12M-parameter Llama-like reward model for
two steps on the CPU in fp32 and prints, as JSON, its peak resident memory above what the
process held before building the model, next to `rmcore.train.memory.estimate`.

    python tests/memory_worker.py MODEL_DIR
"""

from __future__ import annotations

import gc
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmcore.core.config import ModelConfig, TokenizeConfig, TrainConfig
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.reward_model import build_reward_model
from rmcore.train.memory import Plan, Shape, estimate
from rmcore.train.steps import make_optimizer

SHAPE = {"hidden": 768, "layers": 2, "heads": 8, "kv_heads": 2, "intermediate": 2048}


def resident(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in bytes."""
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    found = re.search(rf"{field}:\s+(\d+) kB", status)
    assert found is not None, status
    return int(found.group(1)) * 1024


def batch_groups(n: int = 8) -> PackedGroups:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 90, size=(n, 2))
    return PackedGroups.from_sequences(
        [list(rng.integers(10, 300, 20)) for _ in range(n)],
        [[list(rng.integers(10, 300, k)) for k in pair] for pair in lengths],
        [[0, 1]] * n,
    )


def main(model_dir: str) -> None:
    torch.set_num_threads(1)
    data = batch_groups()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")  # reset the peak (VmHWM)
    before = resident("VmRSS")
    model = build_reward_model(ModelConfig(name=model_dir), TokenizeConfig()).train()
    assert model.enable_packing()
    optimizer, _ = make_optimizer(model, TrainConfig(), 10, 1)
    batch = collate(
        data,
        np.arange(len(data)),
        int(model.tokenizer.pad_token_id),
        layout=BatchLayout(packed=True),
    )
    for _ in range(2):
        model(**batch.model_inputs()).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = resident("VmHWM") - before
    shape = Shape(vocab=model.backbone.config.vocab_size, **SHAPE)
    plan = Plan(tokens=batch.input_ids.numel(), weights_bytes=4, compute_bytes=4)
    parts = estimate(shape, plan)
    real = sum(p.numel() for p in model.parameters())
    sys.stdout.write(json.dumps({"measured": measured, "estimate": parts, "params": real}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
