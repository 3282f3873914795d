"""README.md and docs/*.md against the code: generated tables current, documented metric keys
and flow options equal to what the code produces, params snippets valid, links resolving."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_gen", DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _checked_table(path: Path, name: str) -> list[list[str]]:
    """The body rows (cells) of the table between `<!-- BEGIN/END CHECKED: name -->`."""
    text = path.read_text(encoding="utf-8")
    block = re.search(
        rf"<!-- BEGIN CHECKED: {name} -->\n(.*?)<!-- END CHECKED: {name} -->", text, re.S
    )
    assert block, f"{path.name} has no `{name}` table between CHECKED markers"
    lines = [line for line in block[1].splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in lines]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_generated_tables_are_current() -> None:
    gen = _gen()
    used = set()
    for path in _doc_files():
        text = path.read_text(encoding="utf-8")
        used |= {m["name"] for m in gen.BLOCK.finditer(text)}
        assert gen.regenerate(text) == text, (
            f"{path.relative_to(REPO_ROOT)} is out of date with the code: run `python docs/gen.py`"
        )
    assert used == set(gen.GENERATORS), "every generated table appears in the docs once"


def test_generation_notices_a_change_in_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reason added to the code without a meaning stops the generator."""
    gen = _gen()
    monkeypatch.setitem(gen.REASONS, "brand_new_reason", ("filtered", "do something"))
    with pytest.raises(SystemExit, match="brand_new_reason"):
        gen.quarantine_table()


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_relative_links_resolve() -> None:
    broken = []
    for path in _doc_files():
        for target in LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO_ROOT)} -> {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: no heading with that anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_params_snippets_are_valid_and_name_real_formats() -> None:
    from rmcore.core.config import parse_params
    from rmcore.core.formats import FORMATS

    for path in _doc_files():
        text = path.read_text(encoding="utf-8")
        for body in re.findall(r"```yaml\n(.*?)```", text, re.S):
            raw = yaml.safe_load(body)
            if isinstance(raw, dict) and "data" in raw:
                parse_params(raw, f"a yaml block of {path.name}")
        code = FENCE.findall(text) + re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
        for fmt in re.findall(r"\bformat: (\w+)", "\n".join(code)):
            assert fmt in FORMATS, f"{path.name} names `format: {fmt}`; formats: {FORMATS}"


def _flat_keys(metrics: dict[str, Any], documented: set[str]) -> set[str]:
    """Top-level keys; a dict not documented as a whole is listed by its sub-keys."""
    keys = set()
    for key, value in metrics.items():
        if key in documented or not isinstance(value, dict):
            keys.add(key)
        else:
            keys |= {f"{key}.{sub}" for sub in value}
    return keys


@pytest.mark.usefixtures("one_thread")
def test_documented_eval_keys_are_what_evaluate_writes(tmp_path: Path) -> None:
    from rmcore.core.config import EvalConfig
    from rmcore.evaluate.evaluation import run_evaluation
    from tests.eval_project import build_project

    layout = build_project(tmp_path)
    run_evaluation(EvalConfig(batch_size=4, length_buckets=[16, 32, 48]), layout)
    headline = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
    rows = _checked_table(DOCS / "metrics.md", "eval-keys")
    documented = {key for row in rows for key in _ticked(row[0])}
    assert _flat_keys(headline, documented) == documented, "docs/metrics.md's eval.json table"

    metrics = json.loads(layout.eval_details.read_text(encoding="utf-8"))
    rows = _checked_table(DOCS / "metrics.md", "eval-details-keys")
    documented = {key for row in rows for key in _ticked(row[0])}
    assert _flat_keys(metrics, documented) == documented, "docs/metrics.md's details table"

    scorer = set(metrics["baselines"]["longer_wins"])
    assert scorer <= set(metrics), "longer_wins has the model's metrics"
    overall = set(metrics) - {"length_buckets", "per_source", "identity"}
    assert all(set(m) == overall for m in metrics["per_source"].values())
    bucket_row = next(row for row in rows if _ticked(row[0]) == ["length_buckets"])
    for bucket in metrics["length_buckets"].values():
        assert set(bucket) <= set(_ticked(bucket_row[1])), "length_buckets' per-bucket keys"


def test_documented_flow_options_are_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.pipeline import main

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    options = set(re.findall(r"^\s+(--[a-z][\w-]*)", help_text, re.M))
    rows = _checked_table(DOCS / "operations.md", "flow-options")
    documented = {_ticked(row[0])[0].split()[0] for row in rows}
    assert documented == options, "docs/operations.md's flow options table"
    for row in rows:
        for env in _ticked(row[1]):
            assert f"${env} or {row[2]}" in help_text, f"{env} and its default {row[2]}"
    assert set(re.findall(r"\$(RMPIPE_\w+)", help_text)) == {
        env for row in rows for env in _ticked(row[1])
    }
