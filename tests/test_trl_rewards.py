"""RL loops get the pipeline's rewards: TRL's GRPOTrainer given the saved model directory
(conversational prompts, through the saved chat template) or the pipeline's reward function
(string and conversational prompts, truncation included), TRL's PPO-style `get_reward` on a
decoder, and OpenRLHF's reward model reading a decoder's directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.evaluate.metrics import normalize_rewards
from rmcore.model.reward_model import build_reward_model, load_reward_model, set_reward_stats
from rmcore.model.scoring import score_texts
from rmcore.register.reward_function import PipelineReward
from rmcore.text.tokenize import encode_records
from tests.test_input_format import spread_head
from tests.tiny import FILLER, make_tiny_bert, make_tiny_neox

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

CFG = TokenizeConfig(max_length=128)
PROMPTS = [
    [{"role": "user", "content": "tell me about tea"}],
    [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "the cats"},
        {"role": "assistant", "content": "so we can do that"},
        {"role": "user", "content": "music?"},
    ],
]
REPLIES = ["great clear helpful answer", "awful rude wrong"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("trl")
    backbones = {
        "bert": make_tiny_bert(root / "bert"),
        "neox": make_tiny_neox(root / "neox"),
        "neox_chat": make_tiny_neox(root / "neox_chat", chat_template=True),
    }
    out = {"policy": make_tiny_neox(root / "policy", chat_template=True)}
    for kind, backbone in backbones.items():
        torch.manual_seed(0)
        model = build_reward_model(ModelConfig(name=backbone), CFG)
        spread_head(model)
        model.save_pretrained(root / f"rm-{kind}")
        out[kind] = str(root / f"rm-{kind}")
    return out


def _trainer(policy: str, reward: Any, tmp_path: Path) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        use_cpu=True,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        report_to=[],
        bf16=False,
    )
    data = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    return GRPOTrainer(model=policy, reward_funcs=reward, args=args, train_dataset=data)


def _trl_rewards(trainer: Any, prompts: list[Any], completions: list[Any]) -> np.ndarray:
    """TRL's own reward computation on one batch of (prompt, completion) rows."""
    inputs = [{"prompt": p} for p in prompts]
    ids = [[0] for _ in completions]
    rewards = trainer._calculate_rewards(inputs, prompts, completions, ids)
    return rewards[:, 0].cpu().numpy()


@pytest.mark.parametrize("kind", ["bert", "neox", "neox_chat"])
def test_grpo_given_the_model_directory_gets_our_rewards_for_conversations(
    saved: dict[str, str], kind: str, tmp_path: Path
) -> None:
    trainer = _trainer(saved["policy"], saved[kind], tmp_path)
    completions = [[{"role": "assistant", "content": r}] for r in REPLIES]
    got = _trl_rewards(trainer, PROMPTS, completions)
    expected = score_texts(load_reward_model(saved[kind]), PROMPTS, REPLIES)
    assert np.ptp(expected) > 1e-3  # rewards that tell the rows apart
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_grpo_with_the_pipeline_reward_function_gets_our_rewards_for_any_prompt(
    saved: dict[str, str], tmp_path: Path
) -> None:
    """String prompts (one user turn) and a prompt past max_length, which TRL's own path
    would neither format nor truncate as the pipeline does."""
    reward = PipelineReward(saved["bert"])
    trainer = _trainer(saved["policy"], reward, tmp_path)
    long_prompt = " ".join(FILLER * 20)
    strings = ["tell me about tea", long_prompt]
    got = _trl_rewards(trainer, strings, REPLIES)
    expected = score_texts(load_reward_model(saved["bert"]), strings, REPLIES)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    conversational = _trl_rewards(
        trainer, PROMPTS, [[{"role": "assistant", "content": r}] for r in REPLIES]
    )
    np.testing.assert_allclose(
        conversational, score_texts(load_reward_model(saved["bert"]), PROMPTS, REPLIES), atol=1e-5
    )
    stats = {"mean": 0.5, "std": 2.0}
    reward.model.reward_stats = stats
    normalised = PipelineReward(reward.model, normalize=True)(strings, REPLIES)
    np.testing.assert_allclose(normalised, (expected - 0.5) / 2.0, atol=1e-5)


def test_ppo_get_reward_on_a_decoder_gives_our_rewards(saved: dict[str, str]) -> None:
    """TRL's PPO-style get_reward reads the decoder's `score` head at the last real token of
    the pipeline's token ids (right-padded with the pad token, distinct from the end token)."""
    from transformers import AutoModelForSequenceClassification
    from trl.experimental.utils import get_reward

    model = load_reward_model(saved["neox"])
    encoded = encode_records(model.tokenizer, PROMPTS, [[r] for r in REPLIES], CFG)
    sequences = [e.prompt_ids + e.completion_ids[0] for e in encoded]
    pad = int(model.tokenizer.pad_token_id)
    width = max(len(s) for s in sequences)
    batch = torch.tensor([s + [pad] * (width - len(s)) for s in sequences])
    context = min(len(e.prompt_ids) for e in encoded)
    hf = AutoModelForSequenceClassification.from_pretrained(saved["neox"]).eval()
    with torch.no_grad():
        _, rewards, _ = get_reward(hf, batch, pad, context)
    np.testing.assert_allclose(rewards.numpy(), score_texts(model, PROMPTS, REPLIES), atol=1e-5)


def _openrlhf_rewards(directory: Path, sequences: list[list[int]], pad: int) -> np.ndarray:
    """What OpenRLHF's reward model (`get_llm_for_sequence_regression(path, "reward")`)
    computes: the backbone class from the checkpoint, the bias-free linear head named by
    `config.value_head_prefix` on every hidden state, read at the last attended token, with
    positions counted from the attention mask; sequences padded on the left, as its rollouts
    batch prompts."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(directory)
    weights = load_file(str(directory / "model.safetensors"))
    head = weights[f"{config.value_head_prefix}.weight"]  # [1, H]
    assert f"{config.value_head_prefix}.bias" not in weights  # its head has none
    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    base = AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        hidden = base(ids, attention_mask=mask, position_ids=positions).last_hidden_state
    values = (hidden @ head.T).squeeze(-1)  # [B, T]
    last = width - 1 - mask.fliplr().argmax(dim=1)
    return values[torch.arange(len(sequences)), last].numpy()


def test_openrlhf_reads_a_decoder_like_the_pipeline(saved: dict[str, str], tmp_path: Path) -> None:
    """Given the pipeline's token ids, OpenRLHF's reward model gives the pipeline's rewards,
    and with `--normalize_reward` the pipeline's normalised rewards: the train stage's reward
    stats are in config.json as `mean` and `std`."""
    from transformers import AutoConfig

    directory = Path(shutil.copytree(saved["neox"], tmp_path / "rm"))
    stats = {"mean": 0.25, "std": 2.0, "count": 10}
    set_reward_stats(directory, stats)
    config = AutoConfig.from_pretrained(directory)
    assert (config.value_head_prefix, config.mean, config.std) == ("score", 0.25, 2.0)
    model = load_reward_model(directory)
    encoded = encode_records(model.tokenizer, PROMPTS, [[r] for r in REPLIES], CFG)
    sequences = [e.prompt_ids + e.completion_ids[0] for e in encoded]
    rewards = _openrlhf_rewards(directory, sequences, int(model.tokenizer.pad_token_id))
    expected = score_texts(model, PROMPTS, REPLIES)
    np.testing.assert_allclose(rewards, expected, atol=1e-5)
    normalised = (rewards - config.mean) / config.std
    np.testing.assert_allclose(normalised, normalize_rewards(expected, stats), atol=1e-5)


def test_rl_config_keys_only_where_openrlhf_reads_the_pipeline_rewards(
    saved: dict[str, str], tmp_path: Path
) -> None:
    """An encoder's head is not a per-token `score` layer: no `value_head_prefix` (OpenRLHF
    would read other rewards); stats that cannot normalise leave no `mean`/`std`."""
    from transformers import AutoConfig

    bert = Path(shutil.copytree(saved["bert"], tmp_path / "bert"))
    set_reward_stats(bert, {"mean": 0.25, "std": 2.0})
    assert not hasattr(AutoConfig.from_pretrained(bert), "value_head_prefix")
    neox = Path(shutil.copytree(saved["neox"], tmp_path / "neox"))
    set_reward_stats(neox, {"mean": 0.25, "std": 2.0})
    set_reward_stats(neox, {"mean": 0.25, "std": 0.0})
    config = AutoConfig.from_pretrained(neox)
    assert config.value_head_prefix == "score" and not hasattr(config, "mean")
