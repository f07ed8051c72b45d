"""gpt-oss's eager attention for serving, without a copy of the keys per query head.

gpt-oss shares each key/value head among a group of query heads (grouped-query
attention). transformers' eager attention first repeats every key and value head once
per query head of its group (``repeat_kv``: a copy of the whole visible cache, per
layer, per step), then scores each query head on its own. Serving a batch from the key/
value slots, that copy was a third of a decoding step on a CPU (a profile of 16 rows:
``aten::copy_`` of ``[16, 2, 2, L, 32]``, 32 % of the step).

Here the query heads of a group are stacked along the query axis instead, so each key
head is read in place by one matrix product for its whole group. The arithmetic is the
eager one: scaled scores plus the mask, one learnt sink logit per head that takes part
in the softmax and is then dropped, the values weighted.

Registered with transformers' ``AttentionInterface`` (and eager's masks with its
``AttentionMaskInterface``): the model stays transformers' own.

The batching runner's passes are *ragged*: the tokens of every row (a decoding row's
one token, a prefilling row's chunk of its prompt) go through the model as one flat
sequence, so the projections and the experts see only real tokens rather than every row
padded to the longest chunk. Only attention needs rows: for such a pass the runner hands
each layer a ``RaggedLayout`` in place of a mask, saying which tokens belong to which
row, and attention is computed row group by row group over each row's own key/value
slot (``ragged_attention``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

SERVING_ATTENTION = "gpt_oss_grouped"


def grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``query`` (batch, heads, q, dim), ``key`` and ``value`` (batch, kv_heads, keys,
    dim), ``attention_mask`` (batch, 1, q, keys) additive; returns (batch, q, heads, dim)."""
    batch, heads, length, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    # Head h reads key head h // groups (as repeat_kv lays them out): a group's query
    # heads are consecutive, so they fold into the query axis of their key head.
    stacked = query.reshape(batch, kv_heads, groups * length, dim)
    scores = torch.matmul(stacked, key.transpose(2, 3)) * scaling
    scores = scores.view(batch, kv_heads, groups, length, keys)
    if attention_mask is not None:
        scores = scores + attention_mask.unsqueeze(2)
    if s_aux is None:
        probs = torch.softmax(scores, dim=-1)
    else:
        sinks = s_aux.reshape(1, kv_heads, groups, 1, 1).to(scores.dtype)
        logits = torch.cat([scores, sinks.expand(batch, -1, -1, length, 1)], dim=-1)
        probs = torch.softmax(logits, dim=-1)[..., :-1]  # the sink takes weight, gives none
    output = torch.matmul(probs.reshape(batch, kv_heads, groups * length, keys), value)
    return output.view(batch, heads, length, dim).transpose(1, 2).contiguous(), None


@dataclass(frozen=True)
class RowGroup:
    """Rows of a ragged pass whose attention is one batched product: key/value rows
    ``rows`` (a slice of those the cache hands attention), each with ``queries``
    queries at ``positions`` (rows, queries) in its row, the real ones from ``first`` to
    ``last``.

    The queries are the flat sequence's ``tokens``, row after row, when they are such a
    run; otherwise token ``index[i]`` is the group's query ``i`` (counted row after row),
    only those that are ``real`` (rows, queries) see anything, and the output of query
    ``sources[j]`` is token ``targets[j]``'s."""

    rows: slice
    queries: int
    positions: torch.Tensor
    first: int
    last: int
    tokens: slice | None = None
    index: torch.Tensor | None = None
    real: torch.Tensor | None = None
    sources: torch.Tensor | None = None
    targets: torch.Tensor | None = None


@dataclass(frozen=True)
class RaggedLayout:
    """What one layer type's attention needs of a ragged pass, in place of a mask: the
    row groups and, for each, the keys it reads (a span of those the cache hands
    attention) and its additive mask over them (rows, 1, queries, keys)."""

    groups: list[RowGroup]
    spans: list[slice]
    masks: list[torch.Tensor]


def row_groups(
    rows: Sequence[int], starts: Sequence[int], lengths: Sequence[int], device: torch.device
) -> list[RowGroup]:
    """The groups of a pass that feeds row ``rows[i]`` (a key/value row, counted from the
    pass's first; increasing) ``lengths[i]`` tokens from position ``starts[i]``, the
    tokens laid out row after row in the flat sequence.

    Rows fed one token each (the decoding ones) form one group over the span of rows
    they occupy; a row of that span fed more, or not fed at all, takes part with a query
    that sees nothing and whose output is dropped (cheaper than gathering the others'
    keys). Each row fed several tokens is a group of its own."""
    assert all(a < b for a, b in itertools.pairwise(rows)), "rows must increase"
    offsets = [0, *itertools.accumulate(lengths)][:-1]
    groups = []
    single = [i for i, length in enumerate(lengths) if length == 1]
    if single:
        low = rows[single[0]]
        span = rows[single[-1]] + 1 - low
        first = offsets[single[0]]
        if span == len(single) and offsets[single[-1]] == first + span - 1:
            positions = torch.tensor([starts[i] for i in single], device=device)
            groups.append(
                RowGroup(
                    slice(low, low + span), 1, positions.view(span, 1),
                    min(starts[i] for i in single), max(starts[i] for i in single),
                    tokens=slice(first, first + span),
                )
            )  # fmt: skip
        else:
            members = torch.tensor([rows[i] - low for i in single])
            targets = torch.tensor([offsets[i] for i in single])
            index = torch.zeros(span, dtype=torch.long)
            positions = torch.zeros(span, dtype=torch.long)
            real = torch.zeros(span, dtype=torch.bool)
            index[members] = targets
            positions[members] = torch.tensor([starts[i] for i in single])
            real[members] = True
            groups.append(
                RowGroup(
                    slice(low, low + span), 1, positions.view(span, 1).to(device),
                    min(starts[i] for i in single), max(starts[i] for i in single),
                    index=index.to(device), real=real.view(span, 1).to(device),
                    sources=members.to(device), targets=targets.to(device),
                )
            )  # fmt: skip
    for i, length in enumerate(lengths):
        if length > 1:
            positions = torch.arange(starts[i], starts[i] + length, device=device)
            groups.append(
                RowGroup(
                    slice(rows[i], rows[i] + 1), length, positions.view(1, length),
                    starts[i], starts[i] + length - 1,
                    tokens=slice(offsets[i], offsets[i] + length),
                )
            )  # fmt: skip
    return groups


def ragged_layout(
    groups: list[RowGroup],
    first_key: int,
    window: int | None,
    dtype: torch.dtype,
) -> RaggedLayout:
    """``groups``' layout for a layer whose keys, as the cache hands them to attention,
    start at position ``first_key``; within ``window`` of each query when it is a
    sliding-window layer. Each group reads only the keys its own rows can see: a long
    prompt's chunk does not score every key of the longest conversation in the pass,
    nor does a fresh prompt widen the decoding rows' window."""
    spans, masks = [], []
    for group in groups:
        start = first_key if window is None else max(first_key, group.first - window + 1)
        end = group.last + 1
        keys = torch.arange(start, end, device=group.positions.device).view(1, 1, -1)
        seen = group.positions.unsqueeze(-1)
        visible = keys <= seen
        if group.real is not None:
            visible &= group.real.unsqueeze(-1)
        if window is not None:
            visible &= keys > seen - window
        mask = torch.zeros(visible.shape, dtype=dtype, device=keys.device)
        mask.masked_fill_(~visible, torch.finfo(dtype).min)
        spans.append(slice(start - first_key, end - first_key))
        masks.append(mask.unsqueeze(1))
    return RaggedLayout(groups, spans, masks)


def ragged_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: RaggedLayout,
    scaling: float,
    s_aux: torch.Tensor | None,
) -> tuple[torch.Tensor, None]:
    """``query`` (1, heads, tokens, dim) of a ragged pass; ``key`` and ``value`` (rows,
    kv_heads, keys, dim), the rows the layout's groups refer to. Returns (1, tokens,
    heads, dim), as attention does for a sequence of that many tokens."""
    _, heads, tokens, dim = query.shape
    output: torch.Tensor | None = None
    for group, span, mask in zip(layout.groups, layout.spans, layout.masks, strict=True):
        count = group.rows.stop - group.rows.start
        picked = query[0, :, group.tokens if group.tokens is not None else group.index]
        grouped = picked.view(heads, count, group.queries, dim).transpose(0, 1)
        result, _ = grouped_attention(
            module, grouped, key[group.rows, :, span], value[group.rows, :, span], mask,
            scaling, s_aux=s_aux,
        )  # fmt: skip
        # (count, queries, heads, dim)
        if group.tokens == slice(0, tokens):  # the whole pass, in order: a decoding step
            return result.reshape(1, tokens, heads, dim), None
        if output is None:
            output = query.new_empty(tokens, heads, dim)
        result = result.reshape(count * group.queries, heads, dim)
        if group.tokens is not None:
            output[group.tokens] = result
        else:
            assert group.sources is not None and group.targets is not None
            output[group.targets] = result[group.sources]
    assert output is not None
    return output.unsqueeze(0), None


def serving_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | RaggedLayout | None,
    scaling: float,
    dropout: float = 0.0,
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The registered attention: a ragged pass's, or a plain forward call's."""
    if isinstance(attention_mask, RaggedLayout):
        return ragged_attention(module, query, key, value, attention_mask, scaling, s_aux)
    return grouped_attention(module, query, key, value, attention_mask, scaling, s_aux=s_aux)


AttentionInterface.register(SERVING_ATTENTION, serving_attention)
# When the model builds its own masks (a plain forward call, without the runner's), it
# builds eager attention's additive ones: without this it would build none at all.
AttentionMaskInterface.register(SERVING_ATTENTION, eager_mask)
