"""The pipeline's input format as a Jinja chat template, saved with the model.

A saved reward model's tokenizer carries a chat template that renders a conversation ending
in the scored assistant reply exactly as the tokenize stage formats prompt + completion:

    text = tok.apply_chat_template(messages + [{"role": "assistant", "content": reply}],
                                   tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]

gives the token ids training and evaluation used, special tokens included (the template writes
them as text: CLS/BOS before the prompt, the end token after the reply), as long as the
sequence needs no truncation (see `rmcore.text.tokenize`: truncation is the pipeline's, and a
template cannot count tokens). Given a conversation that does not end in an assistant reply, or
`add_generation_prompt=True`, it renders the prompt alone, as the pipeline does.

- plain template: `[start]User: ...\\n\\nAssistant: ...\\n\\nAssistant: <reply>[end]`;
- chat template: the backbone's own rendering of the whole conversation, trailing whitespace
  removed, then the end token unless it already ends with it.

The backbone's own template (or none) is kept in rmpipe.json and put back when the pipeline
loads the model, so the pipeline itself formats as it did in training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from rmcore.core.config import TokenizeConfig
from rmcore.text.tokenize import PLAIN_ROLES, encode_records, uses_chat_template
from rmcore.text.tokenizer import end_token_id, start_token_ids

log = logging.getLogger(__name__)

META_KEY = "input_format"  # in rmpipe.json

# Short conversations (no truncation at any valid max_length) to check the template on.
PROBES: list[tuple[list[dict[str, str]], str]] = [
    ([{"role": "user", "content": "Hi."}], "Hello."),
    (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi."},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Tea?"},
        ],
        "Yes, green tea.",
    ),
]


def jinja_literal(text: str) -> str:
    """`text` as a Jinja string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _tokens_text(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return "".join(str(t) for t in tokenizer.convert_ids_to_tokens(ids))


def plain_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The plain `User: ... Assistant:` format with the tokenizer's own start and end tokens."""
    start = jinja_literal(_tokens_text(tokenizer, start_token_ids(tokenizer)))
    end = jinja_literal(_tokens_text(tokenizer, [end_token_id(tokenizer)]))
    roles = "{" + ", ".join(f"'{k}': '{v}'" for k, v in PLAIN_ROLES.items()) + "}"
    return (
        f"{{%- set rm_roles = {roles} -%}}"
        "{%- set rm_scored = messages and messages[-1]['role'] == 'assistant' "
        "and not add_generation_prompt -%}"
        "{%- set rm_prompt = messages[:-1] if rm_scored else messages -%}"
        f"{{{{- {start} -}}}}"
        "{%- for m in rm_prompt -%}"
        "{{- rm_roles.get(m['role'], m['role'].title()) ~ ': ' ~ m['content'] ~ '\\n\\n' -}}"
        "{%- endfor -%}"
        "{{- 'Assistant:' -}}"
        "{%- if rm_scored -%}"
        "{%- set rm_reply = (' ' ~ messages[-1]['content']) if messages[-1]['content'] else '' -%}"
        f"{{{{- rm_reply -}}}}{{%- if not rm_reply.endswith({end}) -%}}{{{{- {end} -}}}}"
        "{%- endif -%}{%- endif -%}"
    )


def wrapped_template(tokenizer: PreTrainedTokenizerBase, backbone: str) -> str:
    """The backbone's chat template, ending a scored reply as the pipeline does."""
    end = jinja_literal(_tokens_text(tokenizer, [end_token_id(tokenizer)]))
    # `{{ '' }}` beside the embedded template keeps trim_blocks/lstrip_blocks from touching
    # its first and last characters.
    body = "{{ '' }}" + backbone + "{{ '' }}"
    return (
        "{%- if messages and messages[-1]['role'] == 'assistant' "
        "and not add_generation_prompt -%}"
        "{%- set rm_text %}" + body + "{% endset -%}"
        "{%- set rm_text = rm_text.rstrip() -%}"
        f"{{{{- rm_text -}}}}{{%- if not rm_text.endswith({end}) -%}}{{{{- {end} -}}}}"
        "{%- endif -%}"
        "{%- else %}" + body + "{% endif -%}"
    )


def input_template(tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> str | None:
    """The chat template to save with the model (None: the backbone's template is not a
    single string, and is left as it is)."""
    if not uses_chat_template(tokenizer, cfg):
        return plain_template(tokenizer)
    backbone = tokenizer.chat_template
    return wrapped_template(tokenizer, backbone) if isinstance(backbone, str) else None


def template_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], reply: str
) -> list[int]:
    """Token ids of (messages, reply) through the tokenizer's chat template, the documented
    call sequence."""
    conversation = [*messages, {"role": "assistant", "content": reply}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    return list(tokenizer(str(text), add_special_tokens=False)["input_ids"])


def template_is_exact(
    tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig, template: str
) -> bool | None:
    """Whether `template` reproduces the pipeline's token ids on short probe conversations
    (None: none of them fits untruncated in cfg's lengths)."""
    saved = tokenizer.chat_template
    checked = []
    try:
        for messages, reply in PROBES:
            tokenizer.chat_template = saved
            (enc,) = encode_records(tokenizer, [messages], [[reply]], cfg)
            if enc.trimmed_prompt or enc.cut_completions:
                continue
            tokenizer.chat_template = template
            checked.append(
                template_ids(tokenizer, messages, reply) == enc.prompt_ids + enc.completion_ids[0]
            )
    finally:
        tokenizer.chat_template = saved
    return all(checked) if checked else None


def save_tokenizer(
    tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig, directory: str | Path
) -> dict[str, Any]:
    """Save the tokenizer into `directory` with the input format as its chat template; return
    what rmpipe.json records about it (the live tokenizer keeps its own template)."""
    backbone = tokenizer.chat_template
    template = input_template(tokenizer, cfg)
    exact = template_is_exact(tokenizer, cfg, template) if template is not None else False
    if not exact:
        log.warning(
            "the saved chat template does not reproduce the pipeline's token ids for %s "
            "(checked: %s); score raw text through rmpipe (pyfunc, rmpipe score)",
            tokenizer.name_or_path,
            exact,
        )
    try:
        if template is not None:
            tokenizer.chat_template = template
        tokenizer.save_pretrained(directory)
    finally:
        tokenizer.chat_template = backbone
    return {
        "template": "chat" if uses_chat_template(tokenizer, cfg) else "plain",
        "backbone_chat_template": backbone,
        "chat_template_exact": exact,
    }


def restore_backbone_template(tokenizer: PreTrainedTokenizerBase, meta: dict[str, Any]) -> None:
    """Put the backbone's own chat template (or none) back on a saved model's tokenizer, so
    the pipeline formats as in training (models saved before the template have no entry)."""
    if isinstance(meta.get(META_KEY), dict):
        tokenizer.chat_template = meta[META_KEY].get("backbone_chat_template")
