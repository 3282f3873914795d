"""Helpers of the data tests: write inputs, run an ingest, read what it wrote."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rmcore.core.config import DataConfig
from rmcore.core.paths import Layout
from rmcore.data.ingest import run_ingest
from tests.conftest import REPO_ROOT

DATA_DOC = (REPO_ROOT / "docs" / "data.md").read_text()


def write_jsonl(path: Path, rows: list[Any], gz: bool = False) -> Path:
    """Rows as JSON lines; a `bytes` or `str` row is written as is (for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = []
    for row in rows:
        if isinstance(row, bytes):
            chunks.append(row)
        elif isinstance(row, str):
            chunks.append(row.encode("utf-8"))
        else:
            chunks.append(json.dumps(row).encode("utf-8"))
    data = b"\n".join(chunks) + b"\n"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def pair(prompt: str, chosen: str, rejected: str, label: int = 1) -> dict[str, Any]:
    """A row for the mapping options of `PAIR_OPTIONS`."""
    return {"q": prompt, "a": chosen, "b": rejected, "label": label}


PAIR_OPTIONS = {"prompt": "q", "responses": ["a", "b"], "label": "label"}


@dataclass
class Result:
    summary: dict[str, Any]
    report: dict[str, Any]
    quarantine: list[dict[str, Any]]
    layout: Layout

    def source(self, name: str = "src") -> dict[str, Any]:
        return self.report["sources"][name]

    def reasons(self, name: str = "src") -> dict[str, int]:
        return self.source(name)["records"]["quarantined_by_reason"]

    def balanced(self, name: str = "src") -> bool:
        records = self.source(name)["records"]
        return bool(records["kept"] + records["quarantined"] == records["read"])


def ingest(root: Path, sources: list[dict[str, Any]], **data: Any) -> Result:
    """Run the ingest of `sources` (paths relative to `root`) with outputs under `root`."""
    config = DataConfig.model_validate({"sources": sources, **data})
    layout = Layout(root)
    summary = run_ingest(config, layout)
    report = json.loads(layout.ingest_report.read_text())
    lines = layout.quarantine.read_text().splitlines()
    return Result(summary, report, [json.loads(line) for line in lines], layout)


def source(path: str, fmt: str = "mapping", name: str = "src", **options: Any) -> dict[str, Any]:
    opts = options or (PAIR_OPTIONS if fmt == "mapping" else {})
    return {"path": path, "format": fmt, "name": name, "options": opts}


def readme_example(name: str) -> list[dict[str, Any]]:
    """The `data.sources` of the docs/data.md snippet headed `# example: <name>`."""
    blocks = re.findall(r"```yaml\n# example: ([\w-]+)\n(.*?)```", DATA_DOC, flags=re.S)
    snippets = {key: yaml.safe_load(body) for key, body in blocks}
    return list(snippets[name]["data"]["sources"])
