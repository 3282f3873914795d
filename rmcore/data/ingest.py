"""The ingest stage's logic: sources -> candidate groups -> normalised, split, accounted.

Per source: read records, convert them with the source's adapter, clean each group, merge
pairs if the source asks for it, apply the tie policy, drop repeated groups; every rejected
record or group is kept in the ledger with its reason. Then split by prompt and write the
Parquet splits, report.json and quarantine.jsonl.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rmcore.core.config import DataConfig, SourceConfig
from rmcore.core.paths import Layout
from rmcore.data.adapters import ADAPTERS
from rmcore.data.adapters.common import columns_of, selected
from rmcore.data.io import write_splits
from rmcore.data.merge import merge_pairs
from rmcore.data.normalize import Deduplicator, clean, finalize
from rmcore.data.readers import RawRecord, expand_path, read_file, read_hub
from rmcore.data.records import (
    Candidate,
    IngestError,
    RecordError,
    RecordRef,
    Rejection,
    category,
    strict_error,
)
from rmcore.data.report import Ledger, shortfall, write_quarantine, write_report
from rmcore.data.schema import SPLITS, RankedGroup
from rmcore.data.split import assign_splits, group_id

log = logging.getLogger(__name__)

SETTINGS = {"tie_policy", "max_chars", "strict", "split", "max_quarantined_fraction"}


def _shown(path: Path, pattern: str, root: Path) -> str:
    """How a file is named in reports: relative to the project root unless given absolute."""
    return str(path) if os.path.isabs(pattern) else os.path.relpath(path, root)


def iter_source(source: SourceConfig, root: Path, required: list[str]) -> Iterator[RawRecord]:
    """Every record of a source, file by file; an empty file is an error."""
    if source.hf is not None:
        yield from read_hub(source.hf, source.hf_config, source.hf_split, required)
        return
    assert source.path is not None
    for path in expand_path(source.path, root):
        shown = _shown(path, source.path, root)
        count = 0
        for item in read_file(path, shown, required):
            count += 1
            yield item
        if count == 0:
            raise IngestError(
                f"{shown} contains no records; fix or re-download it, or remove it from "
                f"source `{source.label}`"
            )


def _convert(
    source: SourceConfig, config: DataConfig, root: Path, ledger: Ledger
) -> list[Candidate]:
    adapter = ADAPTERS[source.format]
    options = source.parsed_options()
    where: dict[str, Any] = getattr(options, "where", {})
    columns = columns_of(*adapter.columns(options), *where)
    candidates: list[Candidate] = []
    for ref, record in iter_source(source, root, columns):
        ledger.record_read(ref)
        if isinstance(record, RecordError):
            _reject(ledger, config, ref, record, record.raw)
            continue
        try:
            selected(record, where)
            made = adapter.convert(record, options)
        except RecordError as exc:
            _reject(ledger, config, ref, exc, record)
            continue
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # a record shaped unlike the format; quarantined so one record cannot stop the run
            error = RecordError("adapter_error", None, f"{type(exc).__name__}: {exc}")
            _reject(ledger, config, ref, error, record)
            continue
        if not made:
            _reject(ledger, config, ref, RecordError("no_reply_groups"), record)
        for candidate in made:
            candidate.refs = [ref]
            candidates.append(candidate)
    return candidates


def _reject(
    ledger: Ledger, config: DataConfig, ref: RecordRef, error: RecordError, data: Any
) -> None:
    if config.strict and category(error.rejection.reason) == "malformed":
        raise strict_error(ref, error.rejection)
    ledger.reject_record(ref, error.rejection, data)


def ingest_source(
    source: SourceConfig, config: DataConfig, root: Path
) -> tuple[Ledger, list[RankedGroup]]:
    """Read, convert and normalise one source; return its ledger and kept groups."""
    ledger = Ledger(source.label, source.format)
    adapter = ADAPTERS[source.format]
    candidates = _convert(source, config, root, ledger)
    if adapter.combine is not None:
        candidates = adapter.combine(candidates, source.parsed_options())
    cleaned: list[Candidate] = []
    for candidate in candidates:
        result = clean(candidate, config.max_chars)
        if isinstance(result, Rejection):
            ledger.group(candidate, result)
        else:
            cleaned.append(result)
    options = source.parsed_options()
    if adapter.merges(options):
        cleaned = merge_pairs(cleaned, implied=getattr(options, "merge_implied", True))
    dedup = Deduplicator()
    kept: list[RankedGroup] = []
    for candidate in cleaned:
        result = finalize(candidate, config.tie_policy)
        rejection = result if isinstance(result, Rejection) else dedup.check(candidate)
        ledger.group(candidate, rejection)
        if rejection is None:
            kept.append(_to_group(candidate, source.label, config))
    return ledger, kept


def _to_group(candidate: Candidate, source: str, config: DataConfig) -> RankedGroup:
    return RankedGroup(
        prompt=candidate.prompt,
        completions=candidate.completions,
        ranks=candidate.ranks,
        source=source,
        group_id=group_id(source, candidate.prompt, candidate.completions, candidate.ranks),
        scores=candidate.scores,
        margins=_margins(candidate),
        split_keys=candidate.split_keys,
        origin={"where": _where(candidate)},
    )


def _where(candidate: Candidate) -> str:
    """The record a group came from (the first of several), as a preview shows it."""
    if not candidate.refs:
        return ""
    more = f" and {len(candidate.refs) - 1} more records" if len(candidate.refs) > 1 else ""
    return f"from {candidate.refs[0].where()}{more}"


def _margins(candidate: Candidate) -> list[dict[str, Any]] | None:
    if not candidate.margins:
        return None
    return [{"better": b, "worse": w, "margin": m} for b, w, m in candidate.margins]


def _totals(sections: dict[str, dict[str, Any]]) -> dict[str, int]:
    keys = ("read", "kept", "quarantined")
    totals = {f"records_{k}": sum(s["records"][k] for s in sections.values()) for k in keys}
    totals["groups_kept"] = sum(s["groups"]["kept"] for s in sections.values())
    totals["pairs_kept"] = sum(s["pairs_kept"] for s in sections.values())
    return totals


def run_ingest(config: DataConfig, layout: Layout) -> dict[str, Any]:
    """Ingest every source of `config`; write splits, report and quarantine under `layout`."""
    sections: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    groups: list[RankedGroup] = []
    seconds: dict[str, float] = {}
    for source in config.sources:
        start = time.perf_counter()
        ledger, kept = ingest_source(source, config, layout.root)
        source_entries = ledger.entries()
        sections[source.label] = ledger.summary(source_entries)
        entries.extend(source_entries)
        groups.extend(kept)
        seconds[source.label] = round(time.perf_counter() - start, 3)
        records = sections[source.label]["records"]
        log.info(
            "%s: %d records read, %d kept, %d quarantined %s; %d groups, %d pairs (%.2f s)",
            source.label, records["read"], records["kept"], records["quarantined"],
            records["quarantined_by_reason"], len(kept), sections[source.label]["pairs_kept"],
            seconds[source.label],
        )  # fmt: skip
    assign_splits(groups, config.split)
    failures = _failures(config, sections, entries)
    counts = write_splits(groups, layout) if not failures else dict.fromkeys(SPLITS, 0)
    report = {
        "sources": sections,
        "totals": _totals(sections),
        "splits": {s: {"groups": counts[s], "pairs_kept": _split_pairs(groups, s)} for s in SPLITS},
        "settings": config.model_dump(include=SETTINGS),
    }
    write_report(report, layout.ingest_report)
    write_quarantine(entries, layout.quarantine)
    if failures:
        raise IngestError(
            f"{len(failures)} source(s) kept too little (data.max_quarantined_fraction "
            f"{config.max_quarantined_fraction:g}); no split written; the records are in "
            f"{layout.quarantine}:\n" + "\n".join(failures)
        )
    return {
        "totals": report["totals"],
        "splits": report["splits"],
        "seconds": seconds,
        "report": str(layout.ingest_report),
        "quarantine": str(layout.quarantine),
    }


def _failures(
    config: DataConfig, sections: dict[str, dict[str, Any]], entries: list[dict[str, Any]]
) -> list[str]:
    """One line per source that kept nothing or quarantined too much."""
    lines = (
        shortfall(name, section, entries, config.max_quarantined_fraction)
        for name, section in sections.items()
    )
    return [f"  {line}" for line in lines if line is not None]


def _split_pairs(groups: list[RankedGroup], split: str) -> int:
    return sum(g.n_pairs() for g in groups if g.split == split)
