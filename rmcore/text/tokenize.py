"""Ranked groups -> token ids: chat formatting, truncation, the tokenised Arrow datasets.

Sequence i of a group is `prompt_ids + completion_ids[i]`. The prompt is formatted with the
tokenizer's chat template when it has one (template `auto`), else with the plain template:

    User: <content>\\n\\nAssistant: <content>\\n\\n ... User: <content>\\n\\nAssistant:

(roles `system`, `user`, `assistant` print as System, User, Assistant), after the tokens the
tokenizer itself puts first (CLS, BOS). Each completion (` <text>` in the plain template) ends
with the end token: what the tokenizer appends itself (SEP for BERT), else EOS.

Truncation to `max_length` never drops a group:

1. the prompt is trimmed only when it is longer than `max_prompt_length` (null: max_length // 2):
   older turns are dropped first (whole user turns, a leading system message stays) down to the
   last user turn; if that is still too long, its tokens are cut from the left (leading special
   tokens stay);
2. each completion gets what its kept prompt leaves, `max_length - len(prompt)`, and is cut (its
   end token kept) only when it does not fit in that.

Why this rule: the prompt's truncation depends on the prompt alone and a completion's cut on the
kept prompt and itself, never on the other completions of the group. So the group shares one
prompt (prefix sharing stays exact), and a (prompt, response) scored alone, as the registered
model does (`rmcore.model.score_texts`), gets the very tokens, hence the very reward, that
evaluation gave it inside its group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from datasets.utils.py_utils import asdict
from transformers import PreTrainedTokenizerBase

from rmcore.core.atomic import atomic_path, write_text
from rmcore.core.config import ConfigError, TokenizeConfig
from rmcore.core.integrity import FILESYSTEM_ERRNOS, damaged, restore_hint
from rmcore.core.paths import Layout
from rmcore.text.tokenizer import end_token_id, start_token_ids

log = logging.getLogger(__name__)

Message = dict[str, str]
PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
META_FILE = "meta.json"
META_KEYS = ("model_name", "max_length")  # what the later stages read from it
FEATURES = datasets.Features(
    {
        "group_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "ranks": datasets.List(datasets.Value("int32")),
        # how strongly completions[better] was preferred, where the source says; null if not
        "margins": datasets.List(
            {
                "better": datasets.Value("int32"),
                "worse": datasets.Value("int32"),
                "margin": datasets.Value("float64"),
            }
        ),
        "prompt_ids": datasets.List(datasets.Value("int32")),
        "completion_ids": datasets.List(datasets.List(datasets.Value("int32"))),
        "trimmed_prompt": datasets.Value("bool"),
        "cut_completions": datasets.Value("int32"),
    }
)


@dataclass
class Encoded:
    """One group's token ids and what truncation did to it."""

    prompt_ids: list[int]
    completion_ids: list[list[int]]
    trimmed_prompt: bool
    cut_completions: int


def uses_chat_template(tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> bool:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if cfg.template == "chat" and not has_template:
        raise ValueError(
            f"tokenize.template is chat but tokenizer {tokenizer.name_or_path!r} has no chat "
            "template; use template auto or plain"
        )
    return has_template and cfg.template != "plain"


def plain_prompt(messages: list[Message]) -> str:
    turns = [f"{PLAIN_ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n\n".join([*turns, "Assistant:"])


class _Formatter:
    """Renders and encodes prompts and completions for one tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> None:
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.chat = uses_chat_template(tokenizer, cfg)
        self.start = [] if self.chat else start_token_ids(tokenizer)
        self.end = end_token_id(tokenizer)
        self.special = set(tokenizer.all_special_ids)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        # verbose=False: texts longer than the model's limit are expected here, and trimmed
        # to max_length after encoding; transformers would warn of indexing errors otherwise.
        encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)
        return list(encoded["input_ids"])

    def prompt_texts(self, prompts: list[list[Message]]) -> list[str]:
        if not self.chat:
            return [plain_prompt(p) for p in prompts]
        return list(
            self.tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        )

    def completion_texts(
        self, prompts: list[list[Message]], prompt_texts: list[str], completions: list[list[str]]
    ) -> list[str]:
        if not self.chat:
            return [f" {c}" if c else "" for cs in completions for c in cs]
        convs = [
            [*p, {"role": "assistant", "content": c}]
            for p, cs in zip(prompts, completions, strict=True)
            for c in cs
        ]
        fulls = self.tokenizer.apply_chat_template(convs, tokenize=False)
        heads = [t for t, cs in zip(prompt_texts, completions, strict=True) for _ in cs]
        out = []
        for full, head, conv in zip(fulls, heads, convs, strict=True):
            # The template's text after the generation prompt; templates that rewrite earlier
            # turns (rare) fall back to the bare completion.
            out.append(full[len(head) :].rstrip() if full.startswith(head) else conv[-1]["content"])
        return out

    def prompt_ids(self, texts: list[str]) -> list[list[int]]:
        return [self.start + ids for ids in self.encode(texts)]

    def kept_prefix(self, ids: list[int]) -> int:
        """Leading special tokens (CLS, BOS) that prompt trimming never removes."""
        n = 0
        while n < len(ids) and ids[n] in self.special:
            n += 1
        return n

    def fit(self, messages: list[Message], prompt: list[int], comps: list[list[int]]) -> Encoded:
        """Apply the truncation rules (module docstring) to one group."""
        limit = self.cfg.prompt_limit
        trimmed = len(prompt) > limit
        if trimmed:
            prompt = self._trim(messages, limit)
        room = max(self.cfg.max_length - len(prompt), 1)  # for one completion, end token included
        completions, cut = [], 0
        for ids in comps:
            ids = ids if ids and ids[-1] == self.end else [*ids, self.end]
            if len(ids) > room:
                ids, cut = [*ids[: room - 1], self.end], cut + 1
            completions.append(ids)
        return Encoded(prompt, completions, trimmed, cut)

    def _trim(self, messages: list[Message], budget: int) -> list[int]:
        """The prompt within `budget` tokens: oldest turns first, then tokens from the left."""
        head = 1 if messages and messages[0]["role"] == "system" else 0
        starts = [j for j in range(head + 1, len(messages)) if messages[j]["role"] == "user"]
        ids: list[int] = []
        for j in starts:
            kept = messages[:head] + messages[j:]
            ids = self.prompt_ids(self.prompt_texts([kept]))[0]
            if len(ids) <= budget:
                return ids
        if not starts:
            ids = self.prompt_ids(self.prompt_texts([messages]))[0]
        keep = self.kept_prefix(ids)
        return ids[:keep] + ids[len(ids) - (budget - keep) :] if budget > keep else ids[:keep]


def encode_records(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[Message]],
    completions: list[list[str]],
    cfg: TokenizeConfig,
) -> list[Encoded]:
    """Format and tokenise many groups with batched tokenizer calls."""
    fmt = _Formatter(tokenizer, cfg)
    prompt_texts = fmt.prompt_texts(prompts)
    prompt_ids = fmt.prompt_ids(prompt_texts)
    comp_ids = fmt.encode(fmt.completion_texts(prompts, prompt_texts, completions))
    out, pos = [], 0
    for messages, ids, comps in zip(prompts, prompt_ids, completions, strict=True):
        if not comps:
            raise ValueError("a group needs at least one completion")
        out.append(fmt.fit(messages, ids, comp_ids[pos : pos + len(comps)]))
        pos += len(comps)
    return out


def format_and_encode(
    tokenizer: PreTrainedTokenizerBase,
    prompt_messages: list[Message],
    completions: list[str],
    cfg: TokenizeConfig,
) -> tuple[list[int], list[list[int]], bool, int]:
    """(prompt_ids, completion_ids, trimmed_prompt, cut_completions) for one group."""
    enc = encode_records(tokenizer, [prompt_messages], [completions], cfg)[0]
    return enc.prompt_ids, enc.completion_ids, enc.trimmed_prompt, enc.cut_completions


def encode_table(
    batch: pa.RecordBatch | pa.Table, tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig
) -> pa.Table:
    """Canonical groups (at least group_id, source, prompt, completions, ranks; margins if
    any) -> one tokenised row per group, with the columns of `FEATURES`."""
    if batch.num_rows == 0:  # an empty split; a chat template would take [] for one chat
        return FEATURES.arrow_schema.empty_table()
    rows = batch.select([c for c in INPUT_COLUMNS if c in batch.column_names]).to_pydict()
    encoded = encode_records(tokenizer, rows["prompt"], rows["completions"], cfg)
    columns = {
        "group_id": rows["group_id"],
        "source": rows["source"],
        "ranks": rows["ranks"],
        "margins": rows.get("margins", [None] * batch.num_rows),
        "prompt_ids": [e.prompt_ids for e in encoded],
        "completion_ids": [e.completion_ids for e in encoded],
        "trimmed_prompt": [e.trimmed_prompt for e in encoded],
        "cut_completions": [e.cut_completions for e in encoded],
    }
    return pa.Table.from_pydict(columns, schema=FEATURES.arrow_schema)


def tokenize_table(
    table: pa.Table, tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """Canonical groups (GROUP_SCHEMA) -> tokenised dataset (one row per group) + counts,
    in memory (the tokenize stage streams instead: `tokenize_split`)."""
    start = time.perf_counter()
    parts = [
        encode_table(table.slice(at, cfg.batch_size), tokenizer, cfg)
        for at in range(0, len(table), cfg.batch_size)
    ]
    out = pa.concat_tables(parts) if parts else FEATURES.arrow_schema.empty_table()
    if len(out) != len(table):
        raise RuntimeError(f"tokenised {len(out)} groups from {len(table)} records")
    counts = _Counts()
    counts.add(out)
    result = {**counts.result(), "seconds": round(time.perf_counter() - start, 3)}
    saved = out.drop_columns(_REPORTED).cast(SAVED_FEATURES.arrow_schema)
    dataset = datasets.Dataset(datasets.table.InMemoryTable(saved))
    return dataset, result


_REPORTED = ["trimmed_prompt", "cut_completions"]  # counted in the report, not saved
SAVED_FEATURES = datasets.Features({k: v for k, v in FEATURES.items() if k not in _REPORTED})
MAX_SHARD_BYTES = 500 * 2**20  # as `datasets.Dataset.save_to_disk` shards


def num_processes(cfg: TokenizeConfig, groups: int) -> int:
    """Processes for `groups` groups: `tokenize.num_proc`, or (null) one per CPU core this
    process may run on; never more than there are batches."""
    wanted = cfg.num_proc if cfg.num_proc is not None else len(os.sched_getaffinity(0))
    return max(1, min(wanted, -(-groups // cfg.batch_size)))


def tokenize_split(
    batches: Iterable[pa.RecordBatch],
    groups: int,
    path: Path,
    tokenizer: PreTrainedTokenizerBase,
    cfg: TokenizeConfig,
) -> dict[str, Any]:
    """Tokenise one split, given as batches of its `groups` canonical groups (at least the
    `INPUT_COLUMNS`), on `num_processes` processes into `path` (the layout of
    `datasets.Dataset.save_to_disk`); its counts.

    Batches are encoded and written in input order with a few in flight, so memory stays
    bounded whatever the split's size, and the output is the same for any number of processes.
    """
    start = time.perf_counter()
    procs = num_processes(cfg, groups)
    counts = _Counts()
    with atomic_path(path) as tmp:
        shards = _ShardWriter(tmp)
        for table in _encoded(iter(batches), tokenizer, cfg, procs):
            counts.add(table)
            shards.write(table.drop_columns(_REPORTED).cast(SAVED_FEATURES.arrow_schema))
        shards.finish()
        if counts.groups != groups:
            raise RuntimeError(f"tokenised {counts.groups} groups from {groups} records")
    elapsed = round(time.perf_counter() - start, 3)
    return {**counts.result(), "seconds": elapsed, "processes": procs}


INPUT_COLUMNS = ("group_id", "source", "prompt", "completions", "ranks", "margins")
_WORKER: tuple[PreTrainedTokenizerBase, TokenizeConfig] | None = None


def _start_worker(tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> None:
    global _WORKER
    _WORKER = (tokenizer, cfg)


def _encode_in_worker(batch: pa.RecordBatch) -> pa.Table:
    assert _WORKER is not None, "the worker was started without a tokenizer"
    return encode_table(batch, *_WORKER)


def _encoded(
    batches: Iterator[pa.RecordBatch],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TokenizeConfig,
    procs: int,
) -> Iterator[pa.Table]:
    """Each batch encoded, in order; with `procs` > 1 on a pool of forked processes, at most
    two batches per process in flight (so a fast reader cannot fill memory)."""
    if procs == 1:
        for batch in batches:
            yield encode_table(batch, tokenizer, cfg)
        return
    # The tokenizer's own threads stay off in the workers (they are the parallelism), which
    # also keeps `tokenizers` from warning about the fork.
    with _environ("TOKENIZERS_PARALLELISM", "false"):
        pool = multiprocessing.get_context("fork").Pool(
            procs, initializer=_start_worker, initargs=(tokenizer, cfg)
        )
    with pool:
        pending: deque[AsyncResult[pa.Table]] = deque()
        for batch in batches:
            pending.append(pool.apply_async(_encode_in_worker, (batch,)))
            if len(pending) >= 2 * procs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` unless the user set it, for the block only."""
    before = os.environ.get(name)
    if before is None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)


class _ShardWriter:
    """Tables written into Arrow shards of at most ~`MAX_SHARD_BYTES`, named and described
    (state.json, dataset_info.json) as `datasets.Dataset.save_to_disk` does, so that
    `load_from_disk` reads them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.paths: list[Path] = []
        self._writer: ArrowWriter | None = None
        self._bytes = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write_table(table)
        self._bytes += table.nbytes
        if self._bytes >= MAX_SHARD_BYTES:
            self._close()

    def _open(self) -> None:
        path = self.folder / f".shard-{len(self.paths)}.arrow"
        self.paths.append(path)
        self._writer = ArrowWriter(features=SAVED_FEATURES, path=str(path), embed_local_files=True)
        self._bytes = 0

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None

    def finish(self) -> None:
        if not self.paths:  # an empty split: one shard with the schema only
            self._open()
        self._close()
        n = len(self.paths)
        names = [f"data-{i:05d}-of-{n:05d}.arrow" for i in range(n)]
        digest = hashlib.blake2b(digest_size=8)
        for path, name in zip(self.paths, names, strict=True):
            _hash_file(path, digest)
            path.rename(self.folder / name)
        state: dict[str, Any] = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": digest.hexdigest(),  # of the contents: the same data, the same
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        write_text(self.folder / "state.json", json.dumps(state, indent=2, sort_keys=True))
        info = asdict(datasets.DatasetInfo(features=SAVED_FEATURES))
        info = {key: info[key] for key in sorted(info)}
        write_text(self.folder / "dataset_info.json", json.dumps(info, indent=2))


def _hash_file(path: Path, digest: Any) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 2**20):
            digest.update(chunk)


class _Counts:
    """The counts of the tokenize report, added up batch by batch."""

    def __init__(self) -> None:
        self.groups = 0
        self.completions = 0
        self.trimmed = 0
        self.cut = 0
        self.margins = 0
        self._lengths: list[np.ndarray] = []

    def add(self, table: pa.Table) -> None:
        prompt_len = pa.compute.list_value_length(table.column("prompt_ids")).to_numpy()
        comps = table.column("completion_ids").combine_chunks()
        k = pa.compute.list_value_length(comps).to_numpy()
        comp_len = pa.compute.list_value_length(comps.flatten()).to_numpy()
        self._lengths.append(np.repeat(prompt_len, k) + comp_len)
        self.groups += len(table)
        self.completions += int(k.sum())
        self.trimmed += int(np.sum(table.column("trimmed_prompt").to_numpy()))
        self.cut += int(np.sum(table.column("cut_completions").to_numpy()))
        per_group = pa.compute.list_value_length(table.column("margins"))
        self.margins += int(pa.compute.sum(per_group).as_py() or 0)

    def result(self) -> dict[str, Any]:
        seq_len = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        return {
            "groups": self.groups,
            "completions": self.completions,
            "trimmed_prompts": self.trimmed,
            "cut_completions": self.cut,
            "margin_pairs": self.margins,  # pairs with a data margin (docs/training.md)
            "tokens": int(seq_len.sum()),
            "max_seq_len": int(seq_len.max()) if len(seq_len) else 0,
            "mean_seq_len": round(float(seq_len.mean()), 1) if len(seq_len) else 0.0,
            "p95_seq_len": int(np.percentile(seq_len, 95)) if len(seq_len) else 0,
        }


def minimal_sequence(tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> tuple[int, int]:
    """Tokens of the shortest possible sequence, (prompt part, completion part): a one-word
    user turn and a one-word completion, with every special and template token around them."""
    fmt = _Formatter(tokenizer, cfg)
    messages = [{"role": "user", "content": "a"}]
    texts = fmt.prompt_texts([messages])
    prompt = fmt.prompt_ids(texts)[0]
    completion = fmt.encode(fmt.completion_texts([messages], texts, [["a"]]))[0]
    if not completion or completion[-1] != fmt.end:
        completion = [*completion, fmt.end]
    return len(prompt), len(completion)


def check_max_length(tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig) -> None:
    """Refuse a max_length the backbone's positions cannot hold, and lengths too short for the
    tokenizer's own special and template tokens: a one-word prompt must fit in the prompt limit
    and a one-word completion (with its end token) in what that limit leaves."""
    limit = tokenizer.model_max_length
    if limit < 1_000_000 and cfg.max_length > limit:
        raise ConfigError(
            f"tokenize.max_length {cfg.max_length} exceeds the model's limit of {limit} "
            f"tokens ({tokenizer.name_or_path}); lower it"
        )
    prompt, completion = minimal_sequence(tokenizer, cfg)
    if prompt <= cfg.prompt_limit <= cfg.max_length - completion:
        return
    template = "chat template" if uses_chat_template(tokenizer, cfg) else "plain template"
    sizes = (
        f"with its special tokens and {template}, a one-word prompt takes {prompt} tokens and "
        f"a one-word completion with its end token {completion}"
    )
    if cfg.max_prompt_length is None:  # the prompt gets max_length // 2
        need = max(2 * prompt, 2 * completion - 1)
        raise ConfigError(
            f"tokenize.max_length is {cfg.max_length} but needs at least {need} for "
            f"{tokenizer.name_or_path}: {sizes}, and a prompt keeps max_length // 2 tokens "
            "(tokenize.max_prompt_length: null); anything shorter would cut template tokens. "
            "Raise tokenize.max_length, or set tokenize.max_prompt_length"
        )
    if cfg.max_length < prompt + completion:
        raise ConfigError(
            f"tokenize.max_length is {cfg.max_length} but needs at least {prompt + completion} "
            f"for {tokenizer.name_or_path}: {sizes}; anything shorter would cut template "
            "tokens. Raise tokenize.max_length"
        )
    raise ConfigError(
        f"tokenize.max_prompt_length is {cfg.max_prompt_length} but must lie between {prompt} "
        f"and {cfg.max_length - completion} for max_length {cfg.max_length} and "
        f"{tokenizer.name_or_path}: {sizes}; set it in that range"
    )


def totals(splits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sums of the per-split counts of the tokenize report."""
    keys = ["groups", "completions", "trimmed_prompts", "cut_completions", "margin_pairs"]
    keys += ["tokens", "seconds"]
    out: dict[str, Any] = {k: sum(s[k] for s in splits.values()) for k in keys}
    out["seconds"] = round(out["seconds"], 3)
    out["max_seq_len"] = max((s["max_seq_len"] for s in splits.values()), default=0)
    return out


def tokenizer_meta(
    tokenizer: PreTrainedTokenizerBase, model_name: str, cfg: TokenizeConfig
) -> dict:
    """What produced a tokenised dataset; training checks it against its own model."""
    return {
        "model_name": model_name,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "end_token_id": end_token_id(tokenizer),
        "template": "chat" if uses_chat_template(tokenizer, cfg) else "plain",
        "max_length": cfg.max_length,
        "max_prompt_length": cfg.prompt_limit,
    }


def save_tokenized(ds: datasets.Dataset, layout: Layout, split: str) -> Path:
    path = layout.tokenized / split
    with atomic_path(path) as tmp:
        # An empty split would be saved as zero shards, which load_from_disk cannot read back.
        ds.save_to_disk(str(tmp), num_shards=1 if len(ds) == 0 else None)
    return path


def write_meta(layout: Layout, meta: dict[str, Any]) -> None:
    write_text(layout.tokenized / META_FILE, json.dumps(meta, indent=2) + "\n")


def read_meta(layout: Layout) -> dict[str, Any]:
    """What the tokenize stage recorded about its tokenizer (data/tokenized/meta.json)."""
    path = layout.tokenized / META_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found; {restore_hint('data/tokenized', 'tokenize')}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise damaged(path, f"not JSON: {exc}", "data/tokenized", "tokenize") from exc
    missing = [key for key in META_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing:
        why = f"no {', '.join(missing)}"
        raise damaged(path, why, "data/tokenized", "tokenize")
    return dict(meta)


def load_tokenized(layout: Layout, split: str) -> datasets.Dataset:
    """The tokenised split written by the tokenize stage (one row per group)."""
    path = layout.tokenized / split
    if not path.is_dir():
        raise ConfigError(f"{path} not found; {restore_hint('data/tokenized', 'tokenize')}")
    try:
        return datasets.Dataset.load_from_disk(str(path))
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
            raise  # the file system refused (exit status 3), not a damaged file
        arrows = sorted(path.glob("*.arrow"))
        where = arrows[0] if len(arrows) == 1 else path
        raise damaged(where, exc, "data/tokenized", "tokenize") from exc
