"""One GPU, one command, under 8 minutes: our trainer (packed and padded) against TRL's
RewardTrainer on random-init Qwen2-like decoders of ~0.5B and ~1.5B parameters. Prints one
JSON line.

    python benchmarks/gpu_check.py            # H100/H200: bf16, max_length 2048
    python benchmarks/gpu_check.py --quick    # seconds on a CPU: a tiny config (CI)

Nothing is downloaded: the configs are built in code (Qwen2.5-0.5B's and -1.5B's shapes, its
151,936-row embedding included), the tokenizer is a byte-level BPE trained here on the
benchmark's own words, the data are synthetic ranked pairs of 400 to 1,850 tokens, written as
the ingest stage writes them and tokenised by our tokenize stage. Both trainers get the same
model, pairs (one epoch of `steps * batch` pairs, no truncation), batch, learning rate and
precision (bf16 autocast over fp32 weights, no gradient checkpointing).

Reported per model: pairs/s and tokens/s (real tokens), MFU (model FLOPs, 6 N + attention,
over the bf16 matmul peak measured in the same run), peak device memory (host memory on a CPU),
the attention kernel our trainer used, and our speed over TRL's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h  # also puts the repository on sys.path
import numpy as np
import torch

from rmcore import stages
from rmcore.core.paths import Layout
from rmcore.text.tokenize import load_tokenized

log = logging.getLogger("benchmarks.gpu_check")

# Qwen2.5 shapes: hidden, layers, heads, kv heads, intermediate, vocabulary
SIZES = {
    "0.5b": (896, 24, 14, 2, 4864, 151936),
    "1.5b": (1536, 28, 12, 2, 8960, 151936),
    "tiny": (64, 2, 4, 2, 128, 0),  # 0: the tokenizer's vocabulary
}
MAX_BATCH = 8  # pairs per step, fewer where padded rows would not fit the GPU (estimated)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU, tiny config, seconds (CI)")
    p.add_argument("--sizes", default=None, help="comma-separated: 0.5b, 1.5b, tiny")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    p.add_argument(
        "--batch", type=int, default=None, help="pairs per step (default: up to 8, as fits)"
    )
    p.add_argument("--max-length", type=int, default=None, help="default 2048 (quick: 128)")
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    q = args.quick
    args.sizes = (args.sizes or ("tiny" if q else "0.5b,1.5b")).split(",")
    args.steps = args.steps or (2 if q else 6)
    args.max_length = args.max_length or (128 if q else 2048)
    args.device = "cpu" if q else "cuda"
    return args


def words(n: int, seed: int = 0) -> list[str]:
    """n distinct pseudo-words of 3 to 8 letters."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 8))))
    return sorted(out)


def make_tokenizer(vocabulary: list[str]) -> Any:
    """A byte-level BPE that holds each benchmark word as about one token; ChatML template,
    EOS <|im_end|>, PAD <|endoftext|> (distinct, as in Qwen)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=len(vocabulary) + 600,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator([" ".join(vocabulary)] * 4 + ["user assistant system"] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def make_model(root: Path, size: str, tokenizer: Any, device: str) -> tuple[str, int]:
    """A random-init Qwen2 causal LM saved in bf16; (its directory, its parameter count)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hidden, layers, heads, kv, inter, vocab = SIZES[size]
    config = Qwen2Config(
        vocab_size=vocab or len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="bfloat16",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).bfloat16()
    n_params = sum(p.numel() for p in model.parameters())
    directory = root / f"qwen2-{size}"
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    return str(directory), n_params


def write_pairs(layout: Layout, vocabulary: list[str], n: int, max_length: int) -> None:
    """n train pairs (and 2 validation, 2 test) of 20% to 90% of max_length tokens."""
    from tests.tiny import write_groups

    rng = random.Random(1)

    def text(tokens: int) -> str:
        return " ".join(rng.choices(vocabulary, k=max(1, tokens)))

    def group(i: int, split: str) -> dict[str, Any]:
        total = rng.randint(max_length // 5, max_length * 9 // 10)
        prompt = rng.randint(total // 8, total // 2)
        room = max(total - prompt - 16, 8)  # 16: the chat template's tokens
        answers = [text(room), text(rng.randint(4, room))]
        return {
            "group_id": f"{split}-{i}",
            "source": "gpu_check",
            "prompt": [{"role": "user", "content": text(prompt)}],
            "completions": answers,
            "ranks": [0, 1],
            "scores": None,
            "split": split,
            "margins": None,
        }

    splits = {"train": n, "validation": 2, "test": 2}
    write_groups(layout, {s: [group(i, s) for i in range(k)] for s, k in splits.items()})


def params(args: argparse.Namespace, model: str, packing: str) -> Any:
    train = {
        "epochs": 1,
        "max_steps": args.steps,
        "batch_size": args.batch,
        "lr": 1e-5,
        "mixed_precision": "bf16",
        "packing": packing,
        "share_prefix": False,
        "keep_best": False,
        "save_every": 0,
        "eval_every": 0,
    }
    return h.make_params("sample", h.SHARED_DATA, model, args.max_length, train)


def reset_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_ours(args: argparse.Namespace, model: str, data: Layout, packing: str) -> dict:
    reset_memory(args.device)
    metrics = stages.train(params(args, model, packing), data)
    seconds = float(metrics["train_seconds"])
    memory = metrics["peak_device_mb"] if args.device == "cuda" else metrics["peak_host_mb"]
    return {
        "pairs_per_s": round(metrics["pairs_trained"] / seconds, 2),
        "tokens_per_s": round(metrics["tokens_trained"] / seconds, 1),
        "train_seconds": seconds,
        "tokens": metrics["tokens_trained"],
        "pairs": metrics["pairs_trained"],
        "peak_memory_mb": memory,
        "attention": metrics["attention"],
        "packing": metrics["packing"],
    }


def run_trl(args: argparse.Namespace, model: str, data: Layout, work: Path) -> dict:
    """TRL's RewardTrainer on the same pairs (chosen_ids / rejected_ids of our tokens)."""
    import datasets
    from trl import RewardConfig, RewardTrainer

    train = load_tokenized(data, "train")
    pairs = datasets.Dataset.from_dict(
        {
            "chosen_ids": [p + c[int(np.argmin(r))] for p, c, r in _rows(train)],
            "rejected_ids": [p + c[int(np.argmax(r))] for p, c, r in _rows(train)],
        }
    )
    config = RewardConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=args.batch,
        learning_rate=1e-5,
        num_train_epochs=1,
        max_steps=args.steps,
        max_length=args.max_length,
        bf16=True,
        gradient_checkpointing=False,
        use_cpu=args.device == "cpu",
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    reset_memory(args.device)
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs on stdout
        trainer = RewardTrainer(model=model, args=config, train_dataset=pairs)
        result = trainer.train()
    seconds = float(result.metrics["train_runtime"])
    n = min(args.steps * args.batch, len(pairs))
    tokens = sum(
        len(a) + len(b)
        for a, b in zip(pairs["chosen_ids"][:n], pairs["rejected_ids"][:n], strict=True)
    )
    out = {
        "pairs_per_s": round(n / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "train_seconds": round(seconds, 2),
        "tokens": tokens,
        "peak_memory_mb": _peak_mb(args.device),
    }
    del trainer
    return out


def _rows(ds: Any) -> Any:
    return zip(ds["prompt_ids"], ds["completion_ids"], ds["ranks"], strict=True)


def _peak_mb(device: str) -> float:
    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    from rmcore.train.memory import peak_memory

    return float(peak_memory(torch.device("cpu"))["peak_host_mb"] or 0.0)


def mfu(model: str, data: Layout, run: dict, peak_gflops: float) -> float:
    """Model FLOPs of the real tokens trained / seconds / the bf16 matmul peak."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        net = AutoModelForSequenceClassification.from_config(config)
    lengths = h.sequence_lengths(load_tokenized(data, "train"))
    flops = h.train_flops(config, h.nonembedding_params(net), lengths)
    return round(flops / run["train_seconds"] / 1e9 / peak_gflops, 4)


def fitting_batch(args: argparse.Namespace, size: str) -> int:
    """The most pairs per step (up to 8) whose padded rows of max_length tokens fit 70% of the
    GPU by `rmcore.train.memory.estimate`, with room for its error (4 on a CPU)."""
    from rmcore.train.memory import Plan, Shape, estimate

    if args.device != "cuda":
        return 4
    hidden, layers, heads, kv, inter, vocab = SIZES[size]
    shape = Shape(vocab, hidden, layers, heads, kv, inter)
    budget = 0.7 * torch.cuda.get_device_properties(0).total_memory
    batch = MAX_BATCH
    while batch > 1 and estimate(shape, Plan(tokens=2 * batch * args.max_length))["total"] > budget:
        batch //= 2
    return batch


def check_size(args: argparse.Namespace, size: str, work: Path, peak: float) -> dict[str, Any]:
    args = argparse.Namespace(**{**vars(args), "batch": args.batch or fitting_batch(args, size)})
    vocabulary = words(2000)
    tokenizer = make_tokenizer(vocabulary)
    model, n_params = make_model(work, size, tokenizer, args.device)
    data = Layout(work / f"data-{size}")
    write_pairs(data, vocabulary, args.steps * args.batch, args.max_length)
    stages.tokenize(params(args, model, "auto"), data)
    out: dict[str, Any] = {"params": n_params, "batch_pairs": args.batch}
    for name, packing in (("ours_packed", "on"), ("ours_padded", "off")):
        out[name] = run_ours(args, model, data, packing)
        out[name]["mfu"] = mfu(model, data, out[name], peak)
    best = max(out["ours_packed"]["pairs_per_s"], out["ours_padded"]["pairs_per_s"])
    if not args.skip_trl:
        out["trl"] = run_trl(args, model, data, work)
        out["trl"]["mfu"] = mfu(model, data, out["trl"], peak)
        out["ratio_vs_trl"] = round(best / out["trl"]["pairs_per_s"], 3)
    out["attention"] = out["ours_packed"]["attention"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device == "cpu":
        import os

        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # accelerate would otherwise pick a GPU
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU; use --quick on a CPU")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start = time.perf_counter()
    sizes = (256,) if args.quick else (4096, 8192)
    peak = h.matmul_peak(torch.bfloat16, args.device, sizes, 0.2 if args.quick else 2.0)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "matmul_peak_gflops_bf16": peak["gflops"],
        "max_length": args.max_length,
        "steps": args.steps,
    }
    with tempfile.TemporaryDirectory(prefix="rmpipe-gpu-check-") as tmp:
        work = args.workdir or Path(tmp)
        for size in args.sizes:
            result[size] = check_size(args, size, work / size, peak["gflops"])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    h.emit(result)
    return result


if __name__ == "__main__":
    main()
