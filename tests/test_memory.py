"""The memory estimate (rmcore.train.memory): its parameter counts match the real models, its
parts move the way each setting says, it is within a stated factor of a measured peak, and the
table in docs/training.md is the one it computes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from rmcore.core.config import LoraConfig, ModelConfig, TokenizeConfig
from rmcore.model.reward_model import build_reward_model
from rmcore.train.memory import GIB, MODELS, Plan, Shape, estimate, table
from tests.conftest import REPO_ROOT
from tests.tiny import _bpe_tokenizer

SMALL = Shape(vocab=1000, hidden=256, layers=3, heads=8, kv_heads=2, intermediate=688)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parameter_count_is_the_models() -> None:
    config = LlamaConfig(
        vocab_size=SMALL.vocab,
        hidden_size=SMALL.hidden,
        num_hidden_layers=SMALL.layers,
        num_attention_heads=SMALL.heads,
        num_key_value_heads=SMALL.kv_heads,
        intermediate_size=SMALL.intermediate,
    )
    config.num_labels = 1
    with torch.device("meta"):
        model = LlamaForSequenceClassification(config)
    assert SMALL.params == sum(p.numel() for p in model.parameters())
    assert MODELS["Qwen2.5-0.5B"].params == pytest.approx(494e6, rel=0.01)  # as published


def test_lora_count_is_what_trains(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    tokenizer = _bpe_tokenizer(pad="eos", chat_template=False, corpus=None)
    shape = Shape(len(tokenizer), 64, 2, 4, 2, 96)
    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
    )
    config.num_labels = 1
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = ModelConfig(name=str(tmp_path), lora=LoraConfig(enabled=True, rank=8))
    model = build_reward_model(cfg, TokenizeConfig())
    assert shape.lora_params(8) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_each_setting_moves_its_parts() -> None:
    shape = MODELS["Qwen2.5-1.5B"]
    base = estimate(shape, Plan(tokens=8192))
    gc = estimate(shape, Plan(tokens=8192, checkpointing=True))
    assert gc["activations"] < base["activations"] / 5 and gc["weights"] == base["weights"]
    fsdp = estimate(shape, Plan(tokens=8192, processes=8, fsdp=True))
    assert fsdp["optimizer"] == base["optimizer"] / 8
    ddp = estimate(shape, Plan(tokens=8192, processes=8))
    assert ddp["gradients"] == 2 * base["gradients"]  # the bucket copy
    lora = estimate(shape, Plan(tokens=8192, lora_rank=16, weights_bytes=2))
    assert lora["optimizer"] < base["optimizer"] / 50 and lora["weights"] == base["weights"] / 2
    double = estimate(shape, Plan(tokens=16384))
    assert double["activations"] == pytest.approx(2 * base["activations"])
    assert base["total"] == pytest.approx(sum(v for k, v in base.items() if k != "total"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_estimate_is_within_a_factor_of_the_measured_peak(tmp_path: Path) -> None:
    """Measured on the CPU in fp32 (the estimate's fp32 compute): the process's peak resident
    memory over what it held before the model. CPU kernels keep more than the estimate counts
    (our packed attention's gathered copies, the allocator's arenas): the estimate must lie
    between half the measured peak and 1.25 times it."""
    from transformers import LlamaForCausalLM

    tokenizer = _bpe_tokenizer(pad=None, chat_template=False, corpus=None)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        intermediate_size=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    worker = REPO_ROOT / "tests" / "memory_worker.py"
    done = subprocess.run(
        [sys.executable, str(worker), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = result["estimate"]["total"] / result["measured"]
    assert 0.5 < ratio < 1.25, (ratio, result)
    assert result["measured"] > 100 * 2**20  # the run really allocated (weights + AdamW alone)


@pytest.mark.gpu
def test_estimate_is_close_to_cuda_peak(tmp_path: Path) -> None:
    """On a GPU the allocator is exact: within 25% of torch's peak allocation."""
    shape = Shape(1000, 1024, 4, 8, 2, 2816)
    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        pad_token_id=0,
    )
    config.num_labels = 1
    model: torch.nn.Module = LlamaForSequenceClassification(config)
    model = model.cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    ids = torch.randint(1, shape.vocab, (8, 1024), device="cuda")
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(input_ids=ids).logits.float().square().sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = torch.cuda.max_memory_allocated() - before + shape.params * 4  # weights were in
    assert estimate(shape, Plan(tokens=8 * 1024))["total"] == pytest.approx(measured, rel=0.25)


def test_docs_table_is_the_estimate() -> None:
    text = (REPO_ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    assert table() in text, "docs/training.md: rerun `python -m rmcore.train.memory`"
    assert GIB == 2**30
