"""Stop a training whose loss or gradient is no longer a finite number.

Once a step's loss or gradient norm is NaN or infinite, every later step is too (AdamW spreads
the NaN into every weight), and the run would go on to save a model that scores NaN and a
metrics file that is not JSON. The loop checks each step's reduced metrics (the same on every
process, so all stop together) and raises before anything is saved: exit status 2, since a
retry with the same params diverges the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rmcore.core.config import ConfigError, TrainConfig


class TrainingDiverged(ConfigError):
    """The loss or gradient became NaN or infinite; the message says at which step and what
    to change."""


def check_finite(row: Mapping[str, float], step: int, total: int, cfg: TrainConfig) -> None:
    """Raise TrainingDiverged when `row` (one step's metrics) has a non-finite loss or
    gradient norm."""
    bad = [name for name in ("loss", "grad_norm") if not math.isfinite(row[name])]
    if not bad:
        return
    found = ", ".join(f"{name} {row[name]}" for name in bad)
    raise TrainingDiverged(
        f"training diverged at step {step} of {total} ({found}, lr {row['lr']:.3g}); nothing "
        f"was saved. Try a lower train.lr (now {cfg.lr:g}), a larger train.warmup_ratio (now "
        f"{cfg.warmup_ratio:g}), a smaller train.max_grad_norm (now {cfg.max_grad_norm:g}) or "
        f"train.mixed_precision: no (now {cfg.mixed_precision}), then run train again"
    )
