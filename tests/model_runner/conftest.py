"""Fixtures for the model runner tests: tiny random gpt-oss models on the CPU.

The models are real ``GptOssForCausalLM`` instances (random weights, a few thousand
parameters per layer), so every test runs the real transformers path. One keeps the
full o200k_harmony vocabulary; the other is a vocabulary-subset model behind a
``TokenMap`` with an 8-token sliding window, so short prompts already cross it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from runner_fixtures import PLAIN_IDS, SPECIAL_IDS, UNKNOWN_ORIGINAL_ID, build_subset_generator

from model_runner.token_map import TokenMap
from model_runner.transformers_backend import TransformersGenerator


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine OpenMP workers
    spinning against each other make each step many times slower. Restored after
    each module so other test folders keep their setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def token_map() -> TokenMap:
    return TokenMap.covering([*PLAIN_IDS, *SPECIAL_IDS], unknown_original_id=UNKNOWN_ORIGINAL_ID)


@pytest.fixture(scope="session")
def subset_generator(token_map: TokenMap) -> TransformersGenerator:
    """The vocabulary-subset model, with a prefix cache."""
    return build_subset_generator(token_map, name="subset-tiny")


@pytest.fixture(scope="session")
def full_vocab_generator() -> TransformersGenerator:
    """``random:tiny``: the full 201,088-id vocabulary, the real 128-token window."""
    return TransformersGenerator.from_random("tiny", device="cpu", seed=99)
