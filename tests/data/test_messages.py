"""Messages with other keys and role names (ShareGPT's from/value), for prompts and replies."""

from __future__ import annotations

from typing import Any

import pytest

from rmcore.core.formats import MappingOptions, PreferenceOptions
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.adapters.transcripts import convert_preference
from rmcore.data.records import RecordError

SHAREGPT = {"role_key": "from", "content_key": "value"}


def _sg(role: str, value: str) -> dict[str, str]:
    return {"from": role, "value": value}


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def test_sharegpt_dpo_prompt_and_single_message_replies() -> None:
    row = {
        "conversations": [_sg("system", "Be brief."), _sg("human", "Sky colour?")],
        "chosen": _sg("gpt", "Blue."),
        "rejected": _sg("gpt", "Green."),
    }
    [group] = convert_preference(row, PreferenceOptions(prompt="conversations", **SHAREGPT))
    assert group.prompt == [_msg("system", "Be brief."), _msg("user", "Sky colour?")]
    assert (group.completions, group.ranks) == (["Blue.", "Green."], [0, 1])


def test_a_role_map_adds_role_names_and_an_unknown_role_names_the_known() -> None:
    row = {
        "prompt": [{"speaker": "USER", "text": "Hi?"}],
        "chosen": [{"speaker": "USER", "text": "Hi?"}, {"speaker": "GPT4", "text": "Hello."}],
        "rejected": [{"speaker": "USER", "text": "Hi?"}, {"speaker": "GPT4", "text": "Go."}],
    }
    keys: dict[str, Any] = {"role_key": "speaker", "content_key": "text"}
    options = PreferenceOptions(**keys, roles={"USER": "user", "GPT4": "assistant"})
    [group] = convert_preference(row, options)
    assert group.prompt == [_msg("user", "Hi?")]
    assert group.completions == ["Hello.", "Go."]
    with pytest.raises(RecordError) as err:
        convert_preference(row, PreferenceOptions(**keys))
    assert err.value.rejection.reason == "invalid_value"
    assert err.value.rejection.field == "chosen[1].speaker"
    assert "unknown role 'GPT4'" in err.value.rejection.detail
    assert "options.roles" in err.value.rejection.detail


def test_ultrafeedback_binarized_replies_are_conversations_with_the_prompt() -> None:
    row = {
        "prompt": "2+2?",
        "chosen": [_msg("user", "2+2?"), _msg("assistant", "4")],
        "rejected": [_msg("user", "2+2?"), _msg("assistant", "5")],
    }
    [group] = convert_preference(row, PreferenceOptions())
    assert (group.prompt, group.completions) == ([_msg("user", "2+2?")], ["4", "5"])


def test_a_missing_content_key_names_the_message_path() -> None:
    row = {"conversations": [{"from": "human"}], "chosen": "a", "rejected": "b"}
    with pytest.raises(RecordError) as err:
        convert_preference(row, PreferenceOptions(prompt="conversations", **SHAREGPT))
    rejection = err.value.rejection
    assert (rejection.reason, rejection.field) == ("missing_field", "conversations[0].value")
    assert rejection.detail == "no field `value` in `conversations[0]`"


def test_mapping_prompt_messages_and_conversation_replies_with_other_keys() -> None:
    row = {
        "history": [_sg("human", "Hi?")],
        "a": [_sg("human", "Hi?"), _sg("gpt", "Hello.")],
        "b": [_sg("human", "Hi?"), _sg("gpt", "Go.")],
        "w": "a",
    }
    options = MappingOptions(
        responses=["a", "b"], label="w", label_first=["a"], label_second=["b"], **SHAREGPT
    )
    [group] = convert_mapping(row, options)  # the prompt is the history the replies share
    assert (group.prompt, group.completions, group.ranks) == (
        [_msg("user", "Hi?")],
        ["Hello.", "Go."],
        [0, 1],
    )
    options = MappingOptions(
        messages="history", responses=["a", "b"], label="w", label_first=["a"], **SHAREGPT
    )
    assert convert_mapping(row, options)[0].prompt == [_msg("user", "Hi?")]


def test_multi_turn_replies_with_their_own_earlier_answers_differ() -> None:
    row: dict[str, Any] = {
        "a": [
            _msg("user", "Q1"),
            _msg("assistant", "A1"),
            _msg("user", "Q2"),
            _msg("assistant", "A2"),
        ],
        "b": [
            _msg("user", "Q1"),
            _msg("assistant", "B1"),
            _msg("user", "Q2"),
            _msg("assistant", "B2"),
        ],
        "turn": 1,
        "w": 1,
    }
    options = MappingOptions(responses=["a", "b"], label="w", turn="turn")
    [group] = convert_mapping(row, options)
    assert (group.prompt, group.completions) == ([_msg("user", "Q1")], ["A1", "B1"])
    row["turn"] = 2
    with pytest.raises(RecordError) as err:
        convert_mapping(row, options)
    assert (err.value.rejection.reason, err.value.rejection.field) == ("histories_differ", "b")
    row["b"][0] = _msg("user", "Other question")
    with pytest.raises(RecordError, match="prompt_mismatch"):
        convert_mapping(row, options)
