"""Leak-free split and stable ids.

The split of a group is a function of its prompt alone (a salted hash of the prompt with case
and whitespace folded), so every group of one prompt lands in the same split, whatever the
source, the completions or the order of the input. The group id is a hash of the source, the
prompt and the ranked completions (in any order), so it is stable across runs and machines.
"""

from __future__ import annotations

import hashlib
import json

from rmcore.core.config import SplitConfig
from rmcore.data.schema import SPLITS

_SCALE = float(2**64)


def split_key(prompt: list[dict[str, str]]) -> str:
    """The prompt as compared for leaks: roles and words, case- and whitespace-insensitive."""
    return "\x1e".join(
        f"{m['role']}\x1f{' '.join(m['content'].split()).casefold()}" for m in prompt
    )


def unit_hash(text: str, seed: int) -> float:
    """A number in [0, 1) from `text` and the seed, the same on every machine."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_split(prompt: list[dict[str, str]], config: SplitConfig) -> str:
    """train / validation / test by the prompt's hash and the configured fractions."""
    u = unit_hash(split_key(prompt), config.seed)
    fractions = [config.train, config.validation, config.test]
    upper = 0.0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        upper += fraction
        if u < upper:
            return name
    # fractions sum to 1 within rounding: the top sliver goes to the last non-empty split
    return [name for name, fraction in zip(SPLITS, fractions, strict=True) if fraction > 0][-1]


def group_id(
    source: str, prompt: list[dict[str, str]], completions: list[str], ranks: list[int]
) -> str:
    """A stable id: same source, prompt and ranked completions (any order) -> same id."""
    payload = json.dumps(
        [
            source,
            [[m["role"], m["content"]] for m in prompt],
            sorted(zip(completions, ranks, strict=True)),
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
