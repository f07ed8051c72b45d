"""``LlamaCppGenerator`` against llama.cpp's real server, serving the demo model
converted to GGUF (tests/conftest.py's ``llama_server``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from runner_fixtures import collect, greedy

from model_runner.engines.llamacpp import LlamaCppGenerator
from model_runner.errors import InvalidGenerationRequest
from model_runner.harmony import HarmonyRenderer, SystemPrompt, user_message
from model_runner.loading import load_generator

RENDERER = HarmonyRenderer()


def demo_prompt(question: str) -> list[int]:
    system = SystemPrompt(conversation_start_date="2026-12-01")
    return RENDERER.render_prompt([system.to_message(), user_message(question)])


@pytest.fixture
async def llama(llama_server: str) -> AsyncIterator[LlamaCppGenerator]:
    generator = await asyncio.to_thread(load_generator, f"llamacpp+{llama_server}")
    assert isinstance(generator, LlamaCppGenerator)
    yield generator
    await generator.aclose()


async def test_the_probe_learns_the_servers_context_and_slots(llama: LlamaCppGenerator) -> None:
    assert llama.name.endswith(".gguf")
    assert llama.max_context == 2048  # the demo model's own context
    assert llama.concurrency == 4  # -np 4
    assert llama.default_temperature == 0.0  # --temp 0


async def test_a_default_temperature_given_here_wins_over_the_servers(llama_server: str) -> None:
    generator = await asyncio.to_thread(
        load_generator, f"llamacpp+{llama_server}", default_temperature=0.7
    )
    try:
        assert generator.default_temperature == 0.7
    finally:
        await generator.aclose()


async def test_a_call_stops_on_harmony_stop_tokens_and_reuses_the_cache(
    llama: LlamaCppGenerator,
) -> None:
    prompt = demo_prompt("What is 1234 * 5678?")
    request = greedy(prompt, 60, stop_tokens=RENDERER.stop_tokens, cache_key="llama")
    first = llama.generate(request)
    tokens = await collect(first)
    assert RENDERER.decode(tokens).endswith("print(1234 * 5678)<|call|>")
    assert tokens[-1] == RENDERER.call_token
    again = llama.generate(request)
    assert await collect(again) == tokens
    assert again.usage.cached_tokens == len(prompt) - 1
    assert again.usage.prompt_tokens == len(prompt)


async def test_a_prompt_longer_than_the_context_is_refused(
    llama: LlamaCppGenerator, llama_server: str
) -> None:
    too_long = demo_prompt("What is 1 + 1? " * 600)
    with pytest.raises(InvalidGenerationRequest, match="context"):
        await collect(llama.generate(greedy(too_long, 4)))
    blind = LlamaCppGenerator(llama_server)  # not probed: the server refuses it
    try:
        with pytest.raises(InvalidGenerationRequest, match="context"):
            await collect(blind.generate(greedy(too_long, 4)))
    finally:
        await blind.aclose()
