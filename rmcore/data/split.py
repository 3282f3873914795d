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
    links = PromptLinks(config)
    seen = [links.add(split_key(group.prompt), group.split_keys) for group in groups]
    for group, (key, own) in zip(groups, seen, strict=True):
        group.split = links.split(key, own)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).digest()


class PromptLinks:
    """The split of each prompt, from hashes: what `assign_splits` does, one group at a time.

    `add` gives a prompt's 16-byte hash and its own split. Only prompts that a `split_key`
    links to others are remembered (their hash, and their key text to find a linked set's
    smallest); the split of every other prompt is its own. After the last `add`, `split`
    gives the split of a prompt from its hash and own split.
    """

    def __init__(self, config: SplitConfig) -> None:
        self.config = config
        self._parent: dict[bytes, bytes] = {}
        self._texts: dict[bytes, str] = {}  # key text of each linked prompt
        self._splits: dict[bytes, str] | None = None  # per linked set, once complete

    def _find(self, item: bytes) -> bytes:
        parent = self._parent
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    @property
    def linked(self) -> bool:
        """Whether any prompt was linked by a split key (its split may change later)."""
        return bool(self._texts)

    def add(self, key: str, split_keys: list[str]) -> tuple[bytes, str]:
        """Record a group's prompt key and split keys; its hash and its own split."""
        digest = _digest(key)
        if split_keys:
            self._splits = None
            for value in split_keys:  # "\x1d": a key never equals a prompt key
                self._parent[self._find(_digest("\x1d" + value))] = self._find(digest)
            self._texts[digest] = key
        return digest, assign_split_key(key, self.config)

    def split(self, digest: bytes, own: str) -> str:
        """The split of a prompt added before: its own, or its linked set's."""
        if digest not in self._parent:
            return own
        if self._splits is None:
            smallest: dict[bytes, str] = {}
            for item, text in self._texts.items():
                root = self._find(item)
                smallest[root] = min(smallest.get(root, text), text)
            self._splits = {
                root: assign_split_key(text, self.config) for root, text in smallest.items()
            }
        return self._splits[self._find(digest)]


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
