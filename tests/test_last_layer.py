"""The last layer computed for the pooled tokens only (`rmcore.model.last_layer`): the same
rewards and gradients as the whole layer, in padded and packed rows, on the encoder families
whose layers have the BERT form; the whole layer everywhere else."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rmcore.core.config import ModelConfig
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.lora import layer_stack
from rmcore.model.reward_model import RewardModel, build_reward_model
from tests.tiny_families import make_family

pytestmark = pytest.mark.usefixtures("one_thread")

NARROWED = ["bert", "roberta", "deberta-v2"]
PACKABLE = {"bert", "roberta"}  # (DeBERTa-v2's head takes padded rows only)


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("families")
    names = [*NARROWED, "modernbert", "llama"]
    return {name: make_family(name, Path(root) / name) for name in names}


def groups(seed: int = 0, n: int = 5) -> PackedGroups:
    """2n random-length completions, two for each of n random-length prompts (a group each)."""
    rng = np.random.default_rng(seed)
    prompts = [list(rng.integers(5, 200, int(rng.integers(3, 20)))) for _ in range(n)]
    completions = [list(rng.integers(5, 200, int(rng.integers(2, 15)))) for _ in range(2 * n)]
    return PackedGroups.from_sequences([p for p in prompts for _ in (0, 1)], completions)


def model_for(directory: str, pooling: str) -> RewardModel:
    torch.manual_seed(1)  # the same head for every call
    return build_reward_model(ModelConfig(name=directory, pooling=pooling)).eval()


def rewards_and_grads(
    model: RewardModel, packed: bool, narrowed: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.pooled_last_layer = narrowed
    data = groups()
    pad_id = int(model.tokenizer.pad_token_id)
    batch = collate(data, np.arange(len(data)), pad_id, layout=BatchLayout(packed=packed))
    model.zero_grad()
    rewards = model(**batch.model_inputs())
    (rewards * torch.linspace(-1, 1, len(rewards))).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


def last_layer_rows(model: RewardModel, packed: bool) -> torch.Size:
    """The shape of the last layer's output in one forward pass."""
    shapes: list[torch.Size] = []
    hook = layer_stack(model.backbone)[-1].register_forward_hook(
        lambda _m, _a, out: shapes.append((out[0] if isinstance(out, tuple) else out).shape)
    )
    try:
        rewards_and_grads(model, packed, narrowed=model.pooled_last_layer)
    finally:
        hook.remove()
    return shapes[0]


@pytest.mark.parametrize("family", NARROWED)
@pytest.mark.parametrize("pooling", ["auto", "last"])
def test_pooled_last_layer_gives_the_same_rewards_and_gradients(
    family_dirs: dict[str, str], family: str, pooling: str
) -> None:
    model = model_for(family_dirs[family], pooling)
    assert model.pooled_last_layer
    for packed in [False, True] if family in PACKABLE else [False]:
        if packed:
            assert model.enable_packing()
        whole, whole_grads = rewards_and_grads(model, packed, narrowed=False)
        pooled, pooled_grads = rewards_and_grads(model, packed, narrowed=True)
        torch.testing.assert_close(pooled, whole, rtol=1e-5, atol=1e-5)
        assert pooled_grads.keys() == whole_grads.keys()
        for name, grad in whole_grads.items():
            torch.testing.assert_close(pooled_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("packed", [False, True])
def test_last_layer_computes_one_row_per_sequence(
    family_dirs: dict[str, str], packed: bool
) -> None:
    model = model_for(family_dirs["bert"], "auto")
    model.enable_packing()
    sequences = len(groups())
    narrowed = last_layer_rows(model, packed)
    assert narrowed[:2] == ((1, sequences) if packed else (sequences, 1))
    model.pooled_last_layer = False
    whole = last_layer_rows(model, packed)
    assert whole[:2].numel() > sequences  # every token


@pytest.mark.parametrize(("family", "pooling"), [("bert", "mean"), ("modernbert", "auto")])
def test_whole_last_layer_where_it_is_needed_or_not_of_bert_form(
    family_dirs: dict[str, str], family: str, pooling: str
) -> None:
    assert not model_for(family_dirs[family], pooling).pooled_last_layer


def test_decoders_compute_the_whole_last_layer(family_dirs: dict[str, str]) -> None:
    assert not model_for(family_dirs["llama"], "auto").pooled_last_layer


def test_gradient_checkpointing_computes_the_whole_layer(family_dirs: dict[str, str]) -> None:
    """Recomputation runs in the backward pass, outside the forward call: no narrowing there."""
    model = model_for(family_dirs["bert"], "auto")
    model.enable_packing()
    expected, expected_grads = rewards_and_grads(model, packed=True, narrowed=False)
    model.train()
    model.backbone.config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.backbone.gradient_checkpointing_enable({"use_reentrant": False})
    rewards, grads = rewards_and_grads(model, packed=True, narrowed=True)
    torch.testing.assert_close(rewards, expected, rtol=1e-5, atol=1e-5)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_backbone_called_directly_computes_every_token(family_dirs: dict[str, str]) -> None:
    """The hook acts inside `RewardModel.forward` only; other threads and direct calls of
    the backbone see the whole layer while a reward model scores."""
    model = model_for(family_dirs["bert"], "auto")
    ids = torch.randint(5, 200, (3, 11))
    mask = torch.ones_like(ids)
    outside: list[torch.Size] = []

    def direct_call(*_: object) -> None:
        if outside:  # (the call below runs this hook too)
            return
        outside.append(torch.Size())
        worker = threading.Thread(
            target=lambda: outside.append(model.backbone.base_model(ids).last_hidden_state.shape)
        )
        worker.start()
        worker.join()

    hook = layer_stack(model.backbone)[0].register_forward_hook(direct_call)
    try:
        with torch.no_grad():
            model(ids, mask)
    finally:
        hook.remove()
    assert outside[1:] == [torch.Size([3, 11, 32])]
