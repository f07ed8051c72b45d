"""Model shapes for ``random:`` specs: gpt-oss architectures with random weights.

A model with the real shapes and random weights decodes at the real speed, which is
how to benchmark where the real checkpoints cannot be downloaded. ``tiny`` is small
enough for CPU tests yet keeps what matters to the runner: the full o200k_harmony
vocabulary, and sliding-window layers alternating with full attention.

In bf16, gpt-oss-20b takes 42 GB (fits one 80 GB GPU); gpt-oss-120b takes 234 GB, more
than any single GPU: the real checkpoint fits one 80 GB GPU only in MXFP4.
"""

from __future__ import annotations

from typing import Any

# From the public gpt-oss config.json files (and transformers' GptOssConfig).
_GPT_OSS_COMMON: dict[str, Any] = {
    "vocab_size": 201088,
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_experts_per_tok": 4,
    "sliding_window": 128,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "swiglu_limit": 7.0,
    "attention_bias": True,
    "tie_word_embeddings": False,
    "eos_token_id": 200002,
    "pad_token_id": 199999,
    # The yarn extension of a 4k-trained rope to 131k. Passed to the constructor:
    # assigning rope parameters after construction leaves the rotary tables unchanged.
    "rope_parameters": {
        "rope_type": "yarn",
        "rope_theta": 150000.0,
        "factor": 32.0,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "truncate": False,
        "original_max_position_embeddings": 4096,
    },
}

SHAPES: dict[str, dict[str, Any]] = {
    "gpt-oss-20b": {**_GPT_OSS_COMMON, "num_hidden_layers": 24, "num_local_experts": 32},
    "gpt-oss-120b": {**_GPT_OSS_COMMON, "num_hidden_layers": 36, "num_local_experts": 128},
    "tiny": {
        "vocab_size": 201088,
        "hidden_size": 64,
        "intermediate_size": 64,
        "num_hidden_layers": 2,  # one sliding-window layer, one full-attention layer
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "sliding_window": 128,
        "max_position_embeddings": 131072,
        "eos_token_id": 200002,
        "pad_token_id": 199999,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    },
}


def gpt_oss_config(shape: str, **overrides: Any) -> Any:
    """A ``GptOssConfig`` of a named shape, with ``overrides`` applied at construction."""
    from transformers import GptOssConfig

    try:
        values = SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown model shape {shape!r}; known: {', '.join(SHAPES)}") from None
    return GptOssConfig(**{**values, **overrides})


def parameter_count(config: Any) -> int:
    """Parameters of a ``GptOssForCausalLM`` of ``config``, counted on the meta device
    (no memory, no initialisation)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return sum(parameter.numel() for parameter in skeleton.parameters())
