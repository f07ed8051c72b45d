"""The serving attention computes what gpt-oss's eager attention computes."""

from __future__ import annotations

import torch
from runner_fixtures import SMALL_WINDOW

from model_runner.attention import SERVING_ATTENTION
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
