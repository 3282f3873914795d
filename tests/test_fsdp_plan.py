"""FSDP that shards: the wrap plan (each decoder or encoder layer its own unit), the bf16
policy on GPUs, and a real two-process run on CPU (gloo) that shards by the plan, steps, and
gathers the full weights the train stage saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

from rmcore.core.config import LoraConfig, ModelConfig, TokenizeConfig, TrainConfig
from rmcore.model.reward_model import RewardModel, build_reward_model
from rmcore.train.accelerator import make_accelerator
from rmcore.train.fsdp import fsdp_plugin, mixed_precision_policy, shard_units, wrap_classes
from tests.conftest import REPO_ROOT
from tests.tiny_families import make_family

# family: (unit classes, the stack of layers, other units)
LAYERS = {
    "llama": (["LlamaDecoderLayer"], "backbone.model.layers", []),
    "qwen2": (["Qwen2DecoderLayer"], "backbone.model.layers", []),
    "gpt2": (["GPT2Block"], "backbone.transformer.h", []),
    "neox": (["GPTNeoXLayer"], "backbone.gpt_neox.layers", []),
    "bert": (
        ["BertEmbeddings", "BertLayer"],
        "backbone.bert.encoder.layer",
        ["backbone.bert.embeddings"],
    ),
    # no _no_split_modules: the class of its stack of layers
    "deberta-v2": (["DebertaV2Layer"], "backbone.deberta.encoder.layer", []),
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fsdp-models")
    return {family: make_family(family, root / family) for family in LAYERS}


def build(path: str, lora: bool = False) -> RewardModel:
    cfg = ModelConfig(name=path, lora=LoraConfig(enabled=lora, rank=2))
    return build_reward_model(cfg, TokenizeConfig())


@pytest.mark.parametrize("family", sorted(LAYERS))
def test_each_layer_is_a_unit(models: dict[str, str], family: str) -> None:
    classes, stack, others = LAYERS[family]
    model = build(models[family])
    assert set(classes) <= set(model._no_split_modules)
    assert wrap_classes(model) == classes
    assert shard_units(model) == [*others, f"{stack}.0", f"{stack}.1", ""]
    # accelerate's own FSDP2 policy, given our plugin, picks the same modules
    plugin = fsdp_plugin(model, "no", cuda=False)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    assert policy is not None
    picked = [name for name, module in model.named_modules() if policy(module)]
    assert picked == shard_units(model)[:-1]
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"


def test_lora_model_is_sharded_by_the_same_layers(models: dict[str, str]) -> None:
    pytest.importorskip("peft")
    model = build(models["llama"], lora=True)
    assert shard_units(model) == ["backbone.model.layers.0", "backbone.model.layers.1", ""]


def test_bf16_policy_on_gpus_only() -> None:
    policy = mixed_precision_policy("bf16", cuda=True)
    assert policy.param_dtype == torch.bfloat16 and policy.reduce_dtype == torch.float32
    assert mixed_precision_policy("bf16", cuda=False) is None
    assert mixed_precision_policy("no", cuda=True) is None


def test_fsdp_needs_the_model(models: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="needs the model"):
        make_accelerator(TrainConfig(distributed="fsdp"), True)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True])  # LoRA's adapters and head add to the plain case
def test_two_cpu_processes_shard_step_and_gather(
    models: dict[str, str], lora: bool, tmp_path: Path
) -> None:
    """accelerate shards on GPUs only; torch's own `fully_shard` does on CPUs (gloo)."""
    if lora:
        pytest.importorskip("peft")
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node=2"]
    command += [str(REPO_ROOT / "tests" / "fsdp_worker.py"), models["llama"], str(tmp_path)]
    done = subprocess.run(
        [*command, *(["lora"] if lora else [])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in ranks:
        assert report["fsdp_units"] == ["", "backbone.model.layers.0", "backbone.model.layers.1"]
        assert report["forward_equal"] and report["step_equal"]
    # each process holds half of every weight's rows (embedding rows may split unevenly)
    name = "backbone.model.layers.0.self_attn.q_proj" + (".base_layer" if lora else "")
    assert [r["local_shapes"][f"{name}.weight"] for r in ranks] == [[16, 32], [16, 32]]
    assert ranks[0]["saved_equal"]
