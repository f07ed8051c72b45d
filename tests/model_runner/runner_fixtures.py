"""Helpers for the model runner tests: tiny random gpt-oss models and a no-cache
greedy reference. (Not ``conftest``: other test folders have one, and a module named
``conftest`` cannot be imported unambiguously.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import torch

from model_runner.generator import GenerationRequest, GenerationStream
from model_runner.token_map import TokenMap
from model_runner.transformers_backend import TransformersGenerator

#: Sliding window of the subset model: prompts of a few dozen tokens cross it.
SMALL_WINDOW = 8

#: Ids the subset model knows: plain tokens plus harmony's specials.
PLAIN_IDS = range(1000, 1300)
SPECIAL_IDS = range(200002, 200013)
UNKNOWN_ORIGINAL_ID = 199999


def build_subset_generator(token_map: TokenMap, **options: Any) -> TransformersGenerator:
    """A tiny random model whose vocabulary is ``token_map``'s ids."""
    return TransformersGenerator.from_random(
        "tiny",
        device="cpu",
        seed=1234,
        config_overrides={
            "vocab_size": token_map.vocab_size,
            "sliding_window": SMALL_WINDOW,
            "max_position_embeddings": 4096,
        },
        token_map=token_map,
        **options,
    )


def greedy_reference(
    generator: TransformersGenerator, prompt: Sequence[int], max_tokens: int
) -> list[int]:
    """Greedy decoding by recomputing the whole sequence for every token, no cache at
    all: the ground truth the cached backend must reproduce."""
    token_map = generator.token_map
    ids = token_map.to_compact(prompt) if token_map else list(prompt)
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(max_tokens):
            logits = generator.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            if token_map:
                logits = logits[: token_map.vocab_size]
            next_id = int(torch.argmax(logits))
            ids.append(next_id)
            out.append(token_map.original_ids[next_id] if token_map else next_id)
    return out


NO_STOP: frozenset[int] = frozenset()


def prompt_of(length: int, offset: int = 0) -> list[int]:
    """A prompt of plain ids the subset model knows, varied by ``offset``."""
    plain = list(PLAIN_IDS)
    return [plain[(7 * i + 3 * offset) % len(plain)] for i in range(length)]


def greedy(prompt: Sequence[int], max_tokens: int, **fields: Any) -> GenerationRequest:
    fields.setdefault("stop_tokens", NO_STOP)
    return GenerationRequest(
        prompt_tokens=list(prompt), max_tokens=max_tokens, temperature=0.0, **fields
    )


async def collect(stream: GenerationStream) -> list[int]:
    return [token async for token in stream]


async def wait_idle(generator: TransformersGenerator) -> None:
    """Until no generation holds the model; fails the test if that never happens."""
    deadline = time.monotonic() + 30
    while generator.busy:
        assert time.monotonic() < deadline, "the worker never stopped"
        await asyncio.sleep(0.01)
