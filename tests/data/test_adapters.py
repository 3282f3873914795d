from __future__ import annotations

from typing import Any

import pytest

from rmcore.core.formats import HHRLHFOptions, MappingOptions, OasstOptions, PreferenceOptions
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.adapters.oasst import convert_oasst
from rmcore.data.adapters.transcripts import convert_hh_rlhf, convert_preference
from rmcore.data.records import RecordError

U = "user"
A = "assistant"


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def test_hh_rlhf_splits_shared_turns_from_final_replies() -> None:
    record = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: 2+2?\n\nAssistant: 4",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: 2+2?\n\nAssistant: 5",
    }
    [group] = convert_hh_rlhf(record, HHRLHFOptions())
    assert group.prompt == [_msg(U, "Hi"), _msg(A, "Hello"), _msg(U, "2+2?")]
    assert (group.completions, group.ranks) == (["4", "5"], [0, 1])


def test_hh_rlhf_mismatch_names_turn() -> None:
    record = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: a\n\nAssistant: 4",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hey\n\nHuman: a\n\nAssistant: 5",
    }
    with pytest.raises(RecordError) as err:
        convert_hh_rlhf(record, HHRLHFOptions())
    assert err.value.rejection.reason == "prompt_mismatch"
    assert "turn 2" in err.value.rejection.detail


@pytest.mark.parametrize(
    ("row", "prompt", "completions"),
    [
        (
            {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."},
            [_msg(U, "Sky?")],
            ["Blue.", "Green."],
        ),
        (
            {"chosen": "The sky is blue.", "rejected": "The sky is green."},
            [_msg(U, "The sky is")],
            ["blue.", "green."],
        ),
        (
            {
                "prompt": [_msg(U, "Sky?")],
                "chosen": [_msg(A, "Blue.")],
                "rejected": [_msg(A, "Green.")],
            },
            [_msg(U, "Sky?")],
            ["Blue.", "Green."],
        ),
        (
            {
                "chosen": [_msg(U, "Sky?"), _msg(A, "Blue.")],
                "rejected": [_msg(U, "Sky?"), _msg(A, "Green.")],
            },
            [_msg(U, "Sky?")],
            ["Blue.", "Green."],
        ),
    ],
    ids=["explicit", "implicit", "conversational", "conversational-implicit"],
)
def test_trl_preference_forms(row: dict[str, Any], prompt: list, completions: list[str]) -> None:
    [group] = convert_preference(row, PreferenceOptions())
    assert group.prompt[0]["content"].strip() == prompt[0]["content"]
    assert [c.strip() for c in group.completions] == completions
    assert group.ranks == [0, 1]


def test_trl_conversational_implicit_prefix_must_match() -> None:
    row = {
        "chosen": [_msg(U, "Sky?"), _msg(A, "Blue.")],
        "rejected": [_msg(U, "Sea?"), _msg(A, "Green.")],
    }
    with pytest.raises(RecordError, match="prompt_mismatch"):
        convert_preference(row, PreferenceOptions())


def _reply(
    text: str, rank: int | None, synthetic: bool = False, replies: list | None = None
) -> dict:
    return {
        "text": text,
        "role": "assistant",
        "rank": rank,
        "synthetic": synthetic,
        "replies": replies or [],
    }


def _tree() -> dict[str, Any]:
    follow_up = {
        "text": "Why?",
        "role": "prompter",
        "replies": [_reply("Because.", 1), _reply("Physics.", 0), _reply("Dunno.", None)],
    }
    return {
        "message_tree_id": "t",
        "prompt": {
            "text": "Sky colour?",
            "role": "prompter",
            "synthetic": False,
            "replies": [
                _reply("Blue.", 0, replies=[follow_up]),
                _reply("Green.", 1),
                _reply("Red.", 2, True),
            ],
        },
    }


def test_oasst_sibling_replies_become_ranked_groups() -> None:
    top, deeper = convert_oasst(_tree(), OasstOptions())
    assert top.prompt == [_msg(U, "Sky colour?")]
    assert (top.completions, top.ranks) == (["Blue.", "Green.", "Red."], [0, 1, 2])
    assert deeper.prompt == [_msg(U, "Sky colour?"), _msg(A, "Blue."), _msg(U, "Why?")]
    assert (deeper.completions, deeper.ranks) == (["Because.", "Physics."], [1, 0])
    assert deeper.removed == {"unranked": 1}


def test_oasst_can_exclude_synthetic_replies() -> None:
    top, _ = convert_oasst(_tree(), OasstOptions(include_synthetic=False))
    assert top.completions == ["Blue.", "Green."]
    assert top.removed == {"synthetic_excluded": 1}


def test_oasst_tree_without_replies_is_rejected() -> None:
    with pytest.raises(RecordError, match="no_reply_groups"):
        convert_oasst({"prompt": {"text": "Hi", "role": "prompter", "replies": []}}, OasstOptions())


def _mapping(**options: Any) -> MappingOptions:
    return MappingOptions.model_validate(options)


@pytest.mark.parametrize(
    ("votes", "ranks"),
    [
        ((1, 1, 2), [0, 1]),
        ((2, 2, 0), [1, 0]),
        ((0, 0, 1), [0, 0]),
        ((0, 1, 2), [0, 0]),
        ((1, None, None), [0, 1]),
    ],
)
def test_mapping_majority_vote(votes: tuple, ranks: list[int]) -> None:
    options = _mapping(prompt=["i", "x"], responses=["r1", "r2"], label=["v1", "v2", "v3"])
    row = {
        "i": "Rewrite:",
        "x": "",
        "r1": "a",
        "r2": "b",
        **dict(zip(["v1", "v2", "v3"], votes, strict=True)),
    }
    [group] = convert_mapping(row, options)
    assert group.ranks == ranks
    assert group.prompt == [_msg(U, "Rewrite:")]


def test_mapping_no_majority_can_quarantine() -> None:
    options = _mapping(
        prompt="i", responses=["a", "b"], label=["v1", "v2"], no_majority="quarantine"
    )
    with pytest.raises(RecordError, match="no_majority"):
        convert_mapping({"i": "q", "a": "x", "b": "y", "v1": 1, "v2": 2}, options)


def test_mapping_label_values_are_configurable_and_csv_strings_work() -> None:
    options = _mapping(
        prompt="q", responses=["a", "b"], label="w", label_first=["A"], label_second=["B"]
    )
    [group] = convert_mapping({"q": "?", "a": "x", "b": "y", "w": "B"}, options)
    assert group.ranks == [1, 0]
    options = _mapping(prompt="q", responses="r", scores="s")
    [group] = convert_mapping({"q": "?", "r": '["x", "y", "z"]', "s": "[0.5, 2, 0.5]"}, options)
    assert (group.ranks, group.scores) == ([1, 0, 1], [0.5, 2.0, 0.5])


def test_mapping_scores_lower_is_better_and_rank_fields() -> None:
    options = _mapping(prompt="q", responses="r", scores="s", higher_is_better=False)
    [group] = convert_mapping({"q": "?", "r": ["x", "y"], "s": [3, 1]}, options)
    assert group.ranks == [1, 0]
    options = _mapping(messages="m", responses=["a", "b", "c"], ranks=["ra", "rb", "rc"])
    row = {"m": [_msg("human", "?")], "a": "x", "b": "y", "c": "z", "ra": 2, "rb": 0, "rc": 5}
    [group] = convert_mapping(row, options)
    assert (group.prompt, group.ranks) == ([_msg(U, "?")], [1, 0, 2])


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        ({"q": "?", "r": ["x", "y"], "k": [0]}, "invalid_value", "k[0]"),
        ({"q": "?", "r": ["x", 3], "k": [0, 1]}, "wrong_type", "r[1]"),
        ({"q": "?", "r": ["x", "y"], "k": [0, -1]}, "invalid_value", "k[1]"),
        ({"q": "?", "r": ["x", "y"], "k": [0, 1.5]}, "invalid_value", "k[1]"),
        ({"q": None, "r": ["x", "y"], "k": [0, 1]}, "null_field", "q"),
    ],
)
def test_mapping_record_errors_name_the_field(row: dict, reason: str, field: str) -> None:
    with pytest.raises(RecordError) as err:
        convert_mapping(row, _mapping(prompt="q", responses="r", ranks="k"))
    assert (err.value.rejection.reason, err.value.rejection.field) == (reason, field)
