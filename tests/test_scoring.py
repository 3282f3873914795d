"""The scoring path's precision (recorded with the model), its order and its modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.model.batches import PackedGroups
from rmcore.model.reward_model import RewardModel, build_reward_model, load_reward_model
from rmcore.model.scoring import (
    PRECISION_KEY,
    record_score_precision,
    score_groups,
    score_precision,
    score_texts,
)
from tests.tiny import make_tiny_bert, make_tiny_neox

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["tell me about cats", "is rain wet", "chess or tea", "a much longer prompt " * 6]
RESPONSES = ["great helpful answer here", "rude", "kind and clear thanks", "ok " * 9]
# bf16 keeps 8 significant bits: the tolerance layout checks use for half precision
BF16_ATOL = 3e-2


@pytest.fixture(scope="module", params=["bert", "neox"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RewardModel:
    root = tmp_path_factory.mktemp("scoring")
    make = make_tiny_bert if request.param == "bert" else make_tiny_neox
    torch.manual_seed(0)
    return build_reward_model(ModelConfig(name=make(root / request.param)), TokenizeConfig())


@pytest.mark.parametrize(
    ("trained", "scored"), [("no", "fp32"), ("fp16", "fp32"), ("bf16", "bf16")]
)
def test_precision_is_saved_with_the_model(
    model: RewardModel, tmp_path: Path, trained: str, scored: str
) -> None:
    assert record_score_precision(model, trained) == scored
    model.save_pretrained(tmp_path / "m")
    assert score_precision(load_reward_model(tmp_path / "m")) == scored
    record_score_precision(model, "no")


def test_a_model_without_the_record_scores_in_fp32(model: RewardModel) -> None:
    setattr(model.config, PRECISION_KEY, None)
    assert score_precision(model) == "fp32"


def test_an_unknown_precision_is_an_error_naming_the_key(model: RewardModel) -> None:
    setattr(model.config, PRECISION_KEY, "int8")
    try:
        with pytest.raises(ValueError, match=f"{PRECISION_KEY} 'int8'.*bf16.*fp32"):
            score_texts(model, PROMPTS, RESPONSES)
    finally:
        record_score_precision(model, "no")


@pytest.mark.precision
def test_bf16_scores_are_fp32_scores_to_bf16_rounding(model: RewardModel) -> None:
    fp32 = score_texts(model, PROMPTS, RESPONSES)
    record_score_precision(model, "bf16")
    try:
        bf16 = score_texts(model, PROMPTS, RESPONSES)
        alone = [score_texts(model, [p], [r])[0] for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    finally:
        record_score_precision(model, "no")
    assert not np.array_equal(bf16, fp32)  # autocast ran
    np.testing.assert_allclose(bf16, fp32, atol=BF16_ATOL)
    np.testing.assert_allclose(alone, bf16, atol=1e-5)  # batching changes nothing


def test_rewards_come_back_in_input_order(model: RewardModel) -> None:
    """Groups are scored longest first; the rewards return to the dataset's order."""
    tok = model.tokenizer
    ids = [tok(p)["input_ids"] for p in PROMPTS]
    comps = [[tok(r)["input_ids"][1:], tok(r + " " + r)["input_ids"][1:]] for r in RESPONSES]
    groups = PackedGroups.from_sequences(ids, comps, [[0, 1]] * len(ids))
    together = score_groups(model, groups, batch_size=3)
    for i in range(len(ids)):
        alone = score_groups(model, PackedGroups.from_sequences([ids[i]], [comps[i]]))
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5)
    assert score_groups(model, PackedGroups.from_sequences([], [])) == []


def test_scoring_between_training_steps_leaves_the_model_trainable(model: RewardModel) -> None:
    """A training model is scored under no_grad, not inference_mode, and stays in train mode."""
    model.train()
    try:
        score_texts(model, PROMPTS, RESPONSES)
        assert model.training
        enc = model.tokenizer(PROMPTS, return_tensors="pt", padding=True)
        model(enc["input_ids"], enc["attention_mask"]).sum().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    score_texts(model, PROMPTS, RESPONSES)
    assert not model.training
