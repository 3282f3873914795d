"""Training-step time of each CPU optimisation, one added at a time, on the same batches.

    python benchmarks/ablation.py                    # MiniLM-L6 on hh-rlhf, 6 steps, 3 rounds
    python benchmarks/ablation.py --configs base,packed --steps 4

Every configuration trains its own copy of the same initial model on the same steps of the
same epoch plan (batch 16, max length 512); the configurations take turns, round after
round, and each one's best round is reported, so that other load on the machine hurts all
alike. Prints one JSON line: seconds and pairs/s per configuration, and the speed-up of
each over the previous one.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h  # also puts the repository on sys.path
import numpy as np
import torch

from rmcore.core.config import ModelConfig, Params
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.reward_model import build_reward_model
from rmcore.text.tokenize import load_tokenized
from rmcore.train.plan import plan_epoch
from rmcore.train.steps import forward_loss

log = logging.getLogger("benchmarks.ablation")

# name -> (dropout off, fused AdamW, packed, length grouping); each adds one change.
CONFIGS: dict[str, dict[str, bool]] = {
    "base_no_grouping": {"dropout_off": False, "fused": False, "packed": False, "group": False},
    "base": {"dropout_off": False, "fused": False, "packed": False, "group": True},
    "dropout_off": {"dropout_off": True, "fused": False, "packed": False, "group": True},
    "fused_adamw": {"dropout_off": True, "fused": True, "packed": False, "group": True},
    "packed": {"dropout_off": True, "fused": True, "packed": True, "group": True},
}


class Trainer:
    """One configuration: its model, optimiser and batch layout."""

    def __init__(self, name: str, params: Params, model_name: str) -> None:
        self.name, self.params, self.opts = name, params, CONFIGS[name]
        torch.manual_seed(0)
        dropout = 0.0 if self.opts["dropout_off"] else None
        self.model = build_reward_model(ModelConfig(name=model_name, dropout=dropout))
        self.layout = BatchLayout(packed=self.opts["packed"])
        if self.layout.packed and not self.model.enable_packing():
            raise RuntimeError(f"{model_name} cannot be packed")
        fused = True if self.opts["fused"] else None
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=5e-5, fused=fused, foreach=None if fused else False
        )
        self.model.train()

    def step(self, data: PackedGroups, groups: np.ndarray) -> int:
        batch = collate(data, groups, 0, layout=self.layout)
        out = forward_loss(self.model, batch, self.params.loss)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out.n_pairs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_data_option(p)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pairs", type=int, default=512)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    names = args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="rmpipe-ablation-") as tmp:
        params = h.make_params("hh", args.data, "minilm-l6", 512, {})
        layout, _ = h.prepare(params, Path(tmp))
        train = h.first_groups(load_tokenized(layout, "train"), args.pairs, only_pairs=True)
    data = PackedGroups.from_dataset(train)
    trainers = [Trainer(name, params, "minilm-l6") for name in names]
    plans = {g: plan_epoch(data.group_lengths, 16, 0, 0, g)[: args.steps] for g in (True, False)}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    pairs: dict[str, int] = {}
    for round_ in range(args.rounds):
        for t in trainers:
            start, start_cpu = time.perf_counter(), time.process_time()
            pairs[t.name] = sum(t.step(data, g) for g in plans[t.opts["group"]])
            seconds[t.name].append(time.perf_counter() - start)
            cpu[t.name].append(time.process_time() - start_cpu)
            log.info("round %d %s %.2f s (load %.2f)", round_, t.name, seconds[t.name][-1],
                     os.getloadavg()[0])  # fmt: skip
    h.emit(summary(names, seconds, cpu, pairs, args))


def summary(names: list[str], seconds: dict, cpu: dict, pairs: dict, args: Any) -> dict:
    out: dict[str, Any] = {"steps": args.steps, "rounds": args.rounds, "configs": {}}
    previous = None
    for name in names:
        best = min(seconds[name])
        row = {
            "seconds": round(best, 2),
            "cpu_seconds": round(min(cpu[name]), 2),
            "pairs_per_s": round(pairs[name] / best, 3),
            "all_rounds_s": [round(s, 2) for s in seconds[name]],
            **CONFIGS[name],
        }
        if previous is not None:
            row["speedup_vs_previous"] = round(min(seconds[previous]) / best, 3)
        out["configs"][name] = row
        previous = name
    out.update(h.environment())
    return out


if __name__ == "__main__":
    main()
