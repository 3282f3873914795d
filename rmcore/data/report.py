"""Accounting of every input record: the ingest report and the quarantine file.

A record is *kept* when it contributes to at least one kept group (for merged pairs, each
input record counts for itself). Otherwise it is *quarantined*, with the reason of the first of
its groups that was rejected, or of the parse/convert failure. kept + quarantined = read.

quarantine.jsonl holds one `unit: record` entry per quarantined record, and one `unit: group`
entry per rejected group whose records are otherwise kept (e.g. an OpenAssistant sibling set
with one reply, in a tree whose other sets are kept).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmcore.core.atomic import atomic_path, write_text
from rmcore.data.records import Candidate, RecordRef, Rejection, fix_for

MAX_SHOWN_CHARS = 2000


def shorten(value: Any) -> Any:
    """The value with every long string cut (quarantine entries stay readable)."""
    if isinstance(value, str) and len(value) > MAX_SHOWN_CHARS:
        return value[:MAX_SHOWN_CHARS] + f"... [{len(value) - MAX_SHOWN_CHARS:,} more characters]"
    if isinstance(value, dict):
        return {str(k): shorten(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shorten(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value if isinstance(value, (int, float, bool, type(None))) else str(value)


def _group_data(candidate: Candidate) -> dict[str, Any]:
    data: dict[str, Any] = {"location": candidate.location} if candidate.location else {}
    data.update(prompt=candidate.prompt, completions=candidate.completions, ranks=candidate.ranks)
    return data


@dataclass
class Ledger:
    """What happened to every record and group of one source.

    Kept groups are counted as they pass (their texts are not held): the ledger keeps the
    positions of the records they used and the counts of the report. Rejected records and
    groups are kept whole, for quarantine.jsonl.
    """

    name: str
    format: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    rejected: list[tuple[RecordRef, Rejection, Any]] = field(default_factory=list)
    rejected_groups: list[tuple[Candidate, Rejection]] = field(default_factory=list)
    candidates: int = 0
    kept_groups: int = 0
    kept_by_k: Counter[int] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)  # from kept groups, by reason
    notes: Counter[str] = field(default_factory=Counter)  # of every group
    pairs: int = 0
    implied: int = 0
    _file_index: dict[str, int] = field(default_factory=dict)
    _kept: set[int] = field(default_factory=set)  # packed (file, position) of kept records

    def record_read(self, ref: RecordRef) -> None:
        self.read += 1
        if ref.file not in self._file_index:
            self._file_index[ref.file] = len(self.files)
            self.files.append(ref.file)

    def _key(self, ref: RecordRef) -> int:
        """A record as one int: its file's index and its position in the file (input order)."""
        return (self._file_index.get(ref.file, -1) << 40) + ref.position

    def reject_record(self, ref: RecordRef, rejection: Rejection, data: Any) -> None:
        self.rejected.append((ref, rejection, data))

    def group(self, candidate: Candidate, rejection: Rejection | None) -> None:
        self.candidates += 1
        self.notes.update(candidate.notes)
        if rejection is not None:
            self.rejected_groups.append((candidate, rejection))
            return
        self.kept_groups += 1
        self.kept_by_k[len(candidate.completions)] += 1
        self.removed.update(candidate.removed)
        self.pairs += _pairs(candidate.ranks)
        self.implied += candidate.implied_pairs()
        self._kept.update(self._key(ref) for ref in candidate.refs)

    def is_kept(self, ref: RecordRef) -> bool:
        return self._key(ref) in self._kept

    def entries(self) -> list[dict[str, Any]]:
        """Quarantine entries in input order: one per quarantined record, plus group entries."""
        by_ref: dict[RecordRef, dict[str, Any]] = {}
        for ref, failure, data in self.rejected:
            by_ref[ref] = self._entry("record", [ref], failure, data)
        group_entries = []
        for cand, rej in self.rejected_groups:
            lost = [r for r in cand.refs if not self.is_kept(r)]
            for ref in lost:
                if ref in by_ref:
                    by_ref[ref].setdefault("other_reasons", []).append(rej.reason)
                else:
                    by_ref[ref] = self._entry("record", [ref], rej, _group_data(cand))
            if len(lost) < len(cand.refs):
                group_entries.append(self._entry("group", cand.refs, rej, _group_data(cand)))
        entries = list(by_ref.values()) + group_entries
        entries.sort(key=lambda e: (e["_order"], e["unit"] == "group"))
        for entry in entries:
            del entry["_order"]
        return entries

    def _entry(
        self, unit: str, refs: list[RecordRef], rejection: Rejection, data: Any
    ) -> dict[str, Any]:
        first = refs[0]
        entry: dict[str, Any] = {
            "_order": self._key(first),
            "source": self.name,
            "unit": unit,
            **first.to_json(),
            "reason": rejection.reason,
            "field": rejection.field,
            "detail": rejection.detail,
            "fix": fix_for(rejection.reason),
        }
        if len(refs) > 1:
            entry["records"] = [r.to_json() for r in refs]
        entry["data"] = shorten(data)
        return entry

    def summary(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The report section of this source; checks kept + quarantined = read."""
        record_reasons = Counter(e["reason"] for e in entries if e["unit"] == "record")
        quarantined = sum(record_reasons.values())
        kept = len(self._kept)
        if kept + quarantined != self.read:
            raise RuntimeError(
                f"record accounting of {self.name} is off: kept {kept} + quarantined "
                f"{quarantined} != read {self.read}"
            )
        group_reasons = Counter(rej.reason for _, rej in self.rejected_groups)
        return {
            "format": self.format,
            "files": self.files,
            "records": {
                "read": self.read,
                "kept": kept,
                "quarantined": quarantined,
                "quarantined_by_reason": dict(sorted(record_reasons.items())),
            },
            "groups": {
                "candidates": self.candidates,
                "kept": self.kept_groups,
                "quarantined": sum(group_reasons.values()),
                "quarantined_by_reason": dict(sorted(group_reasons.items())),
                "kept_by_k": {str(k): self.kept_by_k[k] for k in sorted(self.kept_by_k)},
            },
            "pairs_kept": self.pairs,
            "pairs_kept_direct": self.pairs - self.implied,
            "pairs_kept_implied": self.implied,
            "completions_removed_from_kept_groups": dict(sorted(self.removed.items())),
            "notes": dict(sorted(self.notes.items())),
        }


def _pairs(ranks: list[int]) -> int:
    return sum(
        1 for i in range(len(ranks)) for j in range(i + 1, len(ranks)) if ranks[i] != ranks[j]
    )


def shortfall(
    name: str, section: dict[str, Any], entries: list[dict[str, Any]], limit: float
) -> str | None:
    """One line saying why a source kept too little, or None when it kept enough.

    A source fails when it keeps no record, or quarantines more than `limit` of what it read
    (records `options.where` leaves out count for neither): the line gives the top reasons
    with counts and the first quarantined record with its fix.
    """
    records = section["records"]
    read, kept, quarantined = records["read"], records["kept"], records["quarantined"]
    excluded = records["quarantined_by_reason"].get("excluded", 0)  # left out on purpose
    if kept > 0 and quarantined - excluded <= limit * (read - excluded):
        return None
    why = "kept no record" if kept == 0 else f"quarantined more than {limit:g} of its records"
    line = f"source `{name}` {why}: kept {kept} of {read}"
    reasons = Counter(records["quarantined_by_reason"]).most_common(3)
    if reasons:
        line += "; top reasons: " + ", ".join(f"{r} {n:,}" for r, n in reasons)
    first = next((e for e in entries if e["unit"] == "record" and e["source"] == name), None)
    if first is not None:
        at = f":{first['line']}" if first["line"] is not None else f" record {first['record']}"
        field = f" field `{first['field']}`" if first["field"] else ""
        detail = f" ({first['detail']})" if first["detail"] else ""
        line += (
            f"; first: {first['file']}{at}{field}: {first['reason']}{detail}; fix: {first['fix']}"
        )
    return line


def write_quarantine(entries: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n")


def write_report(report: dict[str, Any], path: Path) -> None:
    write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
