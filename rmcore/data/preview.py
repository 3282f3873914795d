"""A look at what the params make of each source, writing nothing: `rmpipe ingest --preview N`.

For each source: the accounting (read, kept, quarantined by reason, groups, pairs, k), the
first N normalised groups as they would be written (prompt, completions with ranks, margins,
split) with the record each came from, the first quarantined record with its fix, and the line
that would stop the ingest if the source keeps too little. A mapping can be tried in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rmcore.core.config import DataConfig
from rmcore.data.ingest import ingest_source
from rmcore.data.report import shortfall
from rmcore.data.schema import RankedGroup
from rmcore.data.split import assign_splits

SHOWN_CHARS = 300  # of each text


def _cut(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text):,} chars)"


def _group_lines(number: int, group: RankedGroup) -> list[str]:
    where = group.origin.get("where", "")
    lines = [f"  group {number} ({group.split}, k={group.k}, {group.n_pairs()} pairs) {where}"]
    lines += [f"    {m['role']}: {_cut(m['content'])}" for m in group.prompt]
    for i, (text, rank) in enumerate(zip(group.completions, group.ranks, strict=True)):
        score = f" score {group.scores[i]:g}" if group.scores else ""
        lines.append(f"    [{i}] rank {rank}{score}: {_cut(text)}")
    for m in group.margins or []:
        lines.append(f"    margin [{m['better']}] > [{m['worse']}]: {m['margin']:g}")
    return lines


def _accounting(name: str, section: dict[str, Any]) -> str:
    records = section["records"]
    reasons = ", ".join(f"{r} {n}" for r, n in records["quarantined_by_reason"].items())
    k = ", ".join(f"k={k}: {n}" for k, n in section["groups"]["kept_by_k"].items())
    return (
        f"source `{name}` ({section['format']}): read {records['read']}, kept {records['kept']}, "
        f"quarantined {records['quarantined']}" + (f" ({reasons})" if reasons else "")
        + f"; groups {section['groups']['kept']} ({k or 'none'}); pairs {section['pairs_kept']}"
        f" ({section['pairs_kept_implied']} implied)"
    )  # fmt: skip


def _first_quarantined(entries: list[dict[str, Any]]) -> list[str]:
    first = next((e for e in entries if e["unit"] == "record"), None)
    if first is None:
        return []
    at = f":{first['line']}" if first["line"] is not None else f" record {first['record']}"
    field = f" field `{first['field']}`" if first["field"] else ""
    return [
        f"  first quarantined: {first['file']}{at}{field}: {first['reason']} ({first['detail']})",
        f"    fix: {first['fix']}",
    ]


def preview(config: DataConfig, root: Path, n: int) -> tuple[str, bool]:
    """The preview text of every source, and whether every source keeps enough."""
    lines: list[str] = []
    fine = True
    for source in config.sources:
        ledger, kept = ingest_source(source, config, root)
        entries = ledger.entries()
        section = ledger.summary(entries)
        assign_splits(kept, config.split)  # a source's own splits; the ingest links sources
        lines.append(_accounting(source.label, section))
        for number, group in enumerate(kept[:n], start=1):
            lines += _group_lines(number, group)
        lines += _first_quarantined(entries)
        failing = shortfall(source.label, section, entries, config.max_quarantined_fraction)
        if failing is not None:
            fine = False
            lines.append(f"  would stop the ingest: {failing}")
    return "\n".join(lines) + "\n", fine
