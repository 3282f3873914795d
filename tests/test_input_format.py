"""A saved reward model carries its input format: the chat template saved with its tokenizer
renders (prompt, reply) into the very token ids training used, so plain transformers gives
the pipeline's reward; long inputs are the pipeline's to truncate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.model.reward_model import build_reward_model, load_reward_model
from rmcore.model.scoring import score_texts
from rmcore.text.chat_template import template_ids
from rmcore.text.tokenize import encode_records
from tests.tiny import FILLER, make_tiny_bert, make_tiny_neox

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = TokenizeConfig(max_length=128)
SYSTEM = {"role": "system", "content": "be kind"}
ROWS: list[tuple[list[dict[str, str]], str]] = [
    ([{"role": "user", "content": "tell me about tea"}], "great clear answer"),
    (
        [
            SYSTEM,
            {"role": "user", "content": "the cats"},
            {"role": "assistant", "content": "so we can do that, thanks"},
            {"role": "user", "content": "music?"},
        ],
        "kind useful words",
    ),
    ([{"role": "user", "content": "rain?"}], ""),  # an empty reply still ends with the end token
]
LONG = ([{"role": "user", "content": " ".join(FILLER * 20)}], "awful rude wrong")


def spread_head(model: Any) -> None:
    """A head with unit-scale weights, so that random-init rewards differ by O(1)."""
    torch.manual_seed(1)
    for name, param in model.backbone.named_parameters():
        if name.startswith(("classifier", "score")):
            torch.nn.init.normal_(param, std=1.0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reward models saved by the pipeline on a BERT, a plain decoder and a ChatML decoder."""
    root = tmp_path_factory.mktemp("input-format")
    backbones = {
        "bert": make_tiny_bert(root / "bert"),
        "neox": make_tiny_neox(root / "neox"),
        "neox_chat": make_tiny_neox(root / "neox_chat", chat_template=True),
    }
    out = {}
    for kind, backbone in backbones.items():
        torch.manual_seed(0)
        model = build_reward_model(ModelConfig(name=backbone), CFG)
        spread_head(model)
        model.save_pretrained(root / f"rm-{kind}")
        out[kind] = root / f"rm-{kind}"
    return out


def _pipeline_ids(
    directory: Path, messages: list[dict[str, str]], reply: str, truncated: bool = False
) -> list[int]:
    model = load_reward_model(directory)
    (enc,) = encode_records(model.tokenizer, [messages], [[reply]], model.tokenize_config)
    assert enc.trimmed_prompt == truncated
    return enc.prompt_ids + enc.completion_ids[0]


@pytest.mark.parametrize("kind", ["bert", "neox", "neox_chat"])
def test_chat_template_gives_the_training_token_ids(saved: dict[str, Path], kind: str) -> None:
    tok = AutoTokenizer.from_pretrained(saved[kind])
    for messages, reply in ROWS:
        assert template_ids(tok, messages, reply) == _pipeline_ids(saved[kind], messages, reply)
    # Without the reply (or with a generation prompt) it renders the prompt as training did.
    messages = ROWS[1][0]
    model = load_reward_model(saved[kind])
    (enc,) = encode_records(model.tokenizer, [messages], [["x"]], model.tokenize_config)
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tok(prompt, add_special_tokens=False)["input_ids"] == enc.prompt_ids


@pytest.mark.parametrize("kind", ["bert", "neox", "neox_chat"])
def test_plain_transformers_on_the_template_gives_the_pipeline_reward(
    saved: dict[str, Path], kind: str
) -> None:
    tok = AutoTokenizer.from_pretrained(saved[kind])
    hf = AutoModelForSequenceClassification.from_pretrained(saved[kind]).eval()
    texts = [
        tok.apply_chat_template([*m, {"role": "assistant", "content": r}], tokenize=False)
        for m, r in ROWS
    ]
    batch = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = hf(**batch).logits[:, 0].numpy()
    ours = score_texts(load_reward_model(saved[kind]), [m for m, _ in ROWS], [r for _, r in ROWS])
    assert np.ptp(ours) > 1e-3  # rewards that tell the rows apart
    np.testing.assert_allclose(got, ours, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "neox_chat"])
def test_a_long_prompt_is_truncated_by_the_pipeline_only(saved: dict[str, Path], kind: str) -> None:
    """The template cannot count tokens: past max_length, only score_texts (and the pyfunc
    model) reproduce the training input; the template gives the whole, longer text."""
    messages, reply = LONG
    pipeline = _pipeline_ids(saved[kind], messages, reply, truncated=True)
    assert len(pipeline) <= CFG.max_length
    tok = AutoTokenizer.from_pretrained(saved[kind])
    whole = template_ids(tok, messages, reply)
    assert len(whole) > CFG.max_length
    assert whole[-len(pipeline) // 4 :] == pipeline[-len(pipeline) // 4 :]  # same reply end


def test_the_pipeline_formats_with_the_backbone_template_and_records_it(
    saved: dict[str, Path],
) -> None:
    import json

    from tests.tiny import CHATML

    for kind, backbone in {"bert": None, "neox": None, "neox_chat": CHATML}.items():
        meta = json.loads((saved[kind] / "rmpipe.json").read_text())["input_format"]
        assert meta["backbone_chat_template"] == backbone
        assert meta["template"] == ("chat" if backbone else "plain")
        assert meta["chat_template_exact"] is True
        assert load_reward_model(saved[kind]).tokenizer.chat_template == backbone
