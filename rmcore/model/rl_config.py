"""What RL frameworks read from a saved model's config.json beyond the Hugging Face keys.

OpenRLHF builds its reward model from the backbone class (`AutoModel`) and a bias-free linear
head named by `config.value_head_prefix`, read at the last attended token, and with
`--normalize_reward` returns (reward - `config.mean`) / `config.std`. A decoder saved with its
own `score` head on the last token (the default pooling) is exactly that, so its config gets
`value_head_prefix` and, once the train stage has measured them, the reward stats as
`mean` / `std`. Encoders and other poolings are left alone: their head is not a per-token
`score` layer, so OpenRLHF would read different rewards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safetensors import safe_open

from rmcore.core.atomic import write_text

CONFIG_FILE = "config.json"
VALUE_HEAD = "score"
WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS = "model.safetensors"


def write_rl_config(directory: str | Path, meta: dict[str, Any]) -> None:
    """Add the keys above to `directory`'s config.json where they apply (see the module
    docstring). `meta` is the model's rmpipe.json."""
    directory = Path(directory)
    if not (meta.get("decoder") and meta.get("native_pooling")):
        return
    if not _has_weight(directory, f"{VALUE_HEAD}.weight") or _has_weight(
        directory, f"{VALUE_HEAD}.bias"
    ):
        return  # a head OpenRLHF's bias-free one would not reproduce
    path = directory / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    config["value_head_prefix"] = VALUE_HEAD
    stats = meta.get("reward_stats") or {}
    mean, std = _finite(stats.get("mean")), _finite(stats.get("std"))
    if mean is not None and std is not None and std > 0:
        config["mean"], config["std"] = mean, std
    else:  # no (usable) stats: OpenRLHF's defaults, 0 and 1, rather than stale ones
        config.pop("mean", None)
        config.pop("std", None)
    write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _finite(value: Any) -> float | None:
    """`value` as a float if it is a finite number, else None."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _has_weight(directory: Path, name: str) -> bool:
    index = directory / WEIGHTS_INDEX
    if index.exists():
        return name in json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    weights = directory / WEIGHTS
    if not weights.exists():
        return False
    with safe_open(str(weights), framework="pt") as handle:
        return name in handle.keys()  # noqa: SIM118 (safe_open has keys(), no __contains__)
