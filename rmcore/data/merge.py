"""Merge the pairwise judgements of one prompt into a ranking where they are consistent.

The pairs of one prompt form a graph over completions: ties join completions into one class,
preferences are edges between classes. Each connected component becomes one ranked group when
its preferences are consistent and already fix the whole order (every two classes of different
rank are ordered by the judgements, directly or transitively): the group then carries exactly
the observed preferences. Otherwise the pairs stay separate, counted in the report:
`cyclic_pairs` (a cycle, or a tie contradicting a preference) and `partial_order_pairs`
(consistent, but a ranking would invent preferences between unordered completions).
A merged group records which of its pairs were judged directly: the others are implied by
transitivity (a > b and b > c give a > c); `implied=False` keeps only direct comparisons.
Margins (soft labels) of the merged pairs move into the merged group.
"""

from __future__ import annotations

from collections import defaultdict

from rmcore.data.normalize import prompt_text
from rmcore.data.records import Candidate


class _Classes:
    """Union-find over completion texts (tied completions share a class)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def _components(pairs: list[Candidate]) -> list[list[Candidate]]:
    """Pairs that share completions (directly or through others), in first-seen order."""
    links = _Classes()
    for pair in pairs:
        links.union(pair.completions[0], pair.completions[1])
    groups: dict[str, list[Candidate]] = {}
    for pair in pairs:
        groups.setdefault(links.find(pair.completions[0]), []).append(pair)
    return list(groups.values())


def _levels(pairs: list[Candidate]) -> tuple[dict[str, int] | None, str]:
    """Rank of each completion, or None with why ('cyclic' / 'partial_order')."""
    ties = _Classes()
    for pair in pairs:
        ties.find(pair.completions[0])
        ties.find(pair.completions[1])
        if pair.ranks[0] == pair.ranks[1]:
            ties.union(*pair.completions)
    better: dict[str, set[str]] = defaultdict(set)  # class -> classes it beats
    for pair in pairs:
        if pair.ranks[0] != pair.ranks[1]:
            win, lose = (0, 1) if pair.ranks[0] < pair.ranks[1] else (1, 0)
            a, b = ties.find(pair.completions[win]), ties.find(pair.completions[lose])
            if a == b:
                return None, "cyclic"  # tied and preferred at once
            better[a].add(b)
    classes = sorted({ties.find(t) for t in ties.parent})
    order = _topological(classes, better)
    if order is None:
        return None, "cyclic"
    level = dict.fromkeys(classes, 0)
    for node in order:
        for lower in better[node]:
            level[lower] = max(level[lower], level[node] + 1)
    reach = {c: _descendants(c, better) for c in classes}
    for a in classes:
        for b in classes:
            if level[a] < level[b] and b not in reach[a]:
                return None, "partial_order"
    return {text: level[ties.find(text)] for text in ties.parent}, ""


def _topological(classes: list[str], better: dict[str, set[str]]) -> list[str] | None:
    indegree = dict.fromkeys(classes, 0)
    for node in classes:
        for lower in better[node]:
            indegree[lower] += 1
    ready = [c for c in classes if indegree[c] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for lower in sorted(better[node]):
            indegree[lower] -= 1
            if indegree[lower] == 0:
                ready.append(lower)
    return order if len(order) == len(classes) else None


def _descendants(start: str, better: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for lower in better[stack.pop()]:
            if lower not in seen:
                seen.add(lower)
                stack.append(lower)
    return seen


def _merge_component(pairs: list[Candidate], implied: bool) -> list[Candidate]:
    if len(pairs) == 1:
        return pairs
    levels, why = _levels(pairs)
    if levels is None:
        for pair in pairs:
            pair.notes[f"{why}_pairs"] += 1
        return pairs
    texts = list(dict.fromkeys(t for pair in pairs for t in pair.completions))
    merged = Candidate(
        prompt=pairs[0].prompt,
        completions=texts,
        ranks=[levels[t] for t in texts],
        refs=[ref for pair in pairs for ref in pair.refs],
    )
    index = {text: i for i, text in enumerate(texts)}
    merged.judged = {_ordered(index[p.completions[0]], index[p.completions[1]]) for p in pairs}
    if not implied and merged.implied_pairs():
        for pair in pairs:  # a ranking would add pairs no judge compared
            pair.notes["transitive_pairs"] += 1
        return pairs
    merged.margins = _merged_margins(pairs, index)
    merged.split_keys = sorted({key for pair in pairs for key in pair.split_keys})
    for pair in pairs:
        merged.removed.update(pair.removed)
        merged.notes.update(pair.notes)
    merged.notes["merged_groups"] += 1
    merged.notes["pairs_merged"] += len(pairs)
    return [merged]


def _ordered(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i < j else (j, i)


def _merged_margins(
    pairs: list[Candidate], index: dict[str, int]
) -> list[tuple[int, int, float]] | None:
    """The pairs' margins in the merged group's indices; one pair judged twice: their mean."""
    found: dict[tuple[int, int], list[float]] = {}
    for pair in pairs:
        for better, worse, margin in pair.margins or []:
            key = (index[pair.completions[better]], index[pair.completions[worse]])
            found.setdefault(key, []).append(margin)
    if not found:
        return None
    return [(b, w, sum(ms) / len(ms)) for (b, w), ms in found.items()]


def merge_pairs(candidates: list[Candidate], implied: bool = True) -> list[Candidate]:
    """Merge consistent pairs per prompt; other candidates pass through in order.

    With `implied` false, pairs whose ranking would imply pairs no judge compared directly
    stay separate (counted as `transitive_pairs`)."""
    by_prompt: dict[str, list[Candidate]] = {}
    out: list[Candidate | str] = []
    for candidate in candidates:
        if len(candidate.completions) != 2:
            out.append(candidate)
            continue
        key = prompt_text(candidate.prompt)
        if key not in by_prompt:
            by_prompt[key] = []
            out.append(key)  # placeholder: merged groups go where the prompt first appeared
        by_prompt[key].append(candidate)
    result: list[Candidate] = []
    for item in out:
        if isinstance(item, str):
            for component in _components(by_prompt[item]):
                result.extend(_merge_component(component, implied))
        else:
            result.append(item)
    return result
