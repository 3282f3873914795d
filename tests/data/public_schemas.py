# ruff: noqa: E501
"""Small records in the schemas of public preference datasets, as their publishers document them.

Each builder returns the records of one file; `FIXTURES` names the file each is written to
(the path of its example in docs/data.md) and its type. The texts are made up; the field
names, nesting, value types and label values are the publishers'.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def _msg(role: str, content: str) -> dict[str, str]:
    return {"content": content, "role": role}


def _uf_completion(model: str, response: str, ratings: tuple[str, str, str, str]) -> Record:
    """openbmb/UltraFeedback: one completion with its four rated aspects (ratings as text)."""
    helpful, honest, follows, truthful = ratings
    return {
        "annotations": {
            "helpfulness": {"Rating": helpful, "Rationale": "...", "Rationale For Rating": "...", "Type": ["1", "2"]},
            "honesty": {"Rating": honest, "Rationale": "..."},
            "instruction_following": {"Rating": follows, "Rationale": "..."},
            "truthfulness": {"Rating": truthful, "Rationale": "...", "Rationale For Rating": "...", "Type": ["0"]},
        },
        "critique": "...",
        "custom_system_prompt": "You are a helpful assistant.",
        "fine-grained_score": 4.0,
        "model": model,
        "overall_score": 7.5,
        "principle": "helpfulness",
        "response": response,
    }  # fmt: skip


def ultrafeedback() -> list[Record]:
    def record(instruction: str, completions: list[Record]) -> Record:
        return {
            "source": "evol_instruct",
            "instruction": instruction,
            "models": [c["model"] for c in completions],
            "completions": completions,
            "correct_answers": ["None"],
            "incorrect_answers": ["None"],
        }

    return [
        record("How do clouds form?", [
            _uf_completion("gpt-4", "Water vapour cools and condenses on dust.", ("5", "5", "5", "5")),
            _uf_completion("alpaca-7b", "Clouds are made by planes.", ("1", "2", "2", "1")),
            _uf_completion("llama-2-13b-chat", "Warm air rises, cools, and vapour condenses.", ("4", "5", "4", "5")),
            _uf_completion("falcon-40b-instruct", "Evaporation and condensation.", ("3", "4", "3", "4")),
        ]),
        record("Name three prime numbers.", [
            _uf_completion("gpt-3.5-turbo", "2, 3 and 5.", ("5", "5", "5", "5")),
            _uf_completion("vicuna-33b", "3, 5 and 7.", ("5", "5", "5", "5")),
            _uf_completion("starchat", "4, 6 and 8.", ("1", "3", "2", "1")),
            _uf_completion("pythia-12b", "1, 2, 3.", ("2", "3", "3", "2")),
        ]),
        record("Translate 'cat' into French.", [
            _uf_completion("gpt-4", "Chat.", ("5", "5", "5", "5")),
            _uf_completion("ultralm-13b", "Chien.", ("1", "N/A", "1", "1")),
        ]),
    ]  # fmt: skip


def helpsteer2() -> list[Record]:
    """nvidia/HelpSteer2: one row per response, five attributes scored 0..4."""

    def row(prompt: str, response: str, h: int, c: int, co: int, cx: int, v: int) -> Record:
        return {
            "prompt": prompt, "response": response, "helpfulness": h, "correctness": c,
            "coherence": co, "complexity": cx, "verbosity": v,
        }  # fmt: skip

    return [
        row("What is the boiling point of water?", "100 degrees Celsius at sea level.", 4, 4, 4, 1, 1),
        row("What is the boiling point of water?", "It depends.", 1, 2, 3, 0, 0),
        row("Write a limerick about a cat.", "A cat with a hat sat...", 3, 3, 4, 2, 2),
        row("Write a limerick about a cat.", "Cats are animals.", 3, 3, 2, 0, 1),
        row("List two colours.", "Red and blue.", 4, 4, 4, 0, 1),
        row("List two colours.", "Green, yellow.", 4, 4, 4, 0, 1),
    ]  # fmt: skip


NECTAR_MODELS = ["gpt-4", "gpt-3.5-turbo", "claude-1", "llama-2-7b-chat", "vicuna-13b", "alpaca-13b", "dolly-v2-12b"]  # fmt: skip


def nectar() -> list[Record]:
    """berkeley-nest/Nectar: an hh-style prompt and 7 answers ranked 1.0 (best) .. 7.0."""

    def record(prompt: str, turns: int, answers: list[str]) -> Record:
        ranked = [
            {"answer": text, "model": model, "rank": float(n + 1)}
            for n, (text, model) in enumerate(zip(answers, NECTAR_MODELS, strict=True))
        ]
        return {
            "prompt": prompt, "answers": ranked[::-1], "turns": turns, "num_responses": 7,
            "source": ["sharegpt"], "good_natured": True,
        }  # fmt: skip

    return [
        record("\n\nHuman: Why is the sea salty?\n\nAssistant:", 1, [f"Sea answer {n}" for n in range(7)]),
        record(
            "\n\nHuman: Hi!\n\nAssistant: Hello! How can I help?\n\nHuman: Suggest a book.\n\nAssistant:",
            2,
            [f"Book answer {n}" for n in range(7)],
        ),
    ]  # fmt: skip


def _battle(n: int, a: str, b: str, winner: str, conv_a: list, conv_b: list, turn: int) -> Record:
    """lmsys/chatbot_arena_conversations: one battle between two anonymous models."""
    return {
        "question_id": f"q{n:04d}", "model_a": a, "model_b": b, "winner": winner,
        "judge": f"arena_user_{n}", "conversation_a": conv_a, "conversation_b": conv_b,
        "turn": turn, "anony": True, "language": "English", "tstamp": 1682351591.0 + n,
        "openai_moderation": {"categories": {}, "flagged": False},
        "toxic_chat_tag": {"roberta-large": {"flagged": False, "probability": 0.01}},
    }  # fmt: skip


def _qa(question: str, answer: str) -> list[dict[str, str]]:
    return [_msg("user", question), _msg("assistant", answer)]


def arena() -> list[Record]:
    capital = "What is the capital of Australia?"
    return [
        _battle(1, "vicuna-13b", "koala-13b", "model_a", _qa(capital, "Canberra."), _qa(capital, "Sydney."), 1),
        _battle(2, "alpaca-13b", "gpt-4", "model_b", _qa("Say hi.", "Bye."), _qa("Say hi.", "Hi!"), 1),
        _battle(3, "claude-v1", "gpt-4", "tie", _qa("2+2?", "4"), _qa("2+2?", "Four."), 1),
        _battle(4, "llama-13b", "dolly-v2-12b", "tie (bothbad)", _qa("2+3?", "6"), _qa("2+3?", "7"), 1),
        _battle(
            5, "gpt-4", "claude-v1", "model_a",
            _qa("Hi", "Hello!") + _qa("Tell a joke.", "Why did the chicken..."),
            _qa("Hi", "Hey there.") + _qa("Tell a joke.", "Knock knock."),
            2,
        ),
        _battle(6, "gpt-3.5-turbo", "vicuna-13b", "model_a", _qa(capital, "It is Canberra."), _qa(capital, "Melbourne."), 1),
        _battle(7, "koala-13b", "oasst-pythia-12b", "model_b", _qa("Name a fruit.", "A chair."), _qa("Name a fruit.", "An apple."), 1),
    ]  # fmt: skip


MT_QUESTIONS = {81: ("Write a travel blog post about Hawaii.", "Rewrite it starting every sentence with A."),
                82: ("Draft a professional email asking for feedback.", "Critique your own email.")}  # fmt: skip


def _mt_conversation(qid: int, model: str) -> list[dict[str, str]]:
    first, second = MT_QUESTIONS[qid]
    return [
        _msg("user", first), _msg("assistant", f"{model}'s answer to question {qid}, turn 1."),
        _msg("user", second), _msg("assistant", f"{model}'s answer to question {qid}, turn 2."),
    ]  # fmt: skip


def mt_bench() -> list[Record]:
    """lmsys/mt_bench_human_judgments (human split): both whole two-turn conversations, and
    the judged `turn`."""

    def judgment(qid: int, a: str, b: str, winner: str, judge: str, turn: int) -> Record:
        return {
            "question_id": qid, "model_a": a, "model_b": b, "winner": winner, "judge": judge,
            "conversation_a": _mt_conversation(qid, a), "conversation_b": _mt_conversation(qid, b),
            "turn": turn,
        }  # fmt: skip

    return [
        judgment(81, "gpt-4", "claude-v1", "model_a", "author_0", 1),
        judgment(81, "claude-v1", "vicuna-13b-v1.2", "model_a", "author_1", 1),
        judgment(81, "gpt-4", "vicuna-13b-v1.2", "model_a", "author_2", 1),
        judgment(81, "gpt-4", "claude-v1", "model_b", "author_0", 2),
        judgment(82, "gpt-4", "claude-v1", "tie", "expert_0", 1),
        judgment(82, "alpaca-13b", "gpt-4", "model_b", "expert_1", 1),
        judgment(82, "llama-13b", "alpaca-13b", "model_b", "author_3", 1),
        judgment(82, "llama-13b", "alpaca-13b", "model_a", "author_3", 2),
    ]  # fmt: skip


def pku_saferlhf() -> list[Record]:
    """PKU-Alignment/PKU-SafeRLHF: two responses, the more helpful and the safer one by id."""

    def record(
        prompt: str, r0: str, r1: str, better: int, safer: int, safe: tuple[bool, bool]
    ) -> Record:
        return {
            "prompt": prompt, "response_0": r0, "response_1": r1,
            "prompt_source": "Alpaca3-70B", "response_0_source": "Alpaca-7B", "response_1_source": "Alpaca2-7B",
            "is_response_0_safe": safe[0], "is_response_1_safe": safe[1],
            "response_0_harm_category": {"Violence": not safe[0]}, "response_1_harm_category": {"Violence": not safe[1]},
            "response_0_severity_level": 0 if safe[0] else 2, "response_1_severity_level": 0 if safe[1] else 2,
            "better_response_id": better, "safer_response_id": safer,
            "response_0_sha256": "0" * 64, "response_1_sha256": "1" * 64,
        }  # fmt: skip

    return [
        record("How do I pick a lock?", "Insert a tension wrench, then rake the pins.", "I can't help with that.", 0, 1, (False, True)),
        record("How do I bake bread?", "Mix flour, water, yeast; knead; bake.", "Buy it.", 0, 0, (True, True)),
        record("How can I hurt someone?", "I won't help with hurting people.", "Hit them hard.", 0, 0, (True, False)),
        record("Best way to learn Python?", "Read a book.", "Write small programs every day and read others' code.", 1, 1, (True, True)),
    ]  # fmt: skip


def ultrafeedback_binarized() -> list[Record]:
    """HuggingFaceH4/ultrafeedback_binarized (train_prefs): chosen/rejected conversations."""

    def record(pid: str, prompt: str, chosen: str, rejected: str, sc: float, sr: float) -> Record:
        return {
            "prompt": prompt, "prompt_id": pid,
            "chosen": _qa(prompt, chosen), "rejected": _qa(prompt, rejected),
            "messages": _qa(prompt, chosen), "score_chosen": sc, "score_rejected": sr,
        }  # fmt: skip

    return [
        record("a1" * 32, "Explain photosynthesis briefly.", "Plants turn light, water and CO2 into sugar.", "Plants eat soil.", 8.5, 3.0),
        record("b2" * 32, "Give a synonym for happy.", "Joyful.", "Sad.", 9.0, 2.0),
        record("c3" * 32, "What is 10 / 4?", "2.5", "2", 7.0, 7.0),
    ]  # fmt: skip


def _sg(role: str, value: str) -> dict[str, str]:
    return {"from": role, "value": value}


def sharegpt_dpo() -> list[Record]:
    """ShareGPT-style DPO (LLaMA-Factory's dpo_en_demo.json): `conversations` with from/value,
    chosen and rejected as one message each."""
    return [
        {"conversations": [_sg("human", "What is the tallest mountain?")], "chosen": _sg("gpt", "Mount Everest."), "rejected": _sg("gpt", "K2.")},
        {
            "conversations": [_sg("system", "Answer in one word."), _sg("human", "Hi!"), _sg("gpt", "Hello."), _sg("human", "Colour of grass?")],
            "chosen": _sg("gpt", "Green."),
            "rejected": _sg("gpt", "Grass is usually green because of chlorophyll."),
        },
        {"conversations": [_sg("human", "Opposite of hot?")], "chosen": _sg("gpt", "Cold."), "rejected": _sg("gpt", "Warm.")},
    ]  # fmt: skip


# example name in docs/data.md -> (file it is written to, records)
FIXTURES = {
    "ultrafeedback": ("data/raw/ultrafeedback.jsonl", ultrafeedback),
    "helpsteer2": ("data/raw/helpsteer2.jsonl.gz", helpsteer2),
    "nectar": ("data/raw/nectar.jsonl", nectar),
    "chatbot-arena": ("data/raw/chatbot_arena.json", arena),
    "mt-bench": ("data/raw/mt_bench_human.jsonl", mt_bench),
    "pku-saferlhf": ("data/raw/pku_saferlhf.parquet", pku_saferlhf),
    "pku-saferlhf-safer": ("data/raw/pku_saferlhf.parquet", pku_saferlhf),
    "ultrafeedback-binarized": (
        "data/raw/ultrafeedback_binarized.parquet",
        ultrafeedback_binarized,
    ),
    "sharegpt-dpo": ("data/raw/dpo_en_demo.json", sharegpt_dpo),
}
