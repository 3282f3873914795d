"""Memory: what a training run used at its peak (metrics/train.json)."""

from __future__ import annotations

import resource
import sys

import torch


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """`peak_host_mb`: this process's peak resident set (ru_maxrss, over its whole life);
    `peak_device_mb`: the most CUDA memory torch allocated on `device` (None without CUDA)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    host_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, else KiB
    device_mb = None
    if device.type == "cuda" and torch.cuda.is_available():
        device_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return {"peak_host_mb": round(host_mb, 1), "peak_device_mb": device_mb}
