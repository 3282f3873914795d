"""The one scoring path: rewards of tokenised groups, or of (prompt, response) texts.

Evaluation, training (its loss and validation), the reward statistics, the registered pyfunc
model, `rmpipe score` and the benchmarks all score through here. Groups are batched by length
in the fastest exact batch layout for the model and device, so rewards do not depend on batch
size or layout (beyond float rounding). Texts are tokenised as the tokenize stage does, so a
(prompt, response) scored alone gets the tokens, hence the reward, it had in evaluation.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch

from rmcore.core.config import SCORE_BATCH_SIZE
from rmcore.model.batches import Batch, BatchLayout, PackedGroups, collate
from rmcore.model.layout import choose_layout
from rmcore.model.reward_model import RewardModel
from rmcore.text.tokenize import encode_records

DEFAULT_BATCH_SIZE = SCORE_BATCH_SIZE


def batch_rewards(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Rewards [N] float32 of a collated batch, one per completion, group by group."""
    return model(**batch.model_inputs())


@torch.no_grad()
def score_groups(
    model: RewardModel,
    dataset: datasets.Dataset | PackedGroups,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str | None = None,
    layout: BatchLayout | None = None,
) -> list[np.ndarray]:
    """Reward of every completion of every group ([k] float32 each), in dataset row order.

    `device` None: where the model is. `layout` None: the fastest exact layout for this model
    and device (`rmcore.model.layout.choose_layout`).
    """
    packed = dataset if isinstance(dataset, PackedGroups) else PackedGroups.from_dataset(dataset)
    here = next(model.parameters()).device
    device = torch.device(device) if device is not None else here
    if device != here:  # (a sharded model stays as it is)
        model.to(device)
    layout = layout if layout is not None else choose_layout(model, device)
    pad_id = int(model.tokenizer.pad_token_id)
    order = np.argsort(-packed.group_lengths, kind="stable")
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(packed)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        groups = order[start : start + batch_size]
        batch = collate(packed, groups, pad_id, layout=layout).to(device)
        rewards = batch_rewards(model, batch).float().cpu().numpy()
        for g, chunk in zip(
            groups, np.split(rewards, np.cumsum(packed.k[groups])[:-1]), strict=True
        ):
            out[g] = chunk
    model.train(was_training)
    return out


def score_texts(
    model: RewardModel,
    prompts: list[list[dict[str, str]]] | list[str],
    responses: list[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Raw rewards [n] float32 for (prompt, response) rows; a string prompt is one user turn."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    messages = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
    encoded = encode_records(
        model.tokenizer, messages, [[r] for r in responses], model.tokenize_config
    )
    rows = PackedGroups.from_sequences(
        [e.prompt_ids for e in encoded], [e.completion_ids[0] for e in encoded]
    )
    rewards = score_groups(model, rows, batch_size)
    return np.concatenate(rewards) if rewards else np.empty(0, dtype=np.float32)
