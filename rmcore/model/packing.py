"""Padding-free batches on any device, through transformers' attention API.

A packed batch puts every sequence of a batch end to end in one row [1, S], with position
ids restarting at each sequence, so the embeddings, projections and MLPs (most of the
compute) see real tokens only. transformers' own padding-free path needs flash-attention's
varlen kernels (CUDA only); its SDPA path turns packed position ids into one dense [S, S]
block mask, quadratic in the whole batch.

The attention function `rmcore_packed` instead gathers each sequence's queries, keys and
values into a padded [N, H, L, D] block (one index op each), runs PyTorch SDPA with a mask
that keeps every sequence to itself (plus causality, or a prefix-sharing block mask), and
scatters the result back to [1, S]. Big batches of mixed lengths go in up to eight chunks of
similar length (`Segments.chunked`), each padded only to its own longest sequence: on
hh-rlhf's 32 sequences a step, one chunk would compute 4.6 times the attention of the real
tokens, four chunks 1.7 times, eight 1.3 times (more, smaller chunks measured no faster).

On CPUs without AMX, packed attention under bf16 autocast runs in fp32 while gradients are
recorded: PyTorch's CPU flash-attention kernel has no bf16 dot products there and converts
every block, and its fp32 backward measured 1.5 to 3 times faster than its bf16 one (head
size 32, AVX512-BF16), for less rounding. Without gradients (scoring, validation) it stays in
bf16: the forward alone is no slower in bf16 and the casts are saved (scoring measured 4%
faster). The output goes back to the compute dtype.

With a shared prompt (`Segments.from_views`) each completion is gathered as its own causal
sequence, prompt then completion: the prompt's keys and values are read once per completion,
its projections and MLPs run once, and no attention is spent between completions of one
group. The op count per layer is small and does not grow with the number of sequences,
which keeps CPU threads busy with work rather than synchronisation.

Without `packed_segments` (padded batches, scoring) the function is transformers' SDPA
attention, unchanged: a backbone switched to `rmcore_packed` computes what it did before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

log = logging.getLogger(__name__)

PACKED_ATTENTION = "rmcore_packed"
HALF = (torch.bfloat16, torch.float16)
SEGMENTS_KWARG = "packed_segments"


@dataclass
class Segments:
    """The N sequences of a packed row [1, S] and how attention sees them.

    bounds: [start, end) of each sequence (or shared-prompt group) in the row. index [N, L]:
    row position of each sequence's t-th token (past its end: its first token, masked out as
    a key and dropped as a query, so it gets no gradient). valid [N, L]: t < length;
    flat_valid [S]: for each row position, the flat index its output is read from ([N * L],
    or with chunks the chunks' [n_c * width] outputs one after the other).
    masks [N, L, L] bool (True = may attend), or None: each sequence sees all of itself
    (causally in a causal model). causal_only: sequences overlap (a shared prompt), which
    is exact only under a causal mask.
    """

    bounds: list[tuple[int, int]]
    index: torch.Tensor  # [N, L] int64
    valid: torch.Tensor  # [N, L] bool
    flat_valid: torch.Tensor  # [S] int64
    masks: torch.Tensor | None = None  # [N, L, L] bool
    causal_only: bool = False
    # sequences of similar length attended together, each chunk only as wide as its longest
    # sequence (see `chunked`); None: one chunk of all N sequences, L wide
    chunks: list[tuple[torch.Tensor, int]] | None = None  # (rows [n_c], width)
    _cache: dict[tuple[bool, int | None], list[torch.Tensor]] = field(
        default_factory=dict, repr=False
    )
    _plan: list[tuple[torch.Tensor, list[tuple[int, int]]]] = field(
        default_factory=list, repr=False
    )

    @classmethod
    def build(
        cls, lengths: list[int], masks: list[np.ndarray] | None = None, multiple: int = 8
    ) -> Segments:
        """Segments of sequences of `lengths` laid end to end; `masks` one [L_i, L_i] each."""
        n = len(lengths)
        width = max(1, -(-max(lengths, default=1) // multiple) * multiple)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        offsets = np.arange(width)[None, :]  # [1, L]
        valid = offsets < np.asarray(lengths)[:, None]  # [N, L]
        index = np.where(valid, starts[:, None] + offsets, starts[:, None])
        full = None
        if masks is not None:
            blocks = np.zeros((n, width, width), dtype=bool)
            blocks[:, :, :] = ~valid[:, :, None]  # padding queries see everything (discarded)
            for i, mask in enumerate(masks):
                blocks[i, : len(mask), : len(mask)] = mask
            full = torch.from_numpy(blocks)
        bounds = [(int(s), int(s + n)) for s, n in zip(starts, lengths, strict=True)]
        flat_valid = torch.from_numpy(np.flatnonzero(valid))
        return cls(bounds, torch.from_numpy(index), torch.from_numpy(valid), flat_valid, full)

    @classmethod
    def from_views(
        cls, views: list[np.ndarray], bounds: list[tuple[int, int]], multiple: int = 8
    ) -> Segments:
        """Sequences that may share row positions: `views[i]` lists, in order, the row
        positions of sequence i (a group's prompt, then one of its completions). A position's
        output is read from the first sequence that holds it. Causal models only."""
        lengths = np.array([len(v) for v in views], dtype=np.int64)
        width = max(1, -(-int(lengths.max(initial=1)) // multiple) * multiple)
        valid = np.arange(width)[None, :] < lengths[:, None]  # [N, L]
        index = np.empty((len(views), width), dtype=np.int64)
        out = np.full(bounds[-1][1] if bounds else 0, -1, dtype=np.int64)
        for i in reversed(range(len(views))):  # reversed: the first view's entry wins
            view = views[i]
            index[i, : len(view)], index[i, len(view) :] = view, view[0]
            out[view] = i * width + np.arange(len(view))
        if (out < 0).any():
            raise ValueError("every row position must belong to a view")
        return cls(
            bounds,
            torch.from_numpy(index),
            torch.from_numpy(valid),
            torch.from_numpy(out),
            causal_only=True,
        )

    def chunked(self, multiple: int = 8, max_chunks: int = 8, min_rows: int = 4) -> Segments:
        """The same segments attended in up to `max_chunks` chunks of similar length, so
        short sequences are not padded to the longest of the batch; self where that would
        save less than a fifth of the attention."""
        n, width = self.valid.shape
        n_chunks = min(max_chunks, n // min_rows)
        if n_chunks < 2:
            return self
        lengths = self.valid.sum(1).numpy()
        parts = np.array_split(np.argsort(-lengths, kind="stable"), n_chunks)
        widths = [max(1, -(-int(lengths[p].max()) // multiple) * multiple) for p in parts]
        if sum(len(p) * w * w for p, w in zip(parts, widths, strict=True)) > 0.8 * n * width**2:
            return self
        # output of (row r, position t): chunk offset + r's place in its chunk * width + t
        start = np.zeros(n, dtype=np.int64)
        offset = 0
        for part, w in zip(parts, widths, strict=True):
            start[part] = offset + np.arange(len(part)) * w
            offset += len(part) * w
        flat = self.flat_valid.numpy()
        remapped = start[flat // width] + flat % width
        chunks = [(torch.from_numpy(p), w) for p, w in zip(parts, widths, strict=True)]
        return Segments(
            self.bounds,
            self.index,
            self.valid,
            torch.from_numpy(remapped),
            self.masks,
            self.causal_only,
            chunks,
        )

    def to(self, device: torch.device | str) -> Segments:
        index, valid, flat = (t.to(device) for t in (self.index, self.valid, self.flat_valid))
        masks = None if self.masks is None else self.masks.to(device)
        chunks = None if self.chunks is None else [(r.to(device), w) for r, w in self.chunks]
        return Segments(self.bounds, index, valid, flat, masks, self.causal_only, chunks)

    def chunk_indices(self) -> list[torch.Tensor]:
        """Per chunk, [n_c, width] row positions of its sequences' tokens."""
        if self.chunks is None:
            return [self.index]
        return [self.index[rows, :width] for rows, width in self.chunks]

    def gather_plan(self) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """All chunks' row positions flat, one chunk after the other, and each chunk's
        (sequences, width): one gather serves every chunk (built once per batch)."""
        if not self._plan:
            indices = self.chunk_indices()
            flat = torch.cat([index.reshape(-1) for index in indices])
            self._plan.append((flat, [(len(index), index.shape[1]) for index in indices]))
        return self._plan[0]

    def attn_mask(self, causal: bool, window: int | None = None) -> list[torch.Tensor]:
        """Per chunk, the [n, 1, L or 1, L] bool mask for SDPA, built once per batch and
        reused by every layer. `window`: sliding-window attention (a query sees the keys
        less than `window` positions back), as transformers' `sliding_window_overlay`."""
        if self.causal_only and not causal:
            raise ValueError("a shared prompt is exact for causal attention only")
        if window is not None and window >= self.index.shape[1]:
            window = None  # no sequence is longer than the window: it masks nothing
        if window is not None and (not causal or self.masks is not None):
            # a block mask's columns are row offsets, not positions: a window on them is wrong
            raise ValueError(
                "packed sliding-window attention is exact for causal sequences without a "
                "shared-prompt block mask only"
            )
        key = (causal, window)
        if key not in self._cache:
            full = self.index.shape[1]
            chunks = self.chunks or [(torch.arange(len(self.index)), full)]
            self._cache[key] = [self._mask(rows, width, causal, window) for rows, width in chunks]
        return self._cache[key]

    def _mask(
        self, rows: torch.Tensor, width: int, causal: bool, window: int | None
    ) -> torch.Tensor:
        valid = self.valid[rows, :width]
        if self.masks is not None:
            return self.masks[rows, :width, :width][:, None]  # [n, 1, L, L]
        if causal:
            tril = torch.ones(width, width, dtype=torch.bool, device=valid.device).tril()
            if window is not None:  # a gathered sequence's column t is its position t
                tril = tril.triu(1 - window)
            return (tril[None] & valid[:, None, :])[:, None]  # [n, 1, L, L]
        return valid[:, None, None, :]  # [n, 1, 1, L]: real keys only


def _gather(
    x: torch.Tensor, flat: torch.Tensor, shapes: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """[1, H, S, D] packed -> per chunk [n, H, L, D] padded (views of [n, L, H, D] rows).

    One index_select for all chunks, then views: the backward is one zero-filled [S, H, D]
    gradient and one index_add, however many chunks (a gather per chunk would fill and add a
    full-size gradient each). squeeze, not x[0]: select's backward fills a zero tensor too.
    """
    heads, dim = x.shape[1], x.shape[3]
    rows = x.squeeze(0).transpose(0, 1).index_select(0, flat)  # [sum n*L, H, D]
    parts = rows.split([n * width for n, width in shapes])
    return [
        part.view(n, width, heads, dim).transpose(1, 2)
        for part, (n, width) in zip(parts, shapes, strict=True)
    ]


@functools.cache
def cpu_attention_in_fp32() -> bool:
    """Packed attention on this CPU computes half-precision inputs in fp32 (no AMX: see the
    module's docstring)."""
    return not torch.cpu._is_amx_tile_supported()


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """query/key/value [1, H, S, D] -> output [1, S, H, D], attending within each segment."""
    segments: Segments | None = kwargs.pop(SEGMENTS_KWARG, None)
    if segments is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    if query.shape[0] != 1:
        raise ValueError(f"packed attention expects one packed row, got {query.shape[0]}")
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:  # grouped-query attention: one key/value head per group of query heads
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", False))
    window = kwargs.get("sliding_window")  # set by layers with sliding-window attention
    masks = segments.attn_mask(causal, int(window) if window else None)
    heads, dim, dtype = query.shape[1], value.shape[-1], query.dtype
    upcast = (
        query.device.type == "cpu"
        and dtype in HALF
        and torch.is_grad_enabled()
        and cpu_attention_in_fp32()
    )
    if upcast:
        query, key, value = query.float(), key.float(), value.float()
    outs = []
    with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():
        flat, shapes = segments.gather_plan()
        gathered = zip(*(_gather(x, flat, shapes) for x in (query, key, value)), strict=True)
        for (q, k, v), mask in zip(gathered, masks, strict=True):
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=dropout,
                scale=scaling,
            )  # [n, H, L, D]
            outs.append(out.transpose(1, 2).reshape(-1, heads, dim))  # [n*L, H, D]
    rows = outs[0] if len(outs) == 1 else torch.cat(outs)
    return rows.index_select(0, segments.flat_valid)[None].to(dtype), None  # [1, S, H, D]


AttentionInterface.register(PACKED_ATTENTION, packed_attention)
# Padded batches on a packed-attention backbone get transformers' SDPA masks; packed rows
# carry an all-ones 2-D mask, which SDPA's mask builder skips (no [S, S] mask is built).
AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def enable_packed_attention(backbone: PreTrainedModel) -> bool:
    """Switch a backbone to `rmcore_packed`; False where its attention cannot be swapped."""
    return packed_attention_refusal(backbone) is None


def packed_attention_refusal(backbone: PreTrainedModel) -> str | None:
    """Switch a backbone to `rmcore_packed`; where that cannot be done, say why."""
    current = backbone.config._attn_implementation
    if current == PACKED_ATTENTION:
        return None
    name = type(backbone).__name__
    if not backbone._can_set_attn_implementation():
        return f"{name}'s attention cannot be replaced (it does not use transformers' interface)"
    if current != "sdpa":  # eager or flash-attention were chosen on purpose: keep them
        log.info("keeping attention %s: packed attention replaces sdpa only", current)
        return f"{name} runs {current} attention, which packed attention does not replace"
    backbone.set_attn_implementation(PACKED_ATTENTION)
    if backbone.config._attn_implementation != PACKED_ATTENTION:
        return f"{name} did not take the packed attention"
    return None
