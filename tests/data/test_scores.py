"""Several score attributes: choose one, or rank by a weighted sum."""

from __future__ import annotations

import pytest

from rmcore.core.config import ConfigError, parse_params
from rmcore.core.formats import LongOptions, MappingOptions
from rmcore.data.adapters.long import combine_rows, convert_long
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.records import RecordError


def _completion(text: str, helpful: str, honest: str) -> dict:
    return {
        "response": text,
        "annotations": {"helpfulness": {"Rating": helpful}, "honesty": {"Rating": honest}},
    }


RECORD = {
    "instruction": "Explain rain.",
    "completions": [
        _completion("a", "5", "2"),
        _completion("b", "3", "4"),
        _completion("c", "4", "4"),
    ],
}
HELP = "completions[*].annotations.helpfulness.Rating"
HONEST = "completions[*].annotations.honesty.Rating"


def _mapping(scores: object) -> MappingOptions:
    return MappingOptions.model_validate(
        {"prompt": "instruction", "responses": "completions[*].response", "scores": scores}
    )


def test_one_attribute_or_a_weighted_sum_ranks_the_completions() -> None:
    [group] = convert_mapping(RECORD, _mapping(HELP))
    assert (group.ranks, group.scores) == ([0, 2, 1], [5.0, 3.0, 4.0])
    [group] = convert_mapping(RECORD, _mapping({HELP: 1, HONEST: 1}))
    assert (group.ranks, group.scores) == ([1, 1, 0], [7.0, 7.0, 8.0])  # a and b tie
    [group] = convert_mapping(RECORD, _mapping({HELP: 1, HONEST: 0.25}))
    assert group.scores == [5.5, 4.0, 5.0]
    assert group.ranks == [0, 2, 1]


def test_a_rating_that_is_not_a_number_names_its_item() -> None:
    record = {**RECORD, "completions": [*RECORD["completions"][:2], _completion("c", "N/A", "4")]}
    with pytest.raises(RecordError) as err:
        convert_mapping(record, _mapping({HELP: 1, HONEST: 1}))
    rejection = err.value.rejection
    assert (rejection.reason, rejection.field) == (
        "wrong_type",
        "completions[2].annotations.helpfulness.Rating",
    )
    assert "'N/A'" in rejection.detail


def test_long_rows_rank_by_a_weighted_sum_and_equal_sums_tie() -> None:
    options = LongOptions(
        prompt="prompt", response="response", score={"helpfulness": 1, "correctness": 1}
    )
    rows = [
        {"prompt": "P", "response": "x", "helpfulness": 3, "correctness": 4},
        {"prompt": "P", "response": "y", "helpfulness": 4, "correctness": 3},
        {"prompt": "P", "response": "z", "helpfulness": 2, "correctness": 2},
    ]
    parts = [part for row in rows for part in convert_long(row, options)]
    [group] = combine_rows(parts, options)
    assert (group.scores, group.ranks) == ([7.0, 7.0, 4.0], [0, 0, 1])


def test_weighted_scores_need_one_list_of_responses() -> None:
    options = {"prompt": "q", "responses": ["a", "b"], "scores": {"s": 1}}
    raw = {"data": {"sources": [{"path": "x.jsonl", "format": "mapping", "options": options}]}}
    with pytest.raises(ConfigError, match="weighted `scores` need `responses` as one list"):
        parse_params(raw)
