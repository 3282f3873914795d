"""The embedded synthetic dataset: ranked completions whose order follows learnable signals.

`python -m rmcore sample` writes data/sample/preferences.jsonl and its README. Each group is a
prompt (one user message, or a short conversation ending in a user message) with k = 2..4
completions. A completion is a content choice plus a tone, and its penalty is the sum of its
defects; ranks follow penalties (equal penalties tie):

    content  helpful 0 | wrong fact or sum 2 | refusing a harmless request 2.5 | off-topic 3
             for harmful requests: refusing 0 | complying 4
    tone     polite or plain 0 | rude 1

Then a share of groups (LABEL_NOISE) has two completions of different rank swapped, as human
labels would. Everything comes from one seeded random generator: the same seed gives
byte-identical files.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmcore.data import sample_text as T

GROUPS = 1100
LABEL_NOISE = 0.07
TIE_KEEP = 0.3  # share of tied draws kept
K_WEIGHTS = {2: 40, 3: 35, 4: 25}
CATEGORY_WEIGHTS = {"arithmetic": 18, "trivia": 14, "capital": 14, "howto": 36, "harmful": 18}
PENALTY = {"good": 0, "wrong": 2, "refuse": 2.5, "off_topic": 3, "comply": 4, "rude": 1}
QUESTION_PREFIXES = [
    "", "", "", "My friend asked me this and I wasn't sure. ", "Settle a debate for us: ",
    "For a quiz tonight: ", "I'm helping my kid with homework. ",
    "This came up at dinner yesterday. ", "Random question while I think of it. ",
]  # fmt: skip
HOWTO_PREFIXES = [
    "", "", "I'm a total beginner. ", "I have some free time this weekend. ",
    "I've been meaning to figure this out for a while. ", "My last attempt didn't go well. ",
]  # fmt: skip

Messages = list[dict[str, str]]


def _pick(rng: random.Random, items: list[str], n: int) -> list[str]:
    return rng.sample(items, n)


def _with_tone(rng: random.Random, body: str, tone: str, opener: bool = True) -> str:
    """Wrap a body in a rude or polite frame (`opener`: the body may start with "Sure!")."""
    if tone == "rude":
        return f"{rng.choice(T.RUDE_OPENERS)} {body} {rng.choice(T.RUDE_CLOSERS)}"
    if tone == "polite":
        if not opener:
            return f"{body} {rng.choice(T.POLITE_CLOSERS)}"
        closer = f" {rng.choice(T.POLITE_CLOSERS)}" if rng.random() < 0.7 else ""
        return f"{rng.choice(T.POLITE_OPENERS)} {body}{closer}"
    return body


def _off_topic(rng: random.Random, topic: str | None) -> str:
    other = rng.choice([t for t in T.HOWTO if t != topic])
    lead = f"{rng.choice(T.HOWTO_LEADS)} " if rng.random() < 0.5 else ""
    return lead + " ".join(_pick(rng, T.HOWTO[other][1], 2))


def _over_refusal(rng: random.Random) -> str:
    tail = " Maybe ask someone else." if rng.random() < 0.4 else ""
    return rng.choice(T.OVER_REFUSALS) + tail


# A task: (question, {content: body-maker}); body makers take the rng.
Bodies = dict[str, Callable[[random.Random], str]]


def _arithmetic(rng: random.Random) -> tuple[str, Bodies]:
    op = rng.choice(list(T.ARITH_OPS))
    if op == "+":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
    elif op == "-":
        a = rng.randint(10, 99)
        b = rng.randint(1, a)
    else:
        a, b = rng.randint(2, 19), rng.randint(2, 12)
    c = a + b if op == "+" else a - b if op == "-" else a * b
    wrong = max(0, c + rng.choice([-10, -2, -1, 1, 2, 10]))
    wrong = wrong if wrong != c else c + 1
    word = rng.choice(T.ARITH_OPS[op])
    question = rng.choice(QUESTION_PREFIXES) + rng.choice(T.ARITH_QUESTIONS).format(
        a=a, w=word, b=b
    )

    def answer(value: int) -> Callable[[random.Random], str]:
        def make(r: random.Random) -> str:
            text = r.choice(T.ARITH_ANSWERS).format(a=a, w=word, b=b, c=value)
            if r.random() < 0.5:
                text += f" So the answer to {a} {word} {b} is {value}."
            return text + (f" {r.choice(T.ARITH_EXTRAS)}" if r.random() < 0.8 else "")

        return make

    return question, {"good": answer(c), "wrong": answer(wrong)}


def _fact(
    question: str, right: str, wrongs: list[str], templates: list[str], extras: list[str]
) -> Bodies:
    def answer(value: str) -> Callable[[random.Random], str]:
        def make(r: random.Random) -> str:
            text = r.choice(templates).format(y=value)
            return text + (f" {r.choice(extras)}" if r.random() < 0.85 else "")

        return make

    return {"good": answer(right), "wrong": lambda r: answer(r.choice(wrongs))(r)}


def _trivia(rng: random.Random) -> tuple[str, Bodies]:
    question, right, wrongs, note = rng.choice(T.TRIVIA)
    bodies = _fact(question, right, wrongs, T.TRIVIA_ANSWERS, [note])
    return rng.choice(QUESTION_PREFIXES) + question, bodies


def _capital(rng: random.Random) -> tuple[str, Bodies]:
    country = rng.choice(sorted(T.CAPITALS))
    wrongs = [c for k, c in sorted(T.CAPITALS.items()) if k != country]
    templates = [t.replace("{x}", country) for t in T.CAPITAL_ANSWERS]
    question = rng.choice(T.CAPITAL_QUESTIONS).format(x=country)
    return rng.choice(QUESTION_PREFIXES) + question, _fact(
        question, T.CAPITALS[country], wrongs, templates, T.CAPITAL_EXTRAS
    )


def _howto(rng: random.Random) -> tuple[str, Bodies, str]:
    topic = rng.choice(sorted(T.HOWTO))
    questions, tips = T.HOWTO[topic]
    question = rng.choice(HOWTO_PREFIXES) + rng.choice(questions)

    def good(r: random.Random) -> str:
        lead = f"{r.choice(T.HOWTO_LEADS)} " if r.random() < 0.5 else ""
        return lead + " ".join(_pick(r, tips, r.choice([2, 3])))

    return question, {"good": good}, topic


def _harmful(rng: random.Random) -> tuple[str, Bodies]:
    request, reason, alternative = rng.choice(T.HARMFUL)

    def refuse(r: random.Random) -> str:
        return f"{r.choice(T.REFUSAL_OPENERS)} {reason} {alternative}"

    def comply(r: random.Random) -> str:
        return f"{r.choice(T.COMPLIANCE_OPENERS)} " + " ".join(_pick(r, T.COMPLIANCE_STEPS, 3))

    return request, {"good": refuse, "comply": comply}


def _task(rng: random.Random, category: str) -> tuple[str, Bodies]:
    """The question of a category and the ways to answer it (content -> body maker)."""
    if category == "harmful":
        return _harmful(rng)
    topic = None
    if category == "arithmetic":
        question, bodies = _arithmetic(rng)
    elif category == "trivia":
        question, bodies = _trivia(rng)
    elif category == "capital":
        question, bodies = _capital(rng)
    else:
        question, bodies, topic = _howto(rng)
    bodies["off_topic"] = lambda r: _off_topic(r, topic)
    bodies["refuse"] = lambda r: _over_refusal(r)
    return question, bodies


def _conversation(rng: random.Random, question: str) -> Messages:
    """The question alone, or after a greeting and/or a small-talk exchange."""
    turns: Messages = []
    roll = rng.random()
    if roll < 0.30:
        user, reply = rng.choice(T.GREETINGS)
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    if 0.20 <= roll < 0.45:
        user, reply = rng.choice(T.SMALL_TALK)
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return [*turns, {"role": "user", "content": question}]


def _completions(
    rng: random.Random, bodies: Bodies, k: int, harmful: bool
) -> list[tuple[str, float]]:
    """k distinct (text, penalty) with at least two different penalties, few ties."""
    options = [(content, tone) for content in bodies for tone in ("polite", "plain", "rude")]
    while True:
        chosen = rng.sample(options, k)
        penalties = [PENALTY[c] + (PENALTY["rude"] if t == "rude" else 0) for c, t in chosen]
        if len(set(penalties)) < 2:
            continue
        if len(set(penalties)) < k and rng.random() > TIE_KEEP:
            continue  # most draws with a tie are redrawn, so that ties stay a minority
        texts = [
            _with_tone(rng, bodies[c](rng), t, opener=not harmful and c != "refuse")
            for c, t in chosen
        ]
        if len(set(texts)) == k:
            return list(zip(texts, penalties, strict=True))


def make_group(rng: random.Random, index: int) -> dict[str, Any]:
    """One ranked group as a JSON-able row of preferences.jsonl."""
    category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
    k = rng.choices(list(K_WEIGHTS), weights=list(K_WEIGHTS.values()))[0]
    question, bodies = _task(rng, category)
    prompt = _conversation(rng, question)
    scored = _completions(rng, bodies, k, harmful=category == "harmful")
    order = sorted(set(p for _, p in scored))
    ranks = [order.index(p) for _, p in scored]
    noisy = rng.random() < LABEL_NOISE
    if noisy:
        i, j = rng.choice(
            [(i, j) for i in range(k) for j in range(i + 1, k) if ranks[i] != ranks[j]]
        )
        ranks[i], ranks[j] = ranks[j], ranks[i]
    return {
        "id": f"sample-{index:05d}",
        "prompt": prompt,
        "completions": [text for text, _ in scored],
        "ranks": ranks,
        "meta": {"category": category, "label_noise": noisy},
    }


README = """# Embedded sample data (synthetic)

`preferences.jsonl` is **synthetic**: generated by `python -m rmcore sample` (seed {seed}, see
`rmcore/data/sample.py`), not collected from people and not copied from any dataset. It exists
so that the pipeline runs end to end offline in minutes; train on real preference data for
anything else.

- {groups} groups, {turns_multi} with multi-turn prompts; k per group: {by_k}
- categories: {by_category}
- ranks follow the text: helpful beats off-topic, a right fact or sum beats a wrong one,
  polite beats rude, refusing a harmful request beats complying, and answering a harmless
  request beats refusing it; equal defects tie ({ties} groups have a tie)
- label noise: {noisy} groups ({noise_pct:.1f}%) have two completions of different rank
  swapped (`meta.label_noise`)

Each line: `{{"id", "prompt": [{{"role", "content"}}], "completions": [...], "ranks": [...],
"meta": {{"category", "label_noise"}}}}`, rank 0 = best. params.yaml reads it with
`format: mapping` (`messages: prompt`, `responses: completions`, `ranks: ranks`).
"""


def write_sample(out: Path, seed: int = 0, groups: int = GROUPS) -> dict[str, Any]:
    """Generate the sample into `out` (preferences.jsonl + README.md); return its statistics."""
    rng = random.Random(seed)
    rows = [make_group(rng, i) for i in range(groups)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "preferences.jsonl"
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats = {
        "path": str(path),
        "groups": len(rows),
        "bytes": path.stat().st_size,
        "by_k": dict(sorted(Counter(len(r["ranks"]) for r in rows).items())),
        "by_category": dict(sorted(Counter(r["meta"]["category"] for r in rows).items())),
        "ties": sum(len(set(r["ranks"])) < len(r["ranks"]) for r in rows),
        "noisy": sum(r["meta"]["label_noise"] for r in rows),
        "turns_multi": sum(len(r["prompt"]) > 1 for r in rows),
    }
    text = README.format(seed=seed, noise_pct=100 * stats["noisy"] / len(rows), **stats)
    (out / "README.md").write_text(text, encoding="utf-8", newline="\n")
    return stats
