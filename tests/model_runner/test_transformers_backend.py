"""The transformers backend on tiny random gpt-oss models: streaming, stopping,
cancellation, sampling, continuous batching and prefix caching that change nothing but
speed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import torch
from runner_fixtures import (
    NO_STOP,
    SMALL_WINDOW,
    build_subset_generator,
    collect,
    greedy,
    greedy_reference,
    prompt_of,
    wait_idle,
)
from transformers import GptOssConfig, LlamaConfig, LlamaForCausalLM

from model_runner import transformers_backend
from model_runner.attention import RowGroup, row_groups
from model_runner.errors import InvalidGenerationRequest, ModelMismatch
from model_runner.generator import GenerationRequest, GenerationStream
from model_runner.kv_slots import SlotCache
from model_runner.token_map import TokenMap
from model_runner.transformers_backend import (
    INTERACTIVE_HEAD_TOKENS,
    TransformersGenerator,
    _StepCache,
    sample_token,
)


async def test_streams_tokens_and_reports_usage(subset_generator: TransformersGenerator) -> None:
    prompt = prompt_of(12, offset=77)  # shares no prefix with other tests' prompts
    stream = subset_generator.generate(greedy(prompt, 5, cache_key="usage"))
    tokens = await collect(stream)
    assert len(tokens) == 5
    assert stream.usage.prompt_tokens == 12
    assert stream.usage.cached_tokens == 0
    assert stream.usage.completion_tokens == 5


async def test_returns_original_ids_of_the_map(
    subset_generator: TransformersGenerator, token_map: TokenMap
) -> None:
    # 5 is not in the map: it reaches the model as the unknown id, and is accepted.
    tokens = await collect(subset_generator.generate(greedy([5, *prompt_of(6)], 8)))
    assert all(token in token_map for token in tokens)
    assert tokens == greedy_reference(subset_generator, [5, *prompt_of(6)], 8)


async def test_stops_after_yielding_a_stop_token(subset_generator: TransformersGenerator) -> None:
    prompt = prompt_of(10, offset=1)
    free = await collect(subset_generator.generate(greedy(prompt, 8)))
    # Stop on the first token that did not already occur earlier in the run.
    cut = next(i for i in range(1, len(free)) if free[i] not in free[:i])
    stopped = await collect(
        subset_generator.generate(greedy(prompt, 8, stop_tokens=frozenset({free[cut]})))
    )
    assert stopped == free[: cut + 1]


async def test_greedy_with_prefix_cache_equals_full_recompute(
    subset_generator: TransformersGenerator,
) -> None:
    """Multi-turn: each prompt extends the last prompt and its completion, then one
    diverges from an earlier turn. Every turn crosses the sliding window, so reuse has
    to crop sliding-window layers as well as full ones."""
    key = "multi-turn"
    first_prompt = prompt_of(3 * SMALL_WINDOW, offset=2)
    first = subset_generator.generate(greedy(first_prompt, 6, cache_key=key))
    first_tokens = await collect(first)
    assert first_tokens == greedy_reference(subset_generator, first_prompt, 6)

    # The next turn: the whole first exchange, then a tool answer's worth of new tokens.
    second_prompt = [*first_prompt, *first_tokens, *prompt_of(11, offset=3)]
    second = subset_generator.generate(greedy(second_prompt, 6, cache_key=key))
    second_tokens = await collect(second)
    # The last completion token was sampled but never fed to the model.
    assert second.usage.cached_tokens == len(first_prompt) + len(first_tokens) - 1
    assert second_tokens == greedy_reference(subset_generator, second_prompt, 6)

    # Diverge well past the window inside the first prompt (an edited earlier turn).
    keep = 2 * SMALL_WINDOW + 3
    third_prompt = [*first_prompt[:keep], *prompt_of(9, offset=4)]
    assert third_prompt[keep] != first_prompt[keep]
    third = subset_generator.generate(greedy(third_prompt, 6, cache_key=key))
    third_tokens = await collect(third)
    assert third.usage.cached_tokens == keep
    assert third_tokens == greedy_reference(subset_generator, third_prompt, 6)

    # The same prompt again: everything but the last token comes from the cache.
    again = subset_generator.generate(greedy(third_prompt, 6, cache_key=key))
    assert await collect(again) == third_tokens
    assert again.usage.cached_tokens == len(third_prompt) - 1


async def test_unkeyed_requests_share_a_common_preamble(
    subset_generator: TransformersGenerator,
) -> None:
    preamble = prompt_of(20, offset=5)
    await collect(subset_generator.generate(greedy([*preamble, *prompt_of(4, 6)], 3)))
    follow = [*preamble, *prompt_of(5, offset=7)]
    stream = subset_generator.generate(greedy(follow, 4))
    tokens = await collect(stream)
    assert stream.usage.cached_tokens >= len(preamble)
    assert tokens == greedy_reference(subset_generator, follow, 4)


async def test_zero_budget_disables_the_cache(token_map: TokenMap) -> None:
    generator = build_subset_generator(token_map, cache_budget_bytes=0)
    prompt = prompt_of(30, offset=8)
    await collect(generator.generate(greedy(prompt, 3, cache_key="k")))
    stream = generator.generate(greedy(prompt, 3, cache_key="k"))
    await collect(stream)
    assert stream.usage.cached_tokens == 0
    assert generator.slots.cached_conversations == 0


async def test_seeded_sampling_is_reproducible(subset_generator: TransformersGenerator) -> None:
    def request(seed: int) -> GenerationRequest:
        return GenerationRequest(
            prompt_tokens=prompt_of(10), max_tokens=8, stop_tokens=NO_STOP,
            temperature=1.0, top_p=0.9, seed=seed,
        )  # fmt: skip

    first = await collect(subset_generator.generate(request(7)))
    second = await collect(subset_generator.generate(request(7)))
    assert first == second


def test_top_p_keeps_only_the_nucleus() -> None:
    import torch

    # Probabilities 0.5, 0.3, 0.2 (in a shuffled order): top_p=0.6 keeps the first two.
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    generator = torch.Generator().manual_seed(0)
    picks = {sample_token(logits, 1.0, 0.6, generator) for _ in range(200)}
    assert picks == {1, 2}
    assert sample_token(logits, 0.0, 1.0, None) == 1


async def test_closing_the_stream_stops_the_worker(
    subset_generator: TransformersGenerator,
) -> None:
    before = subset_generator.stats.completion_tokens
    cancelled_before = subset_generator.stats.cancelled
    stream = subset_generator.generate(greedy(prompt_of(8), 100_000))
    iterator = aiter(stream)
    await anext(iterator)
    await anext(iterator)
    await stream.aclose()
    await wait_idle(subset_generator)
    assert subset_generator.stats.cancelled == cancelled_before + 1
    # The worker checks the flag before every forward pass: a handful of tokens at most.
    assert subset_generator.stats.completion_tokens - before < 100


async def test_cancelling_the_consumer_task_stops_the_worker(
    subset_generator: TransformersGenerator,
) -> None:
    before = subset_generator.stats.completion_tokens
    cancelled_before = subset_generator.stats.cancelled
    seen = asyncio.Event()

    async def consume() -> None:
        async for _ in subset_generator.generate(greedy(prompt_of(8), 100_000)):
            seen.set()

    task = asyncio.create_task(consume())
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle(subset_generator)
    assert subset_generator.stats.cancelled == cancelled_before + 1
    assert subset_generator.stats.completion_tokens - before < 100


async def test_breaking_out_of_the_loop_stops_the_worker(
    subset_generator: TransformersGenerator,
) -> None:
    before = subset_generator.stats.completion_tokens
    cancelled_before = subset_generator.stats.cancelled
    async for _ in subset_generator.generate(greedy(prompt_of(8), 100_000)):
        break
    await wait_idle(subset_generator)
    assert subset_generator.stats.cancelled == cancelled_before + 1
    assert subset_generator.stats.completion_tokens - before < 100


async def test_concurrent_generations_share_steps_and_match_running_alone(
    token_map: TokenMap,
) -> None:
    """Requests of different lengths in flight at once: they share decode passes, join
    and leave the batch at different steps, and each gives exactly its greedy tokens."""
    generator = build_subset_generator(token_map, name="batching")
    prompts = [prompt_of(5 + 7 * n, offset=20 + n) for n in range(5)]
    lengths = [3, 9, 5, 12, 7]
    results = await asyncio.gather(
        *(
            collect(generator.generate(greedy(p, n, cache_key=f"b{i}")))
            for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
        )
    )
    assert results == [
        greedy_reference(generator, p, n) for p, n in zip(prompts, lengths, strict=True)
    ]
    assert generator.stats.widest_batch >= 2


async def test_a_request_joins_a_running_batch_and_a_cancelled_one_leaves_it(
    token_map: TokenMap,
) -> None:
    generator = build_subset_generator(token_map, name="join-leave")
    endless = generator.generate(greedy(prompt_of(12, offset=30), 100_000))
    iterator = aiter(endless)
    await anext(iterator)  # decoding now
    # Joins while the other decodes; its output is unaffected by the company.
    late_prompt = prompt_of(20, offset=31)
    assert await collect(generator.generate(greedy(late_prompt, 6))) == greedy_reference(
        generator, late_prompt, 6
    )
    await endless.aclose()
    await wait_idle(generator)
    assert generator.stats.cancelled == 1


async def test_a_long_prefill_is_chunked_around_decoding_requests(token_map: TokenMap) -> None:
    generator = build_subset_generator(token_map, name="chunked", prefill_chunk_tokens=8)
    decoding = generator.generate(greedy(prompt_of(6, offset=40), 100_000))
    iterator = aiter(decoding)
    await anext(iterator)
    long_prompt = prompt_of(120, offset=41)  # 15 chunks of 8
    order: list[str] = []

    async def watch_decoding() -> None:
        async for _ in iterator:
            order.append("decode")

    watcher = asyncio.create_task(watch_decoding())
    tokens = await collect(generator.generate(greedy(long_prompt, 2)))
    order.append("long-first-token")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await decoding.aclose()
    assert tokens == greedy_reference(generator, long_prompt, 2)
    # The decoding request kept producing tokens while the long prompt was prefilled.
    assert order.index("long-first-token") >= 10


async def test_background_rows_sit_out_an_interactive_requests_first_steps(
    token_map: TokenMap,
) -> None:
    """While an interactive request produces its first tokens, no background token is
    produced; then the background request goes on. Neither output changes."""
    generator = build_subset_generator(token_map, name="priority")
    background_prompt, interactive_prompt = prompt_of(10, offset=60), prompt_of(15, offset=61)
    background_length, interactive_length = 120, INTERACTIVE_HEAD_TOKENS + 6
    order: list[str] = []
    background_tokens: list[int] = []
    iterator = aiter(
        generator.generate(greedy(background_prompt, background_length, background=True))
    )
    background_tokens.append(await anext(iterator))  # decoding now

    async def watch_background() -> None:
        async for token in iterator:
            background_tokens.append(token)
            order.append("background")

    watcher = asyncio.create_task(watch_background())
    interactive_tokens = []
    async for token in generator.generate(greedy(interactive_prompt, interactive_length)):
        interactive_tokens.append(token)
        order.append("interactive")
    await watcher

    first = order.index("interactive")
    assert (
        order[first : first + INTERACTIVE_HEAD_TOKENS] == ["interactive"] * INTERACTIVE_HEAD_TOKENS
    )
    assert "background" in order[first + INTERACTIVE_HEAD_TOKENS :]
    assert interactive_tokens == greedy_reference(generator, interactive_prompt, interactive_length)
    assert background_tokens == greedy_reference(generator, background_prompt, background_length)


async def test_a_row_sitting_out_between_decoding_rows_changes_nothing(
    token_map: TokenMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots 0 and 2 decode (interactive) while slot 1, a background row, sits the step
    out: the decoding rows are one group over slots 0 to 2, slot 1's query a dummy whose
    output is dropped. Every output is still exactly its greedy one."""
    groups_seen: list[list[RowGroup]] = []

    def recording(*args: Any) -> list[RowGroup]:
        groups = row_groups(*args)
        groups_seen.append(groups)
        return groups

    monkeypatch.setattr(transformers_backend, "row_groups", recording)
    generator = build_subset_generator(token_map, name="sit-out")
    first, background, late = (prompt_of(10 + n, offset=80 + n) for n in range(3))
    first_tokens: list[int] = []
    background_tokens: list[int] = []

    async def drain(stream: GenerationStream, into: list[int]) -> None:
        async for token in stream:
            into.append(token)

    first_stream = generator.generate(greedy(first, 60))
    iterator = aiter(first_stream)
    first_tokens.append(await anext(iterator))  # slot 0 decoding
    background_stream = generator.generate(greedy(background, 60, background=True))
    background_iterator = aiter(background_stream)
    background_tokens.append(await anext(background_iterator))  # slot 1 decoding
    tasks = [
        asyncio.create_task(drain(iterator, first_tokens)),  # type: ignore[arg-type]
        asyncio.create_task(drain(background_iterator, background_tokens)),  # type: ignore[arg-type]
    ]
    late_tokens = await collect(generator.generate(greedy(late, 20)))  # slot 2
    await asyncio.gather(*tasks)
    assert first_tokens == greedy_reference(generator, first, 60)
    assert background_tokens == greedy_reference(generator, background, 60)
    assert late_tokens == greedy_reference(generator, late, 20)
    with_dummies = [
        group for groups in groups_seen for group in groups if group.sources is not None
    ]
    assert with_dummies, "no step had a row sitting out between decoding rows"


def test_only_gpt_oss_models_are_served() -> None:
    """The runner's attention is gpt-oss's: another architecture is refused at once
    rather than run with its own extras silently dropped."""
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1,
    )  # fmt: skip
    with pytest.raises(ModelMismatch, match="'llama'"):
        TransformersGenerator(LlamaForCausalLM(config), name="llama")


def test_a_prefill_chunk_of_no_tokens_is_refused(token_map: TokenMap) -> None:
    with pytest.raises(ValueError, match="prefill_chunk_tokens"):
        build_subset_generator(token_map, prefill_chunk_tokens=0)


async def test_more_requests_than_the_batch_wait_their_turn(token_map: TokenMap) -> None:
    generator = build_subset_generator(token_map, name="narrow", max_batch=2)
    assert generator.concurrency == 2
    prompts = [prompt_of(9, offset=50 + n) for n in range(5)]
    results = await asyncio.gather(*(collect(generator.generate(greedy(p, 4))) for p in prompts))
    assert results == [greedy_reference(generator, p, 4) for p in prompts]
    assert generator.stats.widest_batch == 2


async def test_event_loop_runs_while_the_model_decodes(
    subset_generator: TransformersGenerator,
) -> None:
    stream = subset_generator.generate(greedy(prompt_of(40), 100_000))
    iterator = aiter(stream)
    await anext(iterator)
    # With the model in a worker thread, other coroutines run while it decodes: this
    # one completes long before the generation could (it never ends by itself).
    other = asyncio.Event()
    asyncio.get_running_loop().call_soon(other.set)
    await asyncio.wait_for(other.wait(), timeout=60)
    assert subset_generator.busy
    await stream.aclose()
    await wait_idle(subset_generator)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt_tokens": []}, "empty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"prompt_tokens": [201088]}, "prompt ids"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
async def test_invalid_requests_raise_typed_errors(
    full_vocab_generator: TransformersGenerator, fields: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"prompt_tokens": [1, 2], "max_tokens": 2, "stop_tokens": NO_STOP}
    values.update(fields)
    stream = full_vocab_generator.generate(GenerationRequest(**values))  # type: ignore[arg-type]
    with pytest.raises(InvalidGenerationRequest, match=message):
        await collect(stream)


async def test_full_vocabulary_model_matches_recompute(
    full_vocab_generator: TransformersGenerator,
) -> None:
    prompt = [200006, 17360, 200008, 12, 345, 6789, 200007, 200006, 173781]
    stream = full_vocab_generator.generate(greedy(prompt, 5, cache_key="full"))
    tokens = await collect(stream)
    assert tokens == greedy_reference(full_vocab_generator, prompt, 5)
    follow = [*prompt, *tokens, 200006, 1428]
    again = full_vocab_generator.generate(greedy(follow, 5, cache_key="full"))
    assert await collect(again) == greedy_reference(full_vocab_generator, follow, 5)
    assert again.usage.cached_tokens == len(prompt) + len(tokens) - 1


@pytest.mark.parametrize(
    ("rows", "positions"),
    [([1, 2], [5, 3]), ([2, 0], [5, 3]), ([1, 1, 1], [3, 4, 5]), ([2, 2, 0], [4, 5, 2])],
    ids=["consecutive", "scattered", "one-row-run", "a-run-and-a-row"],
)
def test_a_pass_writes_each_token_into_its_rows_slot(rows: list[int], positions: list[int]) -> None:
    """Each token's keys and values land in its own row's slot at its position;
    attention is handed the rows from the pass's first to its last, as a view of the
    cache, up to the newest token."""
    config = GptOssConfig(
        vocab_size=64, hidden_size=16, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, sliding_window=4,
    )  # fmt: skip
    cache = SlotCache(
        config, num_slots=3, length=16, device=torch.device("cpu"), dtype=torch.float32
    )
    for layer in (*cache.keys, *cache.values):
        layer.copy_(torch.randn(layer.shape))
    step = _StepCache(cache, rows, positions, {"full_attention": 0, "sliding_attention": 0})
    new_keys, new_values = torch.randn(1, 1, len(rows), 8), torch.randn(1, 1, len(rows), 8)
    keys, values = step.update(new_keys, new_values, 0)
    first, end = min(rows), max(positions) + 1
    assert keys.shape == (max(rows) + 1 - first, 1, end, 8)
    for token, (row, position) in enumerate(zip(rows, positions, strict=True)):
        assert torch.equal(cache.keys[0][row, :, position], new_keys[0, :, token])
        assert torch.equal(cache.values[0][row, :, position], new_values[0, :, token])
        assert torch.equal(keys[row - first], cache.keys[0][row, :, :end])
        assert torch.equal(values[row - first], cache.values[0][row, :, :end])
    assert keys.data_ptr() == cache.keys[0][first].data_ptr()
