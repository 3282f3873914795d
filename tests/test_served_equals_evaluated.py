"""The reward a consumer gets for (prompt, response) is the reward that was evaluated.

Evaluation scores a response inside its group (`rmcore.model.scoring.score_groups` on the tokenised
split); the registered model scores it alone (`rmcore.model.score_texts`, through the pyfunc).
Both must see the very same tokens, long (trimmed) prompts and cut completions included.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from rmcore import stages
from rmcore.core.config import EvalConfig, ModelConfig, TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.data.schema import GROUP_SCHEMA
from rmcore.model.reward_model import build_reward_model
from rmcore.model.scoring import (
    record_score_precision,
    score_groups,
    score_precision,
    score_texts,
)
from rmcore.text.tokenize import encode_records, tokenize_table
from rmcore.text.tokenizer import load_tokenizer
from tests.tiny import BAD, FILLER, GOOD, TOPICS, make_tiny_bert, make_tiny_neox, write_groups

pytestmark = pytest.mark.usefixtures("one_thread")

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("served-models")
    return {
        "bert": make_tiny_bert(root / "bert"),
        "neox": make_tiny_neox(root / "neox"),
        "neox_chat": make_tiny_neox(root / "neox_chat", chat_template=True),
        "minilm": "minilm-l6",  # the default backbone's real tokenizer
    }


def _prompt(i: int, rng: random.Random) -> list[dict[str, str]]:
    def words(n: int) -> str:
        return " ".join(rng.choices(FILLER + TOPICS, k=n))

    if i % 4 == 0:  # one user turn longer than max_length: cut from the left
        return [{"role": "user", "content": words(90)}]
    if i % 4 == 1:  # older turns to drop, a system message to keep
        turns = [{"role": "system", "content": "be kind"}]
        for _ in range(3):
            turns += [
                {"role": "user", "content": words(20)},
                {"role": "assistant", "content": words(12)},
            ]
        return [*turns, {"role": "user", "content": words(6)}]
    if i % 4 == 2:  # fits as it is
        return [{"role": "user", "content": words(5)}]
    return [
        {"role": "user", "content": words(30)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": words(40)},  # still too long alone
    ]


def long_groups(n: int = 12, split: str = "test") -> list[dict[str, Any]]:
    """Groups whose prompts often exceed max_length and whose completions differ in length
    (a one-word one, a mid-size one, one too long to fit beside any prompt)."""
    rng = random.Random(7)
    rows = []
    for i in range(n):
        completions = [
            rng.choice(GOOD),
            " ".join(rng.choices(GOOD + FILLER, k=12)),
            " ".join(rng.choices(BAD + FILLER, k=80)),
        ]
        rows.append(
            {
                "group_id": f"{split}-long-{i}",
                "source": "long",
                "prompt": _prompt(i, rng),
                "completions": completions,
                "ranks": [0, 1, 2],
                "scores": None,
                "split": split,
            }
        )
    return rows


def flat(rows: list[dict[str, Any]]) -> tuple[list[list[dict[str, str]]], list[str]]:
    """(prompt, response) rows, one per completion, in group order."""
    prompts = [r["prompt"] for r in rows for _ in r["completions"]]
    return prompts, [c for r in rows for c in r["completions"]]


@pytest.mark.parametrize("kind", ["bert", "neox", "neox_chat", "minilm"])
def test_a_response_alone_gets_its_tokens_from_the_group(models: dict[str, str], kind: str) -> None:
    tokenizer = load_tokenizer(models[kind])
    cfg = TokenizeConfig(max_length=MAX_LENGTH)
    rows = long_groups()
    groups = encode_records(
        tokenizer, [r["prompt"] for r in rows], [r["completions"] for r in rows], cfg
    )
    prompts, responses = flat(rows)
    alone = encode_records(tokenizer, prompts, [[r] for r in responses], cfg)
    assert sum(g.trimmed_prompt for g in groups) >= len(rows) // 2  # the data exercises trimming
    assert sum(g.cut_completions for g in groups) >= len(rows)  # and cutting
    in_group = [g.prompt_ids + c for g in groups for c in g.completion_ids]
    assert [a.prompt_ids + a.completion_ids[0] for a in alone] == in_group
    assert max(len(s) for s in in_group) <= MAX_LENGTH


@pytest.mark.parametrize("kind", ["bert", "neox"])
def test_served_reward_equals_evaluated_reward(models: dict[str, str], kind: str) -> None:
    cfg = TokenizeConfig(max_length=MAX_LENGTH)
    torch.manual_seed(0)
    model = build_reward_model(ModelConfig(name=models[kind]), cfg)
    rows = long_groups()
    table = pa.Table.from_pylist(rows, schema=GROUP_SCHEMA)
    dataset, counts = tokenize_table(table, model.tokenizer, cfg)
    assert counts["trimmed_prompts"] > 0 and counts["cut_completions"] > 0
    evaluated = np.concatenate(score_groups(model, dataset, batch_size=4))  # what evaluate does
    served = score_texts(model, *flat(rows), batch_size=5)  # what the registered model does
    np.testing.assert_allclose(served, evaluated, atol=1e-5)


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_evaluate_stage_and_pyfunc_agree(
    models: dict[str, str], tmp_path: Path, precision: str
) -> None:
    """The pipeline's own paths: the tokenize stage, evaluate's scoring of the test split,
    and the pyfunc model that `rmpipe score` and model serving call; for a model trained in
    fp32 and one trained in bf16, which both score in bf16 (the precision saved with it)."""
    from rmcore.evaluate.evaluation import score_test_split
    from rmcore.register.pyfunc_model import RewardModelPyfunc
    from tests.tiny import tiny_params

    layout = Layout(tmp_path)
    rows = long_groups()
    write_groups(layout, {"train": long_groups(4, "train"), "validation": [], "test": rows})
    params = tiny_params(models["bert"], tokenize={"max_length": MAX_LENGTH})
    report = stages.tokenize(params, layout)
    assert report["splits"]["test"]["trimmed_prompts"] > 0
    torch.manual_seed(0)
    model = build_reward_model(params.model, params.tokenize)
    record_score_precision(model, precision)  # as the train stage does
    model.save_pretrained(layout.model_dir)
    scores, _ = score_test_split(EvalConfig(batch_size=3), layout, "cpu")
    pyfunc = RewardModelPyfunc()
    pyfunc.load_context(SimpleNamespace(artifacts={"reward_model": str(layout.model_dir)}))
    assert score_precision(pyfunc.model) == ("bf16" if precision == "bf16" else "fp32")
    prompts, responses = flat(rows)
    served = pyfunc.predict(None, pd.DataFrame({"prompt": prompts, "response": responses}))
    np.testing.assert_allclose(served, scores.rewards, atol=1e-5)
