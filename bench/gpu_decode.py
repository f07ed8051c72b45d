"""Decode speed and time to first token of the model runner, on one device.

Runs the real generation path (``load_generator`` -> ``TransformersGenerator``, its
worker thread, its prefix cache) on a gpt-oss model with random weights, which decodes
at the speed real weights would, and prints JSON:

- batch-1 decode tokens/s,
- time to first token (TTFT) for 1k- and 4k-token prompts, nothing cached,
- TTFT of a follow-up turn that adds 200 tokens to a cached 4k context,
- batched decode: B generations at once (``--batch-sizes``), their aggregate tokens/s
  and the time of one step of the batch;
- the same while follow-up turns arrive one after another (each ``--follow-up-tokens``
  new tokens on a cached context, as a tool's output is), whose chunks share the
  decoding rows' passes: the decoders' step time and the follow-ups' time to first
  token.

Prompts longer than the model's context (the demo model's is 2,048) are left out.

    python bench/gpu_decode.py                                   # random:gpt-oss-20b on cuda
    python bench/gpu_decode.py --model random:tiny --device cpu  # smoke run anywhere
    python bench/gpu_decode.py --model demo --device cpu --threads 1 --batch-sizes 1,8,16

Prints figures only; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from model_runner.generator import GenerationRequest
from model_runner.loading import load_generator
from model_runner.transformers_backend import TransformersGenerator

#: Random prompts draw from ordinary text ids, below harmony's special tokens.
PLAIN_ID_LIMIT = 199_998


def card_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"


class Bench:
    def __init__(self, generator: TransformersGenerator, seed: int) -> None:
        self.generator = generator
        self.rng = random.Random(seed)
        self.turn = 0
        # A vocabulary-subset model (the demo) reads any id outside its map as one
        # "unknown" id: draw from the ids it knows, or every prompt would be that one.
        known = generator.token_map.original_ids if generator.token_map else None
        self.ids = [i for i in known if i < PLAIN_ID_LIMIT] if known else None
        if self.ids == []:
            raise SystemExit("the model's token map holds no plain text ids to draw from")

    def prompt(self, length: int) -> list[int]:
        if self.ids is not None:
            return [self.rng.choice(self.ids) for _ in range(length)]
        return [self.rng.randrange(PLAIN_ID_LIMIT) for _ in range(length)]

    def key(self) -> str:
        # A fresh key per measurement: nothing cached unless a test means it to be.
        self.turn += 1
        return f"bench-{self.turn}"

    async def time_tokens(
        self, prompt: list[int], max_tokens: int, cache_key: str
    ) -> tuple[list[float], list[int], int]:
        """Seconds from the request to each token, the tokens, and the cached count."""
        request = GenerationRequest(
            prompt_tokens=prompt,
            max_tokens=max_tokens,
            stop_tokens=frozenset(),
            temperature=0.0,
            cache_key=cache_key,
        )
        start = time.perf_counter()
        stream = self.generator.generate(request)
        times: list[float] = []
        tokens: list[int] = []
        async for token in stream:
            times.append(time.perf_counter() - start)
            tokens.append(token)
        return times, tokens, stream.usage.cached_tokens

    async def ttft(self, length: int, repeats: int) -> dict[str, Any]:
        samples = []
        for _ in range(repeats):
            times, _, cached = await self.time_tokens(self.prompt(length), 1, self.key())
            samples.append(times[0])
        return summary(samples, prompt_tokens=length, cached_tokens=cached)

    async def follow_up_ttft(self, context: int, added: int, repeats: int) -> dict[str, Any]:
        samples = []
        cached_counts = []
        for _ in range(repeats):
            key = self.key()
            first_prompt = self.prompt(context)
            _, tokens, _ = await self.time_tokens(first_prompt, 1, key)
            follow = [*first_prompt, *tokens, *self.prompt(added)]
            times, _, cached = await self.time_tokens(follow, 1, key)
            samples.append(times[0])
            cached_counts.append(cached)
        return summary(samples, prompt_tokens=context + 1 + added, cached_tokens=min(cached_counts))

    async def decode(self, prompt_length: int, tokens: int) -> dict[str, Any]:
        times, out, _ = await self.time_tokens(self.prompt(prompt_length), tokens, self.key())
        decode_s = times[-1] - times[0]
        return {
            "tokens_per_s": round((len(out) - 1) / decode_s, 2) if decode_s > 0 else None,
            "completion_tokens": len(out),
            "prompt_tokens": prompt_length,
            "ttft_s": round(times[0], 4),
        }

    async def batched_decode(self, rows: int, prompt_length: int, tokens: int) -> dict[str, Any]:
        """``rows`` generations at once, after all of them have prefilled."""
        runs = await asyncio.gather(
            *(self.time_tokens(self.prompt(prompt_length), tokens, self.key()) for _ in range(rows))
        )
        return {"rows": rows, **steps_of([times for times, _, _ in runs])}

    async def decode_with_follow_ups(
        self, rows: int, prompt_length: int, tokens: int, added: int
    ) -> dict[str, Any]:
        """``rows`` generations decoding while follow-up turns of one more conversation
        arrive one after another, each ``added`` new tokens on its cached context."""
        key = self.key()
        context = self.prompt(prompt_length)
        _, first, _ = await self.time_tokens(context, 1, key)
        # Two turns that differ after the shared context, alternating: each prefills only
        # its ``added`` tokens (the slot is cut back to the common part).
        turns = [[*context, *first, *self.prompt(added)] for _ in range(2)]
        follow_ups: list[float] = []
        cached: list[int] = []
        done = asyncio.Event()

        async def follow_up_loop() -> None:
            while not done.is_set():
                times, _, hit = await self.time_tokens(turns[len(follow_ups) % 2], 1, key)
                follow_ups.append(times[0])
                cached.append(hit)

        follower = asyncio.create_task(follow_up_loop())
        runs = await asyncio.gather(
            *(self.time_tokens(self.prompt(prompt_length), tokens, self.key()) for _ in range(rows))
        )
        done.set()
        await follower
        return {
            "rows": rows,
            **steps_of([times for times, _, _ in runs]),
            "follow_up_tokens": added,
            "follow_ups": len(follow_ups),
            "follow_up_cached_tokens": min(cached),
            "follow_up_ttft_median_ms": round(statistics.median(follow_ups) * 1000, 2),
        }


def steps_of(runs: list[list[float]]) -> dict[str, Any]:
    """Aggregate tokens/s and time per step of generations that ran at once, given each
    one's token times: from the moment the last one has its first token (every one then
    decodes) until the first one is done, a window in which all of them are in the
    batch."""
    rows = len(runs)
    start = max(times[0] for times in runs)
    end = min(times[-1] for times in runs)
    produced = sum(sum(1 for t in times if start < t <= end) for times in runs)
    window = end - start
    if window <= 0:
        return {"tokens_per_s": None, "ms_per_step": None}
    return {
        "tokens_per_s": round(produced / window, 1),
        "ms_per_step": round(window / max(1, produced / rows) * 1000, 2),
    }


def summary(samples: list[float], **fields: Any) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 4),
        "samples_s": [round(s, 4) for s in samples],
        **fields,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = time.perf_counter()
    generator = load_generator(
        args.model,
        device=args.device,
        cache_budget_bytes=int(args.cache_budget_gb * 1024**3),
    )
    if not isinstance(generator, TransformersGenerator):
        raise SystemExit("this benchmark runs a local model: give a random:, demo or folder spec")
    load_s = time.perf_counter() - load_start
    bench = Bench(generator, args.seed)

    # Warm up kernels and allocators so the first measurement is not the slowest.
    await bench.time_tokens(bench.prompt(64), 4, bench.key())

    result: dict[str, Any] = {
        "card": card_name(args.device),
        "model": generator.name,
        "dtype": str(next(generator.model.parameters()).dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in generator.model.parameters()),
        "attention": generator.model.config._attn_implementation,
        "experts": getattr(generator.model.config, "_experts_implementation", None),
        "load_s": round(load_s, 2),
        "torch": torch.__version__,
    }
    result["decode"] = await bench.decode(args.decode_prompt_tokens, args.decode_tokens)
    context = generator.max_context
    if context > 1024:
        result["ttft_1k"] = await bench.ttft(1024, args.repeats)
    if context > 4096 + 201:
        result["ttft_4k"] = await bench.ttft(4096, args.repeats)
        result["ttft_follow_up_4k_plus_200"] = await bench.follow_up_ttft(4096, 200, args.repeats)
    result["batched_decode"] = [
        await bench.batched_decode(rows, args.decode_prompt_tokens, args.decode_tokens)
        for rows in (int(b) for b in args.batch_sizes.split(","))
    ]
    if args.follow_up_tokens:
        result["decode_with_follow_ups"] = [
            await bench.decode_with_follow_ups(
                rows, args.decode_prompt_tokens, args.decode_tokens, args.follow_up_tokens
            )
            for rows in (int(b) for b in args.batch_sizes.split(","))
            # The follow-ups' conversation is one more row: it must not queue for a slot.
            if rows < generator.concurrency
        ]
    if torch.device(args.device).type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    result["kv_slots"] = len(generator.slots.slots)
    result["kv_slots_mib"] = round(generator.slots.nbytes / 1024**2, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:gpt-oss-20b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--decode-tokens", type=int, default=256)
    parser.add_argument("--decode-prompt-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="TTFT samples per figure")
    parser.add_argument("--cache-budget-gb", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads")
    parser.add_argument(
        "--batch-sizes", default="1,8,32", help="generations decoding at once, for each figure"
    )
    parser.add_argument(
        "--follow-up-tokens", type=int, default=24,
        help="new tokens of each follow-up turn sent while the batch decodes (0: none)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
