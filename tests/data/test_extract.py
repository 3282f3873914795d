"""Text extraction from templated fields, transcript prompts, and the split key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rmcore.core.config import ConfigError, parse_params
from rmcore.core.formats import MappingOptions, PreferenceOptions
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.adapters.transcripts import convert_preference
from rmcore.data.io import read_split
from rmcore.data.records import RecordError
from rmcore.data.schema import SPLITS
from tests.data.helpers import ingest, source, write_jsonl

JUDGE = (
    "[System]\nYou are a fair judge. Compare the two answers.\n\n"
    "[Instruction]\n{instruction}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n"
    "Which response is better? Answer A or B."
)
INSTRUCTION = {"regex": r"\[Instruction\]\n(?P<text>.*?)\n\n\[Response A\]"}


def _judge_row(instruction: str, a: str, b: str, winner: str) -> dict[str, Any]:
    return {"input": JUDGE.format(instruction=instruction, a=a, b=b), "a": a, "b": b, "w": winner}


def _judge_options(**more: Any) -> MappingOptions:
    return MappingOptions.model_validate(
        {
            "prompt": "input",
            "prompt_extract": INSTRUCTION,
            "responses": ["a", "b"],
            "label": "w",
            "label_first": ["A"],
            "label_second": ["B"],
            **more,
        }
    )


def test_a_regex_takes_the_instruction_out_of_a_judge_template() -> None:
    row = _judge_row("Write a haiku\nabout rain.", "Drops on the roof...", "Rain.", "A")
    [group] = convert_mapping(row, _judge_options())
    assert group.prompt == [{"role": "user", "content": "Write a haiku\nabout rain."}]
    with pytest.raises(RecordError) as err:
        convert_mapping({**row, "input": "Rate this: Write a haiku."}, _judge_options())
    assert (err.value.rejection.reason, err.value.rejection.field) == ("no_match", "input")


def test_delimiters_and_boilerplate_removed_from_completions() -> None:
    options = MappingOptions.model_validate(
        {
            "prompt": "q",
            "prompt_extract": {"start": "<question>", "end": "</question>"},
            "responses": ["a", "b"],
            "response_extract": {"remove_prefix": "Answer:", "remove_suffix": "I hope this helps!"},
            "label": "w",
        }
    )
    row = {
        "q": "Context... <question> Why is the sky blue? </question> Be brief.",
        "a": "Answer: Rayleigh scattering.\n\nI hope this helps!",
        "b": "Answer: Because it is.\n\nI hope this helps!",
        "w": 1,
    }
    [group] = convert_mapping(row, options)
    assert group.prompt[0]["content"] == "Why is the sky blue?"
    assert group.completions == ["Rayleigh scattering.", "Because it is."]
    with pytest.raises(RecordError, match="no_match"):
        convert_mapping({**row, "q": "Why? </question>"}, options)


def test_preference_extracts_too() -> None:
    options = PreferenceOptions(
        prompt_extract={"regex": r"^Q: (?P<text>.*)$"},
        response_extract={"remove_suffix": "-- bot"},
    )
    row = {"prompt": "Q: Sky?", "chosen": "Blue. -- bot", "rejected": "Green. -- bot"}
    [group] = convert_preference(row, options)
    assert (group.prompt[0]["content"], group.completions) == ("Sky?", ["Blue.", "Green."])


def test_a_transcript_prompt_becomes_messages() -> None:
    options = MappingOptions.model_validate(
        {
            "prompt": "prompt",
            "prompt_transcript": True,
            "responses": "answers[*].answer",
            "ranks": "answers[*].rank",
        }
    )
    row = {
        "prompt": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: 2+2?\n\nAssistant:",
        "answers": [{"answer": "5", "rank": 2.0}, {"answer": "4", "rank": 1.0}],
    }
    [group] = convert_mapping(row, options)
    assert group.prompt == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
    ]
    assert group.ranks == [1, 0]


@pytest.mark.parametrize(
    ("extract", "message"),
    [
        ({"regex": "Instruction: (.*)"}, r"named group: \(\?P<text>"),
        ({"regex": "(?P<text>"}, "regex"),
        ({"regex": "(?P<text>.*)", "start": "x"}, "not both"),
        ({}, "give `regex`"),
    ],
)
def test_extract_options_are_checked_at_load(extract: dict, message: str) -> None:
    options = {"prompt": "q", "responses": ["a", "b"], "label": "w", "prompt_extract": extract}
    raw = {"data": {"sources": [{"path": "x.jsonl", "format": "mapping", "options": options}]}}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_the_split_key_keeps_an_item_in_one_split_however_its_prompt_is_worded(
    tmp_path: Path,
) -> None:
    """Each item's instruction comes plain and inside a judge template; with split_key the
    groups of one item share a split, without it some items straddle two."""
    plain, templated = [], []
    for n in range(60):
        instruction = f"Task {n}: name a prime number."
        plain.append({"id": n, "q": instruction, "a": "7", "b": "8", "w": "A"})
        templated.append({"id": n, **_judge_row(instruction, "11", "12", "A")})
    write_jsonl(tmp_path / "plain.jsonl", plain)
    write_jsonl(tmp_path / "judge.jsonl", templated)
    plain_opts: dict[str, Any] = {
        "prompt": "q",
        "responses": ["a", "b"],
        "label": "w",
        "label_first": ["A"],
    }
    # the template is the prompt: a leak
    judge_opts: dict[str, Any] = {**plain_opts, "prompt": "input"}
    sources = [
        source("plain.jsonl", name="p", **plain_opts),
        source("judge.jsonl", name="j", **judge_opts),
    ]
    items = _item_splits(ingest(tmp_path, sources))
    assert any(len(splits) > 1 for splits in items.values())
    for src in sources:
        src["options"] = {**src["options"], "split_key": "id"}
    items = _item_splits(ingest(tmp_path, sources))
    assert len(items) == 60 and all(len(splits) == 1 for splits in items.values())


def _item_splits(result: Any) -> dict[str, set[str]]:
    """The splits each item (the `Task n` in its prompt) landed in."""
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        for row in read_split(result.layout, split).to_pylist():
            task = row["prompt"][0]["content"].split("Task ")[1].split(":")[0]
            found.setdefault(task, set()).add(split)
    return found
