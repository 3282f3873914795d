"""Params loading and validation, and one source of truth for the defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from rmcore.core.config import (
    ConfigError,
    Params,
    default_length_buckets,
    load_params,
    parse_params,
)
from rmcore.core.formats import FORMATS
from tests.conftest import REPO_ROOT

MINIMAL = {"data": {"sources": [{"path": "x.jsonl", "format": "hh_rlhf"}]}}


def test_repo_params_load() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.model.name == "minilm-l6"
    assert params.loss.beta == pytest.approx(0.001)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    raw = {**MINIMAL, "train": {"epochs": 1, "learning_rate": 1e-4}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert "train.learning_rate" in str(err.value)
    assert str(path) in str(err.value)


def test_wrong_type_names_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size.*integer"):
        parse_params({**MINIMAL, "train": {"batch_size": "sixteen"}})


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("train", {"lr": -1.0}, "train.lr"),
        ("train", {"batch_size": 0}, "train.batch_size"),
        ("tokenize", {"max_length": 4}, "tokenize.max_length"),
    ],
)
def test_impossible_values(section: str, values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params({**MINIMAL, section: values})


def test_max_prompt_length_must_leave_room_for_a_completion() -> None:
    with pytest.raises(ConfigError, match=r"tokenize.*max_prompt_length \(256\) must be less"):
        parse_params({**MINIMAL, "tokenize": {"max_length": 256, "max_prompt_length": 256}})
    tokenize = parse_params({**MINIMAL, "tokenize": {"max_length": 256}}).tokenize
    assert tokenize.max_prompt_length is None and tokenize.prompt_limit == 128
    explicit = {"max_length": 256, "max_prompt_length": 200}
    assert parse_params({**MINIMAL, "tokenize": explicit}).tokenize.prompt_limit == 200


def test_split_fractions_must_sum_to_one() -> None:
    raw = {"data": {**MINIMAL["data"], "split": {"train": 0.5, "validation": 0.1, "test": 0.1}}}
    with pytest.raises(ConfigError, match=r"data\.split.*sum to 1"):
        parse_params(raw)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")


def schema_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The schema's default of every key, nested by section as in params.yaml (aliases used);
    required keys are left out."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out[key] = schema_defaults(field.annotation)
        elif not field.is_required():
            out[key] = field.get_default(call_default_factory=True)
    return out


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def repo_params() -> dict[str, Any]:
    return leaves(yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8")))


def test_params_yaml_values_are_the_schema_defaults() -> None:
    """params.yaml is what users run; the schema must give the same value where it is absent."""
    defaults = leaves(schema_defaults(Params))
    ours = repo_params()
    assert set(ours) - set(defaults) == {"data.sources"}  # required, so it has no default
    differ = {k: (v, defaults[k]) for k, v in ours.items() if k in defaults and defaults[k] != v}
    assert not differ, f"params.yaml value vs schema default: {differ}"


# `section.key` followed by a value in parentheses: "`data.max_chars` (200,000)",
# "`train.save_every` steps (25 in `params.yaml`; ...)", "(0 by default)".
QUOTED_DEFAULT = re.compile(
    r"`(?P<key>[a-z_]+\.[a-z_]+)`[^(`\n]{0,40}\("
    r"(?P<value>-?\d[\d,_.]*(?:e-?\d+)?|true|false|null)(?: by default| in `params\.yaml`)?[;),]"
)


def doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("**/*.md"))]


def test_defaults_quoted_in_the_docs_are_the_defaults() -> None:
    defaults, ours = leaves(schema_defaults(Params)), repo_params()
    quoted = [
        (path.name, m["key"], yaml.safe_load(m["value"].replace(",", "")))
        for path in doc_files()
        for m in QUOTED_DEFAULT.finditer(path.read_text(encoding="utf-8"))
    ]
    wrong = [q for q in quoted if q[2] != defaults.get(q[1]) or q[2] != ours.get(q[1], q[2])]
    assert not wrong, f"(file, key, quoted value) that are not the default: {wrong}"


FORMAT_NAMES = [
    # a YAML key (block or inline mapping), not prose like "per format: a ..."
    re.compile(r"(?:^[ \t]*(?:- )?|[{,][ \t]*)format:[ \t]*['\"]?(?P<name>[A-Za-z_][\w-]*)", re.M),
    re.compile(r"[\"']format[\"']\s*:\s*[\"'](?P<name>[^\"']+)[\"']"),  # a Python dict
]


def test_every_format_named_in_docs_params_and_flows_exists() -> None:
    files = [*doc_files(), REPO_ROOT / "params.yaml", *sorted((REPO_ROOT / "flows").glob("*.py"))]
    named = {
        (path.relative_to(REPO_ROOT).as_posix(), m["name"])
        for path in files
        for pattern in FORMAT_NAMES
        for m in pattern.finditer(path.read_text(encoding="utf-8"))
    }
    assert ("params.yaml", "mapping") in named  # the control: the patterns find formats
    unknown = sorted(n for n in named if n[1] not in FORMATS)
    assert not unknown, f"(file, format) naming no format of {FORMATS}: {unknown}"


def test_length_buckets_default_follows_max_length() -> None:
    assert default_length_buckets(256) == [64, 128, 256]
    assert default_length_buckets(300) == [64, 128, 256, 300]
    assert default_length_buckets(48) == [48]
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.eval.length_buckets is None  # derived from tokenize.max_length
    explicit = parse_params({**MINIMAL, "eval": {"length_buckets": [16, 32]}})
    assert explicit.eval.length_buckets == [16, 32]


@pytest.mark.parametrize("edges", [[], [-8, 64], [0, 64], [128, 64], [64, 64]])
def test_bad_length_buckets_are_refused_at_load(edges: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"eval\.length_buckets.*increasing positive"):
        parse_params({**MINIMAL, "eval": {"length_buckets": edges}})


def test_evaluate_derives_buckets_from_the_tokenised_max_length(tmp_path: Path) -> None:
    from rmcore.core.config import EvalConfig
    from rmcore.core.paths import Layout
    from rmcore.evaluate.evaluation import length_bucket_edges
    from rmcore.text.tokenize import write_meta

    layout = Layout(tmp_path)
    layout.tokenized.mkdir(parents=True)
    write_meta(layout, {"model_name": "x", "max_length": 200})
    assert length_bucket_edges(EvalConfig(), layout) == [64, 128, 200]
    assert length_bucket_edges(EvalConfig(length_buckets=[10, 20]), layout) == [10, 20]
