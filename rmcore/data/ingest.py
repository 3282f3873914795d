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
from rmcore.data.io import HELD, SplitWriter
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
from rmcore.data.schema import SPLITS, RankedGroup, n_pairs
from rmcore.data.split import PromptLinks, group_id, split_key

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
) -> Iterator[list[Candidate]]:
    """The candidates of each record, record by record (rejected records go to the ledger)."""
    adapter = ADAPTERS[source.format]
    options = source.parsed_options()
    where: dict[str, Any] = getattr(options, "where", {})
    columns = columns_of(*adapter.columns(options), *where)
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
        yield made


def _reject(
    ledger: Ledger, config: DataConfig, ref: RecordRef, error: RecordError, data: Any
) -> None:
    if config.strict and category(error.rejection.reason) == "malformed":
        raise strict_error(ref, error.rejection)
    ledger.reject_record(ref, error.rejection, data)


def iter_groups(
    source: SourceConfig, config: DataConfig, root: Path, ledger: Ledger
) -> Iterator[RankedGroup]:
    """The kept groups of one source as they are made; every record and group is accounted
    in `ledger`.

    Records are converted, cleaned and checked one at a time, so only the hashes of the groups
    seen (for duplicates) stay in memory. A format that builds groups from several records
    (`long` rows, pairs merged by `merge_pairs`) holds the source's candidates until its
    last record.
    """
    adapter = ADAPTERS[source.format]
    options = source.parsed_options()
    dedup = Deduplicator()
    records = _convert(source, config, root, ledger)
    if adapter.combine is None and not adapter.merges(options):
        for made in records:
            yield from _keep(_clean(made, config, ledger), source, config, ledger, dedup)
        return
    candidates = [candidate for made in records for candidate in made]
    if adapter.combine is not None:
        candidates = adapter.combine(candidates, options)
    cleaned = _clean(candidates, config, ledger)
    if adapter.merges(options):
        cleaned = merge_pairs(cleaned, implied=getattr(options, "merge_implied", True))
    yield from _keep(cleaned, source, config, ledger, dedup)


def _clean(candidates: list[Candidate], config: DataConfig, ledger: Ledger) -> list[Candidate]:
    cleaned: list[Candidate] = []
    for candidate in candidates:
        result = clean(candidate, config.max_chars)
        if isinstance(result, Rejection):
            ledger.group(candidate, result)
        else:
            cleaned.append(result)
    return cleaned


def _keep(
    cleaned: list[Candidate],
    source: SourceConfig,
    config: DataConfig,
    ledger: Ledger,
    dedup: Deduplicator,
) -> Iterator[RankedGroup]:
    """The tie policy and the duplicate check; the groups that pass."""
    for candidate in cleaned:
        result = finalize(candidate, config.tie_policy)
        rejection = result if isinstance(result, Rejection) else dedup.check(candidate)
        ledger.group(candidate, rejection)
        if rejection is None:
            yield _to_group(candidate, source.label, config)


def ingest_source(
    source: SourceConfig, config: DataConfig, root: Path
) -> tuple[Ledger, list[RankedGroup]]:
    """Read, convert and normalise one source; return its ledger and kept groups."""
    ledger = Ledger(source.label, source.format)
    kept = list(iter_groups(source, config, root, ledger))
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
    """Ingest every source of `config`; write splits, report and quarantine under `layout`.

    Groups go to the Parquet splits as they are made. When a source links prompts by
    `split_key`, a later group can move an earlier prompt's split: the groups then wait in a
    temporary Parquet file until every link is known.
    """
    sections: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    links = PromptLinks(config.split)
    deferred = any(getattr(s.parsed_options(), "split_key", None) for s in config.sources)
    with SplitWriter(layout) as splits:
        for source in config.sources:
            start = time.perf_counter()
            ledger = Ledger(source.label, source.format)
            for group in iter_groups(source, config, layout.root, ledger):
                digest, group.split = links.add(split_key(group.prompt), group.split_keys)
                if deferred:
                    splits.hold({**group.to_row(), HELD: digest})
                else:
                    splits.add(group.to_row(), group.n_pairs())
            source_entries = ledger.entries()
            sections[source.label] = ledger.summary(source_entries)
            entries.extend(source_entries)
            seconds[source.label] = round(time.perf_counter() - start, 3)
            _log_source(source.label, sections[source.label], seconds[source.label])
        for row in splits.held():
            row["split"] = links.split(row.pop(HELD), row["split"])
            splits.add(row, n_pairs(row["ranks"]))
        failures = _failures(config, sections, entries)
        if not failures:
            splits.commit()
    counts = splits.groups if not failures else dict.fromkeys(SPLITS, 0)
    report = {
        "sources": sections,
        "totals": _totals(sections),
        "splits": {s: {"groups": counts[s], "pairs_kept": splits.pairs[s]} for s in SPLITS},
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


def _log_source(name: str, section: dict[str, Any], seconds: float) -> None:
    records = section["records"]
    log.info(
        "%s: %d records read, %d kept, %d quarantined %s; %d groups, %d pairs (%.2f s)",
        name, records["read"], records["kept"], records["quarantined"],
        records["quarantined_by_reason"], section["groups"]["kept"], section["pairs_kept"],
        seconds,
    )  # fmt: skip


def _failures(
    config: DataConfig, sections: dict[str, dict[str, Any]], entries: list[dict[str, Any]]
) -> list[str]:
    """One line per source that kept nothing or quarantined too much."""
    lines = (
        shortfall(name, section, entries, config.max_quarantined_fraction)
        for name, section in sections.items()
    )
    return [f"  {line}" for line in lines if line is not None]
