"""One process of tests/test_fsdp_plan.py's two-process run (torchrun, gloo, CPU).

Shards a reward model by `rmcore.train.fsdp.shard_units` with torch's `fully_shard` (what
accelerate does on GPUs; accelerate itself runs no FSDP on CPUs), takes one optimiser step,
gathers the full state dict and saves it as the train stage does; writes what it saw as JSON.

    torchrun --nproc_per_node 2 tests/fsdp_worker.py MODEL_DIR OUT_DIR [lora]
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor
from transformers import AutoModelForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmcore.core.config import LoraConfig, ModelConfig, TokenizeConfig
from rmcore.model.reward_model import build_reward_model
from rmcore.train.fsdp import shard_units


def _local_shape(param: torch.Tensor) -> list[int]:
    """The shape of this rank's shard of a parameter that `fully_shard` made a DTensor."""
    assert isinstance(param, DTensor), type(param)
    return list(param.to_local().shape)


def _tensors(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """A gathered full state dict, which holds a tensor under each name."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    assert tensors.keys() == state.keys(), sorted(state.keys() - tensors.keys())
    return tensors


def main(model_dir: str, out: Path, lora: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    cfg = ModelConfig(name=model_dir, lora=LoraConfig(enabled=lora, rank=4, dropout=0.0))
    model = build_reward_model(cfg, TokenizeConfig())
    with torch.no_grad():  # LoRA starts with B = 0: make the adapters matter
        for name, param in model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.full_like(param, 0.05))
    reference = copy.deepcopy(model)
    units = shard_units(model)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for name in units:
        fully_shard(model.get_submodule(name) if name else model, mesh=mesh)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 150, (4, 16), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded row: plain transformers finds its end by the pad id
    ids[1, 10:] = int(model.tokenizer.pad_token_id)
    steps = []
    for net in (model, reference):
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
        rewards = net(ids, mask)
        (rewards * torch.arange(1.0, 5.0)).sum().backward()
        optimizer.step()
        steps.append(rewards.detach())
    full = _tensors(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)))
    expected = reference.state_dict()
    local = {n: _local_shape(p) for n, p in model.named_parameters()}
    report = {
        "units": units,
        "fsdp_units": [n for n, m in model.named_modules() if isinstance(m, FSDPModule)],
        "local_shapes": local,
        "forward_equal": bool(torch.allclose(steps[0], steps[1], atol=1e-6)),
        "step_equal": sorted(full) == sorted(expected)
        and all(torch.allclose(full[k], expected[k], atol=1e-6) for k in expected),
    }
    if rank == 0:
        model.save_pretrained(out / "model", state_dict=full)
        plain = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
        with torch.no_grad():
            saved = plain(input_ids=ids, attention_mask=mask).logits[:, 0]
            report["saved_equal"] = bool(torch.allclose(saved, reference(ids, mask), atol=1e-5))
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "lora")
