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
"""

from __future__ import annotations

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


AttentionInterface.register(SERVING_ATTENTION, grouped_attention)
# When the model builds its own masks (a plain forward call, without the runner's), it
# builds eager attention's additive ones: without this it would build none at all.
AttentionMaskInterface.register(SERVING_ATTENTION, eager_mask)
