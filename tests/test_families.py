"""The family matrix: every backbone family trains in every batch layout that applies to it,
saves, reloads with plain `AutoModelForSequenceClassification` with the same rewards, and
scores through the registered pyfunc model with them too.

Layouts: padded rows, packed rows (padding-free), shared prefix (a group's prompt once).
A layout that does not apply is asked for explicitly and must be refused with its reason.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rmcore import stages
from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.model.layout import choose_layout
from rmcore.model.reward_model import build_reward_model, load_reward_model
from rmcore.text.tokenize import encode_records
from tests.tiny import tiny_params, write_synthetic
from tests.tiny_families import FAMILIES, WINDOW, make_family

LAYOUTS: dict[str, dict[str, Any]] = {
    "padded": {"packing": "off", "share_prefix": False},
    "packed": {"packing": "on", "share_prefix": False},
    "shared": {"packing": "auto", "share_prefix": True},
}

# (family, layout) that do not apply, and the words of the refusal
NOT_APPLICABLE = {
    ("gemma2", "packed"): "runs eager attention",  # soft-capped attention logits
    ("mistral", "shared"): "sliding window",
    ("gemma3", "shared"): "sliding window",
    ("deberta-v2", "packed"): "neither a BERT pooler",  # and disentangled attention
    ("modernbert", "packed"): "neither a BERT pooler nor a head on the first token",
    **{(enc, "shared"): "exact only for causal" for enc in ("bert", "roberta")},
    **{(enc, "shared"): "exact only for causal" for enc in ("deberta-v2", "modernbert")},
}

PROMPTS = ["tell me about cats and the rain here", "why", "chess or tea, which one is it"]
RESPONSES = [
    "great helpful answer here, it says that we can do so and thanks",
    "rude",
    "kind and clear thanks so much for asking about the tea and the trains",
]

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class FakeContext:
    """What MLflow hands `PythonModel.load_context`: the logged artifacts' local paths."""

    artifacts: dict[str, str]
    model_config: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    """Per family (built on first use): its model directory and a tokenised project."""
    root = tmp_path_factory.mktemp("families")
    return _LazyProjects(root)


class _LazyProjects(dict[str, tuple[str, Path]]):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, family: str) -> tuple[str, Path]:
        model = make_family(family, self.root / f"{family}-model")
        project = self.root / family
        write_synthetic(Layout(project), n_train=8, n_val=4, n_test=2)
        stages.tokenize(tiny_params(model), Layout(project))
        self[family] = (model, project)
        return self[family]


def padded_inputs(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """PROMPTS/RESPONSES tokenised as the pipeline does, right-padded: ids, mask [N, T]."""
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    encoded = encode_records(tokenizer, messages, [[r] for r in RESPONSES], TokenizeConfig())
    rows = [e.prompt_ids + e.completion_ids[0] for e in encoded]
    assert max(len(r) for r in rows) > 2 * WINDOW  # long enough for the sliding windows
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(tokenizer.pad_token_id))
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    return ids, mask


def cases() -> list[Any]:
    return [
        pytest.param(family, name, id=f"{family}-{name}") for family in FAMILIES for name in LAYOUTS
    ]


@pytest.mark.parametrize(("family", "layout_name"), cases())
def test_family_trains_saves_and_scores_the_same(
    projects: dict[str, tuple[str, Path]], family: str, layout_name: str, tmp_path: Path
) -> None:
    model_path, tokenized = projects[family]
    wanted = LAYOUTS[layout_name]
    reason = NOT_APPLICABLE.get((family, layout_name))
    if reason is not None:
        model = build_reward_model(ModelConfig(name=model_path), TokenizeConfig())
        with pytest.raises(ValueError, match=reason):
            choose_layout(model, torch.device("cpu"), wanted["packing"], wanted["share_prefix"])
        return
    layout = Layout(tmp_path)
    shutil.copytree(tokenized / "data" / "tokenized", layout.tokenized)
    params = tiny_params(
        model_path, train={"max_steps": 2, "batch_size": 4, "mixed_precision": "no", **wanted}
    )
    metrics = stages.train(params, layout)
    assert metrics["steps"] == 2 and np.isfinite(metrics["train_loss"])
    if layout_name != "shared":  # shared prompts go in packed rows where the model can
        assert metrics["packing"] == (layout_name == "packed")
    assert metrics["share_prefix"] == (layout_name == "shared")

    hf = AutoModelForSequenceClassification.from_pretrained(layout.model_dir).eval()
    ours = load_reward_model(layout.model_dir)
    ids, mask = padded_inputs(ours.tokenizer)
    with torch.no_grad():
        plain = hf(input_ids=ids, attention_mask=mask).logits[:, 0].numpy()
        direct = ours(ids, mask).numpy()
    assert np.allclose(direct, plain, atol=1e-5)

    from rmcore.register.pyfunc_model import RewardModelPyfunc

    pyfunc = RewardModelPyfunc()
    pyfunc.load_context(FakeContext({"reward_model": str(layout.model_dir)}))
    served = pyfunc.predict(None, pd.DataFrame({"prompt": PROMPTS, "response": RESPONSES}))
    assert np.allclose(served, plain, atol=1e-4), (served, plain)
    assert len(set(plain.tolist())) == len(PROMPTS)  # the rows really differ
