"""The canonical ranked-group record that every source adapter produces.

A group is one prompt (a list of chat messages) with k >= 2 completions and their ranks
(0 = best; equal ranks are ties). Pairs are groups with k = 2. Training and evaluation use
every ordered pair of completions with different ranks. A group may carry `margins`: how
strongly a judged pair was preferred, which the loss asks of that pair (scaled by
`loss.data_margin_scale`); others have null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SPLITS = ("train", "validation", "test")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
# How strongly completions[better] was preferred to completions[worse]: a continuous label's
# distance from no preference, or a source's own margin (TRL's `margin` column).
MARGIN_TYPE = pa.struct([("better", pa.int32()), ("worse", pa.int32()), ("margin", pa.float64())])

GROUP_SCHEMA = pa.schema(
    [
        ("group_id", pa.string()),
        ("source", pa.string()),
        ("prompt", pa.list_(MESSAGE_TYPE)),
        ("completions", pa.list_(pa.string())),
        ("ranks", pa.list_(pa.int32())),
        ("scores", pa.list_(pa.float64())),  # null when the source has no scores
        ("split", pa.string()),
        ("margins", pa.list_(MARGIN_TYPE)),  # null when the source gives no strengths
    ]
)


@dataclass
class RankedGroup:
    """One prompt with k ranked completions (rank 0 = best, equal ranks tie)."""

    prompt: list[dict[str, str]]
    completions: list[str]
    ranks: list[int]
    source: str
    group_id: str = ""
    scores: list[float] | None = None
    split: str = ""
    margins: list[dict[str, Any]] | None = None  # {better, worse, margin} per judged pair
    split_keys: list[str] = field(default_factory=list)  # options.split_key values, not a column
    origin: dict[str, Any] = field(default_factory=dict)  # file/line, for quarantine only

    @property
    def k(self) -> int:
        return len(self.completions)

    def n_pairs(self) -> int:
        """Ordered pairs of completions with different ranks."""
        return n_pairs(self.ranks)

    def to_row(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "source": self.source,
            "prompt": self.prompt,
            "completions": self.completions,
            "ranks": self.ranks,
            "scores": self.scores,
            "split": self.split,
            "margins": self.margins,
        }


def n_pairs(ranks: list[int]) -> int:
    """Ordered pairs of completions with different ranks."""
    k = len(ranks)
    return sum(1 for i in range(k) for j in range(i + 1, k) if ranks[i] != ranks[j])
