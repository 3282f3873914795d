"""Padding-free packing and prefix sharing give the rewards (and the training) of padded rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TypedDict

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from rmcore import stages
from rmcore.core.config import ModelConfig
from rmcore.core.paths import Layout
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.layout import choose_layout
from rmcore.model.reward_model import RewardModel, build_reward_model
from rmcore.model.scoring import score_groups
from rmcore.text.tokenize import FEATURES, load_tokenized, save_tokenized
from tests.tiny import make_tiny_bert, make_tiny_neox, tiny_params, write_synthetic

PLAIN, PACKED = BatchLayout(), BatchLayout(packed=True)
SHARED, SHARED_PACKED = BatchLayout(share_prefix=True), BatchLayout(True, True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("backbones")
    return {"bert": make_tiny_bert(root / "bert"), "neox": make_tiny_neox(root / "neox")}


def groups(
    n: int = 9, seed: int = 1, prompt: tuple[int, int] = (1, 31), comp: tuple[int, int] = (1, 13)
) -> datasets.Dataset:
    """Random token groups, k = 2..4, with tied ranks, prompts of 1..30 tokens."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("group_id", "source", "ranks")}
    rows.update(prompt_ids=[], completion_ids=[])
    for g in range(n):
        k = 2 + g % 3
        rows["group_id"].append(str(g))
        rows["source"].append("s")
        rows["ranks"].append([0, 0, 1, 2][:k] if g % 2 else list(range(k)))
        rows["prompt_ids"].append(rng.integers(10, 300, rng.integers(*prompt)).tolist())
        rows["completion_ids"].append(
            [rng.integers(10, 300, rng.integers(*comp)).tolist() for _ in range(k)]
        )
    return as_dataset(rows)


def as_dataset(rows: dict[str, list]) -> datasets.Dataset:
    features = datasets.Features({k: FEATURES[k] for k in rows})
    return datasets.Dataset.from_dict(rows, features=features)


def model_of(name: str, pooling: str = "auto", attn: str | None = None) -> RewardModel:
    torch.manual_seed(0)
    model = build_reward_model(ModelConfig(name=name, pooling=pooling))
    if attn:
        model.backbone.set_attn_implementation(attn)
    return model.eval()


def rewards(
    model: RewardModel,
    layout: BatchLayout,
    batch_size: int = 4,
    data: datasets.Dataset | None = None,
) -> np.ndarray:
    data = groups() if data is None else data
    return np.concatenate(score_groups(model, data, batch_size, layout=layout))


@pytest.mark.parametrize(
    ("kind", "pooling"), [("bert", "auto"), ("bert", "mean"), ("neox", "auto"), ("neox", "mean")]
)
def test_packed_rewards_equal_padded(backbones: dict[str, str], kind: str, pooling: str) -> None:
    model = model_of(backbones[kind], pooling)
    expected = rewards(model, PLAIN, batch_size=3)
    assert model.enable_packing()
    assert np.allclose(rewards(model, PACKED), expected, atol=1e-5)
    assert np.allclose(rewards(model, PLAIN, batch_size=5), expected, atol=1e-5)


@pytest.mark.parametrize(("kind", "layout"), [("bert", PACKED), ("neox", SHARED_PACKED)])
def test_chunks_of_similar_length_give_the_same_rewards(
    backbones: dict[str, str], kind: str, layout: BatchLayout
) -> None:
    """Big batches of mixed lengths attend in chunks, each only as wide as it needs."""
    model = model_of(backbones[kind])
    data = groups(n=24, prompt=(1, 4), comp=(1, 60))
    batch = collate(PackedGroups.from_dataset(data), np.arange(24), 0, layout=layout)
    assert batch.segments is not None and batch.segments.chunks is not None
    widths = [width for _, width in batch.segments.chunks]
    assert len(widths) > 1 and max(widths) > min(widths)
    expected = rewards(model, PLAIN, batch_size=5, data=data)
    assert model.enable_packing()
    assert np.allclose(rewards(model, layout, batch_size=24, data=data), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "neox"])
def test_packed_attention_keeps_sequences_apart(backbones: dict[str, str], kind: str) -> None:
    """Packed states equal each sequence's own; plain SDPA on the row would mix them."""
    model = model_of(backbones[kind])
    assert model.enable_packing()
    batch = collate(PackedGroups.from_dataset(groups()), np.arange(4), pad_id=0, layout=PACKED)
    plain = collate(PackedGroups.from_dataset(groups()), np.arange(4), pad_id=0)
    assert batch.segments is not None
    ids, positions = batch.input_ids, batch.position_ids
    base = model.backbone.base_model
    kwargs = {"packed_segments": batch.segments}
    apart = base(input_ids=ids, position_ids=positions, **kwargs).last_hidden_state[0]
    own = base(input_ids=plain.input_ids, attention_mask=plain.attention_mask).last_hidden_state
    real = plain.attention_mask.bool()
    assert torch.allclose(apart, own[real], atol=1e-5)  # [S, H] in the same token order
    model.backbone.set_attn_implementation("sdpa")
    mixed = base(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=positions)
    assert not torch.allclose(apart, mixed.last_hidden_state[0], atol=1e-3)


class Lengths(TypedDict):
    """Ranges of the prompt and completion lengths of `groups`."""

    prompt: tuple[int, int]
    comp: tuple[int, int]


SHAPES: dict[str, Lengths] = {  # packed, long prompts run as one block-masked sequence per group
    "short_prompts": {"prompt": (1, 8), "comp": (8, 24)},
    "long_prompts": {"prompt": (60, 90), "comp": (1, 4)},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_rewards_equal_unshared(
    backbones: dict[str, str], attn: str, shape: str
) -> None:
    """Causal model: each completion after one prompt copy scores as in its own row."""
    model, data = model_of(backbones["neox"], attn=attn), groups(**SHAPES[shape])
    expected = rewards(model, PLAIN, data=data)
    assert np.allclose(rewards(model, SHARED, data=data), expected, atol=1e-5)
    if attn == "sdpa":
        assert model.enable_packing()
        assert np.allclose(rewards(model, SHARED_PACKED, data=data), expected, atol=1e-5)
        batch = collate(PackedGroups.from_dataset(data), np.arange(4), 0, layout=SHARED_PACKED)
        assert batch.segments is not None
        assert (batch.segments.masks is not None) == (shape == "long_prompts")


def test_shared_rows_mask_positions_and_scored_tokens() -> None:
    rows: dict[str, list[Any]] = {
        "group_id": ["a"],
        "source": ["s"],
        "ranks": [[1, 0, 1]],
        "prompt_ids": [[5, 6]],
        "completion_ids": [[[7, 2], [8, 9, 2], [2]]],
    }
    packed = PackedGroups.from_dataset(as_dataset(rows))
    batch = collate(packed, np.array([0]), pad_id=0, layout=SHARED)
    assert batch.input_ids.tolist() == [[5, 6, 7, 2, 8, 9, 2, 2]]
    assert batch.position_ids is not None and batch.score_index is not None
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 2, 3, 4, 2]]
    assert batch.score_index.tolist() == [3, 6, 7]  # last token of each completion
    mask = batch.attention_mask[0, 0].int().tolist()
    assert mask[4] == [1, 1, 0, 0, 1, 0, 0, 0]  # completion 2 sees the prompt, not completion 1
    assert mask[7] == [1, 1, 0, 0, 0, 0, 0, 1]
    assert mask[1] == [1, 1, 0, 0, 0, 0, 0, 0]  # the prompt is causal
    assert sorted(zip(batch.better.tolist(), batch.worse.tolist(), strict=True)) == [(1, 0), (1, 2)]


def test_packed_shared_rows_are_one_causal_sequence_per_completion() -> None:
    rows: dict[str, list[Any]] = {
        "group_id": ["a", "b"],
        "source": ["s", "s"],
        "ranks": [[1, 0, 1], [0, 1]],
        "prompt_ids": [[5, 6], [4]],
        "completion_ids": [[[7, 2], [8, 9, 2], [2]], [[3, 2], [2]]],
    }
    packed = PackedGroups.from_dataset(as_dataset(rows))
    batch = collate(packed, np.array([0, 1]), pad_id=0, multiple=1, layout=SHARED_PACKED)
    segments = batch.segments
    assert segments is not None and segments.masks is None
    assert batch.input_ids.tolist() == [[5, 6, 7, 2, 8, 9, 2, 2, 4, 3, 2, 2]]
    assert segments.bounds == [(0, 8), (8, 12)]
    views = [row[ok].tolist() for row, ok in zip(segments.index, segments.valid, strict=True)]
    assert views == [[0, 1, 2, 3], [0, 1, 4, 5, 6], [0, 1, 7], [8, 9, 10], [8, 11]]
    # outputs: the prompt from the group's first completion, each completion from its own
    width = segments.index.shape[1]
    assert segments.flat_valid.tolist() == [
        *(0, 1, 2, 3),
        *(width + 2, width + 3, width + 4),
        2 * width + 2,
        *(3 * width, 3 * width + 1, 3 * width + 2),
        4 * width + 1,
    ]
    with pytest.raises(ValueError, match="causal attention only"):
        segments.attn_mask(causal=False)


def test_share_prefix_is_refused_for_encoders(backbones: dict[str, str]) -> None:
    bert, neox = model_of(backbones["bert"]), model_of(backbones["neox"])
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="exact only for causal models"):
        choose_layout(bert, cpu, share_prefix=True)
    assert choose_layout(bert, cpu) == PACKED  # auto: no sharing for an encoder
    assert choose_layout(neox, cpu) == SHARED_PACKED
    assert choose_layout(neox, cpu, packing="off") == SHARED
    assert choose_layout(neox, cpu, packing="off", share_prefix=False) == PLAIN
    with pytest.raises(ValueError, match="exact only for causal models"):
        choose_layout(model_of(backbones["neox"], "mean"), cpu, share_prefix=True)


@pytest.fixture(scope="module")
def neox_project(backbones: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("neox-project")
    write_synthetic(Layout(root), n_train=48, n_val=8, n_test=4)
    stages.tokenize(tiny_params(backbones["neox"]), Layout(root))
    return root


@pytest.mark.parametrize(
    "variants",
    [
        ({"share_prefix": False}, {"share_prefix": True}),
        ({"packing": "off"}, {"packing": "on"}),
    ],
    ids=["share_prefix", "packing"],
)
@pytest.mark.precision
def test_training_loss_trajectory_is_unchanged(
    backbones: dict[str, str], neox_project: Path, tmp_path: Path, variants: tuple
) -> None:
    histories = []
    for i, train in enumerate(variants):
        layout = Layout(tmp_path / str(i))
        shutil.copytree(neox_project / "data", layout.root / "data")
        # fp32: the layouts are exact, but bf16 autocast rounds them differently (atol below)
        fp32 = {"epochs": 1, "batch_size": 6, "mixed_precision": "no"}
        params = tiny_params(backbones["neox"], train={**fp32, **train})
        metrics = stages.train(params, layout)
        assert metrics["pairs_trained"] > 0
        histories.append(pd.read_csv(layout.train_steps))
    assert len(histories[0]) == len(histories[1]) == 8
    for column in ("loss", "accuracy", "pairs", "grad_norm"):
        assert np.allclose(histories[0][column], histories[1][column], atol=1e-4), column
    if "share_prefix" in variants[1]:  # fewer tokens through the model for the same pairs
        assert histories[1]["tokens"].sum() < histories[0]["tokens"].sum()


def test_an_empty_split_round_trips(tmp_path: Path) -> None:
    """A split with no groups (e.g. validation: 0) saves and loads back."""
    layout = Layout(tmp_path)
    save_tokenized(groups(0), layout, "validation")
    assert len(load_tokenized(layout, "validation")) == 0


@pytest.mark.parametrize("fp32", [True, False])
def test_packed_attention_under_bf16_autocast(
    backbones: dict[str, str], monkeypatch: pytest.MonkeyPatch, fp32: bool
) -> None:
    """Under bf16 autocast on CPU the packed states stay bf16 and match the padded ones to
    bf16's rounding, whether the attention computes in fp32 (CPUs without AMX) or in bf16."""
    from rmcore.model import packing

    monkeypatch.setattr(packing, "cpu_attention_in_fp32", lambda: fp32)
    model = model_of(backbones["bert"])
    assert model.enable_packing()
    data = PackedGroups.from_dataset(groups())
    batch = collate(data, np.arange(4), pad_id=0, layout=PACKED)
    plain = collate(data, np.arange(4), pad_id=0)
    assert batch.segments is not None
    base = model.backbone.base_model
    with torch.autocast("cpu", dtype=torch.bfloat16):
        apart = base(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            packed_segments=batch.segments,
        ).last_hidden_state[0]
    own = base(input_ids=plain.input_ids, attention_mask=plain.attention_mask).last_hidden_state
    assert torch.allclose(apart.float(), own[plain.attention_mask.bool()], atol=0.1)
    # the attention itself hands back the compute dtype
    q, k, v = (torch.randn(1, 2, batch.input_ids.shape[1], 8, dtype=torch.bfloat16) for _ in "qkv")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = packing.packed_attention(
            torch.nn.Module(), q, k, v, None, packed_segments=batch.segments
        )
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("grad", [True, False])
def test_cpu_packed_attention_upcasts_only_for_gradients(
    monkeypatch: pytest.MonkeyPatch, grad: bool
) -> None:
    """On a CPU without AMX the bf16 attention computes in fp32 while gradients are recorded
    (its fp32 backward is faster there) and in bf16 without them (scoring, validation)."""
    from rmcore.model import packing

    monkeypatch.setattr(packing, "cpu_attention_in_fp32", lambda: True)
    seen: list[torch.dtype] = []
    sdpa = packing.F.scaled_dot_product_attention

    def recording(q: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(q.dtype)
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(packing.F, "scaled_dot_product_attention", recording)
    segments = packing.Segments.build([5, 3])
    q, k, v = (torch.randn(1, 2, 8, 8, dtype=torch.bfloat16, requires_grad=grad) for _ in "qkv")
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = packing.packed_attention(
            torch.nn.Module(), q, k, v, None, packed_segments=segments
        )
    assert seen == [torch.float32 if grad else torch.bfloat16]
    assert out.dtype == torch.bfloat16
