"""The model card: what a registered reward model is, what it was trained and evaluated on,
what input it expects and how to score with it.

The register stage sets it as the description of the registered model and of its version and
logs it as the run artifact `README.md`; it reads only files the earlier stages wrote (the
model directory, the ingest, tokenize and evaluate reports) and writes none of them, so the
DVC outputs stay as their stages left them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rmcore.core.config import Params
from rmcore.core.paths import Layout

HEADLINE = [
    ("pairwise accuracy", "pairwise_accuracy"),
    ("best vs worst accuracy", "best_vs_worst_accuracy"),
    ("Kendall tau", "kendall_tau"),
]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _model_section(params: Params, meta: dict[str, Any]) -> list[str]:
    tokenize = meta.get("tokenize") or {}
    kind = "decoder" if meta.get("decoder") else "encoder"
    lora = "LoRA adapters merged into the weights" if params.model.lora.enabled else "full"
    return [
        "## Model",
        "",
        f"- base model: `{params.model.name}` ({kind}), fine-tuning: {lora}",
        f"- pooling: `{meta.get('pooling', 'n/a')}`; one scalar reward per (prompt, response)",
        f"- max_length: {tokenize.get('max_length', 'n/a')} tokens, prompts keep at most "
        f"{tokenize.get('max_prompt_length') or 'max_length // 2'}",
        f"- train: {params.train.epochs:g} epochs, lr {params.train.lr:g}, "
        f"{params.train.batch_size} groups per batch",
        "",
    ]


def _data_section(layout: Layout) -> list[str]:
    ingest = _read(layout.ingest_report)
    tokenize = _read(layout.tokenize_report)
    totals = ingest.get("totals") or {}
    lines = ["## Data", ""]
    if totals:
        lines.append(
            f"Records read {_num(totals.get('records_read'))}, kept "
            f"{_num(totals.get('records_kept'))}, quarantined "
            f"{_num(totals.get('records_quarantined'))} (`data/normalized/report.json`)."
        )
        lines.append("")
    splits_in = ingest.get("splits") or {}
    splits_tok = tokenize.get("splits") or {}
    lines += [
        "| split | groups | pairs | completions | trimmed prompts | cut completions |",
        "|---|---|---|---|---|---|",
    ]
    for split in ("train", "validation", "test"):
        a, b = splits_in.get(split) or {}, splits_tok.get(split) or {}
        cells = [
            a.get("groups", b.get("groups")),
            a.get("pairs_kept"),
            b.get("completions"),
            b.get("trimmed_prompts"),
            b.get("cut_completions"),
        ]
        lines.append(f"| {split} | " + " | ".join(_num(c) for c in cells) + " |")
    sources = ", ".join(f"`{name}`" for name in (ingest.get("sources") or {}))
    return [*lines, "", f"Sources: {sources or 'n/a'}.", ""]


def _eval_section(layout: Layout) -> list[str]:
    metrics = _read(layout.eval_metrics)
    baselines = metrics.get("baselines") or {}
    longer, chance = baselines.get("longer_wins") or {}, baselines.get("chance") or {}
    lines = [
        "## Evaluation (held-out test split)",
        "",
        "| metric | this model | longer response wins | chance |",
        "|---|---|---|---|",
    ]
    for label, key in HEADLINE:
        row = [metrics.get(key), longer.get(key), chance.get(key)]
        lines.append(f"| {label} | " + " | ".join(_num(v) for v in row) + " |")
    return [
        *lines,
        "",
        f"{_num(metrics.get('n_pairs'))} pairs; ties count as wrong; expected calibration "
        f"error {_num(metrics.get('ece'))}. Details: `metrics/eval_details.json`.",
        "",
    ]


def _format_section(meta: dict[str, Any]) -> list[str]:
    fmt = meta.get("input_format") or {}
    template = fmt.get("template", "plain")
    rule = (
        "the backbone's chat template (prompt with the generation prompt, then the reply)"
        if template == "chat"
        else "`User: <turn>\\n\\nAssistant: <turn>\\n\\n...Assistant: <reply>`"
    )
    exact = fmt.get("chat_template_exact")
    check = (
        "renders exactly the training token ids (checked when the model was saved)"
        if exact
        else "could not be checked to render the training token ids; score through rmpipe"
    )
    return [
        "## Input format",
        "",
        f"A (prompt, response) row is formatted as {rule}, with the tokenizer's start tokens "
        "before and its end token after. A string prompt is one user turn. The tokenizer in "
        f"the model directory carries this as its chat template, which {check}: "
        "`tok.apply_chat_template(messages + [{'role': 'assistant', 'content': response}], "
        "tokenize=False)`, then `tok(text, add_special_tokens=False)`.",
        "",
        "Truncation is the pipeline's: a prompt past its limit loses its oldest turns, then "
        "tokens from the left, and a response is cut to what the prompt leaves. The template "
        "cannot count tokens, so inputs longer than max_length must go through the pyfunc "
        "model, `rmpipe score` or `PipelineReward`.",
        "",
    ]


def _usage_section(name: str, alias: str, tracking_uri: str) -> list[str]:
    uri = f"models:/{name}@{alias}"
    return [
        "## Scoring",
        "",
        "```python",
        "import mlflow, pandas as pd",
        f'mlflow.set_tracking_uri("{tracking_uri}")',
        f'model = mlflow.pyfunc.load_model("{uri}")',
        'rows = pd.DataFrame({"prompt": ["How do I boil an egg?"], "response": ["Simmer 8 min."]})',
        'model.predict(rows)  # raw; params={"normalize": True} for normalised rewards',
        "```",
        "",
        "```bash",
        f"export MLFLOW_TRACKING_URI={tracking_uri}",
        f"mlflow models serve -m {uri} --env-manager local --port 5001",
        "curl -s localhost:5001/invocations -H 'Content-Type: text/csv' \\",
        "  --data-binary $'prompt,response\\nHi,Hello!\\n'",
        f"rmpipe score --input rows.jsonl --model-uri {uri}",
        "```",
        "",
        "Plain transformers (inputs within max_length):",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        f'path = mlflow.artifacts.download_artifacts("{uri}") + "/artifacts/reward_model"',
        "tok = AutoTokenizer.from_pretrained(path)",
        "rm = AutoModelForSequenceClassification.from_pretrained(path)",
        "text = tok.apply_chat_template(messages + [{'role': 'assistant', 'content': reply}],",
        "                               tokenize=False)",
        "reward = rm(**tok(text, add_special_tokens=False, return_tensors='pt')).logits[0, 0]",
        "```",
        "",
        "TRL: `GRPOTrainer(reward_funcs=path)` with conversational prompts, or "
        "`reward_funcs=rmcore.register.reward_function.PipelineReward(path)` for any prompts "
        "(string prompts, inputs past max_length).",
        "",
    ]


def model_card(
    params: Params,
    layout: Layout,
    tracking_uri: str = "<tracking URI>",
    model_meta: dict[str, Any] | None = None,
) -> str:
    """The card of the model in `layout` (Markdown); `tracking_uri` (passwords hidden) is
    where consumers find it."""
    from rmcore.model.reward_model import META_FILE

    meta = model_meta if model_meta is not None else _read(layout.model_dir / META_FILE)
    cfg = params.registry
    lines = [
        f"# {cfg.model_name}",
        "",
        "A reward model trained by rmpipe on ranked completions: a higher reward means a "
        "better response to the prompt.",
        "",
        *_model_section(params, meta),
        *_data_section(layout),
        *_eval_section(layout),
        *_format_section(meta),
        *_usage_section(cfg.model_name, cfg.champion_alias, tracking_uri),
    ]
    return "\n".join(lines)
