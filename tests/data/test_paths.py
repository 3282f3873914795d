"""Field paths in every option that names a field: syntax, values, and three distinct failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rmcore.core.config import ConfigError, parse_params
from rmcore.core.fieldpaths import path_steps
from rmcore.core.formats import (
    HHRLHFOptions,
    MappingOptions,
    PreferenceOptions,
    WebGPTOptions,
)
from rmcore.data import paths
from rmcore.data.adapters.hub import convert_webgpt
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.adapters.transcripts import convert_hh_rlhf, convert_preference
from rmcore.data.records import IngestError, RecordError
from tests.data.helpers import ingest, source

RECORD = {
    "a": {"b": "x", "n": None, "s": "text"},
    "turns": [{"content": "first"}, {"content": "last"}],
    "items": [{"text": "one"}, {"text": "two"}],
    "x.y": "dotted",
    "cell": '[{"text": "json in a CSV cell"}]',
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("a.b", "x"),
        ("turns[0].content", "first"),
        ("turns[-1].content", "last"),
        ("items[*].text", ["one", "two"]),
        ('["x.y"]', "dotted"),
        ("cell[0].text", "json in a CSV cell"),
    ],
)
def test_a_path_reaches_keys_items_and_every_item(path: str, value: Any) -> None:
    assert paths.get(RECORD, path) == value


@pytest.mark.parametrize(
    ("path", "reason", "detail"),
    [
        ("a.c", "missing_field", "no field `c` in `a`"),
        ("nope", "missing_field", "no field `nope` in the record"),
        ("turns[5].content", "missing_field", "no item [5] in `turns` (2 items)"),
        ("a.n.b", "null_field", "`a.n` is null"),
        ("a.s.b", "wrong_type", "`a.s` is a string, not an object with `b`"),
        ("a[0]", "wrong_type", "`a` is an object, not a list"),
        ("items[*].text.x", "wrong_type", "`items[0].text` is a string, not an object with `x`"),
        ("items[*].nope", "missing_field", "no field `nope` in `items[0]`"),
    ],
)
def test_missing_null_and_wrong_type_are_three_messages_naming_the_path(
    path: str, reason: str, detail: str
) -> None:
    with pytest.raises(RecordError) as err:
        paths.get(RECORD, path)
    assert (err.value.rejection.reason, err.value.rejection.field) == (reason, path)
    assert err.value.rejection.detail == detail


@pytest.mark.parametrize("bad", ["a..b", "a[x]", ".a", "a[0]b", "a]", ""])
def test_a_path_that_does_not_parse_fails_when_params_load(bad: str) -> None:
    with pytest.raises(ValueError, match="field path"):
        path_steps(bad)
    raw: dict[str, Any] = {"data": {"sources": [{"path": "x.jsonl", "format": "hh_rlhf"}]}}
    raw["data"]["sources"][0]["options"] = {"chosen": bad}
    with pytest.raises(ConfigError, match=r"options.*chosen"):
        parse_params(raw)


def test_hh_rlhf_takes_paths() -> None:
    record = {"pair": ["\n\nHuman: Hi\n\nAssistant: Hello", "\n\nHuman: Hi\n\nAssistant: Go."]}
    [group] = convert_hh_rlhf(record, HHRLHFOptions(chosen="pair[0]", rejected="pair[1]"))
    assert group.completions == ["Hello", "Go."]


def test_preference_takes_paths_and_names_a_null_rejected() -> None:
    options = PreferenceOptions(prompt="meta.q", chosen="out[0].text", rejected="out[-1].text")
    record = {"meta": {"q": "Sky?"}, "out": [{"text": "Blue."}, {"text": "Green."}]}
    [group] = convert_preference(record, options)
    assert (group.prompt[0]["content"], group.completions) == ("Sky?", ["Blue.", "Green."])
    with pytest.raises(RecordError) as err:
        convert_preference(
            {"prompt": "Sky?", "chosen": "Blue.", "rejected": None}, PreferenceOptions()
        )
    assert (err.value.rejection.reason, err.value.rejection.detail) == (
        "null_field",
        "`rejected` is null",
    )
    with pytest.raises(RecordError) as err:
        convert_preference({"prompt": "Sky?", "chosen": "Blue."}, PreferenceOptions())
    assert err.value.rejection.reason == "missing_field"
    assert err.value.rejection.detail == "no field `rejected` in the record"


def test_mapping_takes_paths_with_every_item_and_names_the_item() -> None:
    options = MappingOptions(
        prompt="info.question", responses="answers[*].text", scores="answers[*].score"
    )
    record: dict[str, Any] = {
        "info": {"question": "Best?"},
        "answers": [
            {"text": "a", "score": 1},
            {"text": "b", "score": 3},
            {"text": "c", "score": 2},
        ],
    }
    [group] = convert_mapping(record, options)
    assert (group.completions, group.ranks) == (["a", "b", "c"], [2, 0, 1])
    record["answers"][1]["text"] = None
    with pytest.raises(RecordError) as err:
        convert_mapping(record, options)
    assert (err.value.rejection.reason, err.value.rejection.field) == (
        "null_field",
        "answers[1].text",
    )
    assert "answers[1].text" in err.value.rejection.detail


def test_formats_without_field_options_still_read_nested_fields() -> None:
    record = {
        "question": {"full_text": "Why?"},
        "answer_0": "Because.",
        "answer_1": "No.",
        "score_0": 1.0,
        "score_1": -1.0,
    }
    [group] = convert_webgpt(record, WebGPTOptions())
    assert group.ranks == [0, 1]


def test_paths_in_a_table_source_check_the_top_column(tmp_path: Path) -> None:
    """A CSV cell holding JSON is reached by a path; the header check names the top column."""
    (tmp_path / "in.csv").write_text(
        'q,r\nHi?,"[{""t"": ""Hello."", ""s"": 2}, {""t"": ""Go."", ""s"": 1}]"\n'
        'Yo?,"[{""t"": ""Hey."", ""s"": 1}, {""t"": ""No."", ""s"": 0}]"\n'
    )
    opts = {"prompt": "q", "responses": "r[*].t", "scores": "r[*].s"}
    result = ingest(tmp_path, [source("in.csv", **opts)])
    assert result.source()["records"]["kept"] == 2
    (tmp_path / "bad.csv").write_text("q,x\nHi?,1\n")
    with pytest.raises(IngestError, match="no column 'r'"):
        ingest(tmp_path, [source("bad.csv", **opts)])
