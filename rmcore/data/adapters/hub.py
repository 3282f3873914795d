"""Datasets in their Hugging Face Hub schemas: WebGPT, summarize-from-feedback, SHP.

- openai/webgpt_comparisons: question{dataset, id, full_text}, quotes_0/1{title[], extract[]},
  answer_0/1, tokens_0/1, score_0/1 (in [-1, 1], summing to 0; equal scores tie).
- openai/summarize_from_feedback, config `comparisons`: info{id, post, title, subreddit, site,
  article}, summaries[{text, policy, note}], choice (index of the preferred summary), worker,
  batch, split, extra{confidence}.
- stanfordnlp/SHP: post_id, domain, upvote_ratio, history, c_root_id_A/B, created_at_utc_A/B,
  score_A/B, human_ref_A/B, labels (1: A preferred, 0: B preferred), seconds_difference,
  score_ratio.
"""

from __future__ import annotations

from collections.abc import Mapping

from rmcore.core.formats import SHPOptions, SummarizeOptions, WebGPTOptions
from rmcore.data.adapters.common import (
    Adapter,
    Record,
    as_list,
    get,
    integer,
    number,
    ranks_from_scores,
    strings,
    text,
    user_prompt,
)
from rmcore.data.records import Candidate, RecordError


def _quotes(record: Record, field: str) -> str:
    quotes = get(record, field)
    if not isinstance(quotes, Mapping):
        raise RecordError("wrong_type", field, "expected {title: [...], extract: [...]}")
    titles = strings(quotes.get("title", []), f"{field}.title")
    extracts = strings(quotes.get("extract", []), f"{field}.extract")
    return "\n\n".join(
        f"[{i + 1}] {t}\n{e}" for i, (t, e) in enumerate(zip(titles, extracts, strict=False))
    )


def convert_webgpt(record: Record, options: WebGPTOptions) -> list[Candidate]:
    question = text(record, "question.full_text")
    answers = [text(record, "answer_0"), text(record, "answer_1")]
    scores = [number(get(record, "score_0"), "score_0"), number(get(record, "score_1"), "score_1")]
    if options.include_quotes:
        # each answer was written from its own quotes; the shared prompt holds both sets
        quotes = "\n\n".join(
            q for q in (_quotes(record, "quotes_0"), _quotes(record, "quotes_1")) if q
        )
        question = f"{question}\n\nQuotes:\n{quotes}" if quotes else question
    return [Candidate(user_prompt(question), answers, ranks_from_scores(scores), scores)]


def _post(record: Record) -> str:
    """The text that was summarised: a Reddit post with its title, or a news article."""
    post = text(record, "info.post", optional=True)
    if post.strip():
        subreddit = text(record, "info.subreddit", optional=True)
        title = text(record, "info.title", optional=True)
        head = [
            f"SUBREDDIT: r/{subreddit}" if subreddit else "",
            f"TITLE: {title}" if title else "",
        ]
        return "\n".join([*(h for h in head if h), f"POST: {post}"])
    article = text(record, "info.article", optional=True)
    if not article.strip():
        raise RecordError("missing_field", "info.post", "neither info.post nor info.article")
    return article


def convert_summarize(record: Record, options: SummarizeOptions) -> list[Candidate]:
    summaries = as_list(get(record, "summaries"), "summaries")
    texts = []
    for i, summary in enumerate(summaries):
        if not isinstance(summary, Mapping):
            raise RecordError("wrong_type", f"summaries[{i}]", "expected {text, policy, note}")
        texts.append(text(summary, "text"))
    choice = integer(get(record, "choice"), "choice")
    if not 0 <= choice < len(texts):
        raise RecordError("invalid_value", "choice", f"{choice} is not an index of summaries")
    ranks = [0 if i == choice else 1 for i in range(len(texts))]
    prompt = f"Summarize the following text.\n\n{_post(record)}"
    return [Candidate(user_prompt(prompt), texts, ranks)]


def convert_shp(record: Record, options: SHPOptions) -> list[Candidate]:
    history = text(record, "history")
    answers = [text(record, "human_ref_A"), text(record, "human_ref_B")]
    label = integer(get(record, "labels"), "labels")
    if label not in (0, 1):
        raise RecordError("invalid_value", "labels", f"{label} (1: A preferred, 0: B preferred)")
    scores = [number(get(record, "score_A"), "score_A"), number(get(record, "score_B"), "score_B")]
    candidate = Candidate(user_prompt(history), answers, [0, 1] if label == 1 else [1, 0], scores)
    if options.min_score_ratio > 0:
        ratio = number(get(record, "score_ratio"), "score_ratio")
        if ratio < options.min_score_ratio:
            raise RecordError(
                "below_min_score_ratio", "score_ratio", f"{ratio:g} < {options.min_score_ratio:g}"
            )
    return [candidate]


WEBGPT = Adapter(
    convert=convert_webgpt,
    columns=lambda o: (
        ["question", "answer_0", "answer_1", "score_0", "score_1"]
        + (["quotes_0", "quotes_1"] if o.include_quotes else [])
    ),
)
SUMMARIZE = Adapter(convert=convert_summarize, columns=lambda o: ["info", "summaries", "choice"])
SHP = Adapter(
    convert=convert_shp,
    columns=lambda o: (
        ["history", "human_ref_A", "human_ref_B", "labels", "score_A", "score_B"]
        + (["score_ratio"] if o.min_score_ratio > 0 else [])
    ),
)
