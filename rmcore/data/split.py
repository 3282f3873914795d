"""Leak-free split and stable ids.

The split of a group is a function of its prompt (a salted hash of the prompt with case and
whitespace folded), so every group of one prompt lands in the same split, whatever the source,
the completions or the order of the input. A source's `split_key` (an item id) links groups
whose prompts differ in wording: linked groups share the split of the smallest prompt key.
The group id is a hash of the source, the prompt and the ranked completions (in any order), so
it is stable across runs and machines.
"""

from __future__ import annotations

import hashlib
import json

from rmcore.core.config import SplitConfig
from rmcore.data.schema import SPLITS, RankedGroup

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
    return assign_split_key(split_key(prompt), config)


def assign_splits(groups: list[RankedGroup], config: SplitConfig) -> None:
    """Set the split of every group: groups linked by a prompt or a split key share one.

    Groups of one prompt are linked, and so are groups with one value of a source's
    `split_key` (an item id) whatever their prompts' wording. Each linked set takes the split
    of its smallest prompt key, so a set of one prompt gets that prompt's own split.
    """
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    prompts = [split_key(group.prompt) for group in groups]
    for group, prompt in zip(groups, prompts, strict=True):
        for key in group.split_keys:
            parent[find("\x1d" + key)] = find(prompt)  # keys sort before no prompt: \x1d
        find(prompt)
    smallest: dict[str, str] = {}
    for prompt in prompts:
        root = find(prompt)
        smallest[root] = min(smallest.get(root, prompt), prompt)
    for group, prompt in zip(groups, prompts, strict=True):
        group.split = assign_split_key(smallest[find(prompt)], config)


def assign_split_key(key: str, config: SplitConfig) -> str:
    """train / validation / test by a split key's hash and the configured fractions."""
    u = unit_hash(key, config.seed)
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
