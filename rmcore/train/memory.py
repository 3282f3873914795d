"""Memory: what a training run used at its peak (metrics/train.json), and what a run will need
per device, estimated from the model's shape (the table in docs/training.md).

The estimate counts, per device, in bytes:

- weights: P x (4 in fp32, 2 in bf16); FSDP: / processes, plus two layers gathered in the
  compute dtype (the one computing and the one prefetched);
- gradients and AdamW's two moments: T trainable parameters x 3 x their dtype (fp32 for LoRA
  adapters and heads); FSDP: / processes; DDP adds its bucket copy of the gradients;
- autocast's bf16 copies of the trainable fp32 weights, cached for the step;
- activations per token and layer (SDPA or flash-attention: no [T, T] score matrix kept):
  2 h in the residual stream's dtype (the weights') and 5 h + 3 kv + 4 i in the compute dtype
  (norm outputs, q/k/v, attention output, the MLP's gate, up, activation and product; h width,
  kv key/value width, i MLP width). With gradient checkpointing, each layer keeps its input
  only, and one layer's activations live again during its backward;
- a workspace of two [tokens, h + i] buffers for the backward pass.

Tokens are those fed to the model: real tokens when packed, rows x padded width when padded.
Measured against the CPU peak of a 25M-parameter model in tests/test_memory.py.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import torch

GIB = 2**30


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """`peak_host_mb`: this process's peak resident set (ru_maxrss, over its whole life);
    `peak_device_mb`: the most CUDA memory torch allocated on `device` (None without CUDA)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    host_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, else KiB
    device_mb = None
    if device.type == "cuda" and torch.cuda.is_available():
        device_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return {"peak_host_mb": round(host_mb, 1), "peak_device_mb": device_mb}


@dataclass(frozen=True)
class Shape:
    """A decoder's shape (Llama/Qwen/Mistral-like: gated MLP, grouped key/value heads)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int

    @property
    def kv_width(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def layer_params(self) -> int:
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_width
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def params(self) -> int:
        """Embedding, layers, final norm and the score head (no LM head)."""
        return self.vocab * self.hidden + self.layers * self.layer_params + 2 * self.hidden

    def lora_params(self, rank: int) -> int:
        """Adapters on every projection (q, k, v, o, gate, up, down) plus the score head."""
        h, kv, i = self.hidden, self.kv_width, self.intermediate
        per_layer = rank * ((h + h) * 2 + (h + kv) * 2 + (h + i) * 3)
        return self.layers * per_layer + h


@dataclass(frozen=True)
class Plan:
    """How a run trains: what is trained, in which dtypes, on how many devices."""

    tokens: int  # fed to the model per micro-batch (padded rows x width, or packed tokens)
    lora_rank: int = 0  # 0: full fine-tuning
    weights_bytes: int = 4  # 4: fp32 (master) weights, 2: bf16
    compute_bytes: int = 2  # 2: bf16 autocast, 4: fp32
    checkpointing: bool = False
    processes: int = 1
    fsdp: bool = False


def estimate(shape: Shape, plan: Plan) -> dict[str, float]:
    """Bytes per device by part, and their `total` (see the module docstring)."""
    p, h, i, t = shape.params, shape.hidden, shape.intermediate, plan.tokens
    trainable = shape.lora_params(plan.lora_rank) if plan.lora_rank else p
    trainable_bytes = 4 if plan.lora_rank else plan.weights_bytes
    shards = plan.processes if plan.fsdp else 1
    parts = {
        "weights": p * plan.weights_bytes / shards,
        "gradients": trainable * trainable_bytes / shards,
        "optimizer": 2 * trainable * trainable_bytes / shards,
    }
    if plan.fsdp:
        parts["weights"] += 2 * shape.layer_params * plan.compute_bytes
    elif plan.processes > 1:
        parts["gradients"] *= 2  # DDP's gradient buckets
    if plan.compute_bytes < trainable_bytes:  # autocast's cached bf16 copies
        cast = trainable if plan.lora_rank else p - shape.vocab * h
        parts["autocast_copies"] = cast * plan.compute_bytes
    per_layer = 2 * h * plan.weights_bytes + (5 * h + 3 * shape.kv_width + 4 * i) * (
        plan.compute_bytes
    )
    if plan.checkpointing:
        activations = t * (shape.layers * h * plan.weights_bytes + per_layer)
    else:
        activations = t * shape.layers * per_layer
    parts["activations"] = activations + t * h * plan.weights_bytes * 2  # embeddings, final
    parts["workspace"] = 2 * t * (h + i) * plan.compute_bytes
    parts["total"] = sum(parts.values())
    return parts


# Published shapes (config.json of each model; Qwen's small q/k/v biases left out)
MODELS = {
    "Qwen2.5-0.5B": Shape(151936, 896, 24, 14, 2, 4864),
    "Qwen2.5-1.5B": Shape(151936, 1536, 28, 12, 2, 8960),
    "Qwen2.5-3B": Shape(151936, 2048, 36, 16, 2, 11008),
    "Qwen2.5-7B": Shape(152064, 3584, 28, 28, 4, 18944),
    "Llama-3.1-8B": Shape(128256, 4096, 32, 32, 8, 14336),
}
TABLE_TOKENS = 8192  # per micro-batch: e.g. 4 pairs of 1,024-token sequences, packed
GPUS_GB = (24, 40, 80, 141)  # memory of common GPUs (decimal GB)
COLUMNS = {
    "full, DDP": Plan(TABLE_TOKENS, processes=8),
    "full, DDP, GC": Plan(TABLE_TOKENS, processes=8, checkpointing=True),
    "full, FSDP x8": Plan(TABLE_TOKENS, processes=8, fsdp=True),
    "full, FSDP x8, GC": Plan(TABLE_TOKENS, processes=8, fsdp=True, checkpointing=True),
    "LoRA r16, DDP": Plan(TABLE_TOKENS, lora_rank=16, weights_bytes=2, processes=8),
    "LoRA r16, DDP, GC": Plan(
        TABLE_TOKENS, lora_rank=16, weights_bytes=2, processes=8, checkpointing=True
    ),
}


def smallest_gpu(total_bytes: float) -> str:
    """The smallest common GPU that holds `total_bytes` plus 1 GiB of CUDA context and 10% for
    the allocator's fragmentation."""
    need = (total_bytes * 1.1 + GIB) / 1e9
    fits = [gb for gb in GPUS_GB if gb >= need]
    return f"{fits[0]} GB" if fits else "none"


def table() -> str:
    """The memory table of docs/training.md: GiB per GPU, and the smallest GPU that fits."""
    header = ["model", "params", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, shape in MODELS.items():
        cells = [name, f"{shape.params / 1e9:.2f}B"]
        for plan in COLUMNS.values():
            total = estimate(shape, plan)["total"]
            cells.append(f"{total / GIB:.1f} ({smallest_gpu(total)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
