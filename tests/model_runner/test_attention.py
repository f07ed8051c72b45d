"""The serving attention computes what gpt-oss's eager attention computes, in a plain
forward call and in the runner's ragged passes."""

from __future__ import annotations

import torch
from runner_fixtures import SMALL_WINDOW

from model_runner.attention import (
    SERVING_ATTENTION,
    grouped_attention,
    ragged_layout,
    row_groups,
    serving_attention,
)
from model_runner.transformers_backend import TransformersGenerator


def test_grouped_attention_gives_eager_attentions_logits(
    subset_generator: TransformersGenerator,
) -> None:
    model = subset_generator.model
    config = model.config
    assert config.num_attention_heads > config.num_key_value_heads  # grouped heads
    assert subset_generator.config._attn_implementation == SERVING_ATTENTION
    # Rows longer than the sliding window, one of them left-padded, so both the window
    # and a padding mask are in play.
    length = 4 * SMALL_WINDOW
    ids = torch.randint(1, subset_generator.token_map.vocab_size, (3, length))
    padding = torch.ones(3, length, dtype=torch.long)
    padding[1, : SMALL_WINDOW + 3] = 0
    logits = {}
    try:
        with torch.inference_mode():
            for implementation in ("eager", SERVING_ATTENTION):
                config._attn_implementation = implementation
                logits[implementation] = model(input_ids=ids, attention_mask=padding).logits
    finally:
        config._attn_implementation = SERVING_ATTENTION
    real = padding.bool()
    eager, grouped = logits["eager"][real], logits[SERVING_ATTENTION][real]
    torch.testing.assert_close(grouped, eager, rtol=1e-5, atol=1e-5)
    assert torch.equal(grouped.argmax(-1), eager.argmax(-1))


def test_a_ragged_pass_attends_each_row_to_its_own_keys() -> None:
    """Rows fed one token, several, or nothing (a row between them that sits the step
    out) in one flat sequence: each token gets what its row's attention alone gives,
    with and without a sliding window."""
    torch.manual_seed(0)
    heads, kv_heads, dim, length, scaling = 4, 2, 8, 16, 0.35
    rows, starts, lengths = [0, 1, 2, 4], [9, 6, 12, 8], [1, 4, 1, 1]  # row 3 is not fed
    key, value = torch.randn(5, kv_heads, length, dim), torch.randn(5, kv_heads, length, dim)
    query = torch.randn(1, heads, sum(lengths), dim)
    sinks = torch.randn(heads)
    module = torch.nn.Module()
    end = max(s + n for s, n in zip(starts, lengths, strict=True))
    groups = row_groups(rows, starts, lengths, torch.device("cpu"))
    assert [g.queries for g in groups] == [1, 4]  # the decoding rows together, over 0-4
    for window in (None, 5):
        first_key = 0 if window is None else max(0, min(starts) - window + 1)
        layout = ragged_layout(groups, first_key, window, torch.float32)
        output, _ = serving_attention(
            module, query, key[:, :, first_key:end], value[:, :, first_key:end], layout,
            scaling, s_aux=sinks,
        )  # fmt: skip
        assert output.shape == (1, sum(lengths), heads, dim)
        offset = 0
        for row, start, count in zip(rows, starts, lengths, strict=True):
            positions = torch.arange(start, start + count).view(-1, 1)
            keys = torch.arange(start + count).view(1, -1)
            visible = keys <= positions
            if window is not None:
                visible &= keys > positions - window
            mask = torch.zeros(visible.shape).masked_fill(~visible, torch.finfo().min)
            alone, _ = grouped_attention(
                module, query[:, :, offset : offset + count],
                key[row : row + 1, :, : start + count], value[row : row + 1, :, : start + count],
                mask.view(1, 1, count, -1), scaling, s_aux=sinks,
            )  # fmt: skip
            torch.testing.assert_close(output[0, offset : offset + count], alone[0])
            offset += count
