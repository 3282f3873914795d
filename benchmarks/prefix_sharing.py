"""Prefix sharing on a decoder: training pairs/s with and without it, on the same batches.

    python benchmarks/prefix_sharing.py                       # hh-rlhf and OASST, CPU
    python benchmarks/prefix_sharing.py --datasets hh --steps 4 --rounds 2

A GPT-NeoX decoder (random init from config, `--layers` x `--width`, rotary positions) with
rmcore's packaged tokenizer trains on the first `--pairs` pairs of each dataset's train split
(ingested and tokenised by rmcore's stages; hh-rlhf has long shared multi-turn prompts,
OASST groups of k = 2..9 replies). Two copies of the same initial model take turns on the
same steps of the same epoch plan, one with `share_prefix` (one prompt copy per group) and
one without; both use the packed layout, the fastest without sharing. Each round's best is
kept. The two loss trajectories are compared too (sharing is exact for causal models).
Prints one JSON line.
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

log = logging.getLogger("benchmarks.prefix_sharing")


class Trainer:
    """A decoder reward model with its optimiser, trained in one batch layout."""

    def __init__(self, model_dir: str, layout: BatchLayout, params: Params) -> None:
        torch.manual_seed(0)
        self.model = build_reward_model(ModelConfig(name=model_dir))
        if layout.packed and not self.model.enable_packing():
            raise RuntimeError("the decoder cannot be packed")
        self.layout, self.params = layout, params
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-5, fused=True)
        self.model.train()
        self.losses: list[float] = []

    def step(self, data: PackedGroups, groups: np.ndarray) -> tuple[int, int]:
        batch = collate(data, groups, int(self.model.tokenizer.pad_token_id), layout=self.layout)
        out = forward_loss(self.model, batch, self.params.loss)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(float(out.loss))
        return out.n_pairs, batch.n_tokens


def dataset_groups(kind: str, args: argparse.Namespace, model_dir: str, root: Path) -> Any:
    params = h.make_params(kind, args.data, model_dir, args.max_length, {})
    layout, _ = h.prepare(params, root / kind)
    train = load_tokenized(layout, "train")
    return params, h.first_groups(train, min(args.pairs, h.count_pairs(train)), only_pairs=False)


def compare(kind: str, args: argparse.Namespace, model_dir: str, root: Path) -> dict[str, Any]:
    params, train = dataset_groups(kind, args, model_dir, root)
    data = PackedGroups.from_dataset(train)
    plan = plan_epoch(data.group_lengths, args.batch, 0, 0)[: args.steps]
    layouts = {"shared": BatchLayout(True, True), "unshared": BatchLayout(packed=True)}
    trainers = {name: Trainer(model_dir, lay, params) for name, lay in layouts.items()}
    seconds: dict[str, list[float]] = {name: [] for name in layouts}
    counts: dict[str, tuple[int, int]] = {}
    for round_ in range(args.rounds):
        for name, trainer in trainers.items():
            trainer.losses.clear()
            start = time.perf_counter()
            done = [trainer.step(data, groups) for groups in plan]
            seconds[name].append(time.perf_counter() - start)
            counts[name] = (sum(d[0] for d in done), sum(d[1] for d in done))
            log.info("%s round %d %s %.2f s (load %.2f)", kind, round_, name,
                     seconds[name][-1], os.getloadavg()[0])  # fmt: skip
    result: dict[str, Any] = {"groups": len(data), "k": _k_range(data), "steps": len(plan)}
    for name in layouts:
        best = min(seconds[name])
        result[f"{name}_pairs_per_s"] = round(counts[name][0] / best, 3)
        result[f"{name}_tokens"] = counts[name][1]
        result[f"{name}_seconds"] = [round(s, 2) for s in seconds[name]]
    result["speedup"] = round(result["shared_pairs_per_s"] / result["unshared_pairs_per_s"], 3)
    result["token_ratio"] = round(result["unshared_tokens"] / result["shared_tokens"], 3)
    # Both copies took the same updates from the same weights: their losses must agree.
    diffs = np.abs(np.subtract(trainers["shared"].losses, trainers["unshared"].losses))
    result["last_round_max_loss_diff"] = float(diffs.max())
    return result


def _k_range(data: PackedGroups) -> list[int]:
    return [int(data.k.min()), int(data.k.max())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_data_option(p)
    p.add_argument("--datasets", default="hh,oasst")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="rmpipe-prefix-") as tmp:
        root = Path(tmp)
        model_dir = h.decoder_dir(root / "decoder", args.layers, args.width, args.heads)
        result: dict[str, Any] = {
            "decoder": {"layers": args.layers, "width": args.width, "heads": args.heads},
            "batch": args.batch,
            "max_length": args.max_length,
        }
        for kind in args.datasets.split(","):
            result[kind] = compare(kind, args, model_dir, root)
        result.update(h.environment())
        h.emit(result)


if __name__ == "__main__":
    main()
