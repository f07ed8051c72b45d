"""Offline accuracy of a demo checkpoint: the generation loop in this process, with a
local Python process standing in for the sandbox.

    python -m model_runner.demo.evaluate --checkpoint DIR [--count 40] [--kernel-python PY]

Three sets, all drawn from ``EVAL_SEED`` (a stream no training step draws from) with the
phrasings and out-of-scope prompts of ``heldout``, which training never sees:

- ``families``: ``--count`` conversations per family, each a fresh conversation (the
  state family: set a variable, then use it in a second response);
- ``long``: ``--long-count`` conversations of ``--long-turns`` turns mixing the families
  and out-of-scope requests in any order, with hand-written cells before some turns and
  questions about variables set turns earlier; reported per turn position;
- ``out_of_scope``: each of the 50 out-of-scope prompts as a fresh conversation.

Each turn runs the service's loop: render the conversation, decode greedily until
``<|call|>`` or ``<|return|>``, run the code and append its output as the service would,
again. A turn is right when its final answer quotes the real values (the file family's
file holds what was asked for; the plot family showed an image); an out-of-scope turn is
right when its answer is exactly ``CANNOT_DO`` and no code ran. A history longer than the
context loses its oldest whole turns first, as the service's ``truncation: "auto"`` does.

``--phrasings train`` with ``--seed VALIDATION_SEED`` measures the training distribution
instead (for pilots; never for the tables). ``--kernel-python`` must have numpy, pandas
and matplotlib (the sandbox's stack). ``bench/eval_demo.py`` measures the same sets
through the real Responses API and the real sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from openai_harmony import Message, Role

from model_runner.demo import data, heldout, local_kernel
from model_runner.generator import GenerationRequest, Generator
from model_runner.harmony import (
    HarmonyRenderer,
    ToolObservation,
    format_tool_output,
    python_call_message,
    tool_output_message,
    user_message,
)

MAX_CALLS_PER_TURN = 3
MAX_TOKENS_PER_MESSAGE = 400
CONTEXT = 2048


class Kernel(Protocol):
    """Where the model's code runs: the real sandbox stands behind the API; here, a
    local Python process."""

    def run(self, code: str) -> ToolObservation: ...


class LocalKernel:
    """One child Python process per conversation: state lasts across turns."""

    def __init__(self, python: str, files: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="demo-eval-")
        self.root = Path(self._dir.name)
        for name, text in files.items():
            (self.root / name).write_text(text)
        self._process = subprocess.Popen(
            [python, local_kernel.__file__, str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def run(self, code: str) -> ToolObservation:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"code": code}) + "\n")
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        return ToolObservation(
            text=reply["text"],
            images=reply["images"],
            error=reply["error"],
            new_files=tuple(reply["new_files"]),
        )

    def read(self, name: str) -> str | None:
        path = self.root / name
        return path.read_text() if path.is_file() else None

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()
        self._dir.cleanup()


@dataclass
class TurnResult:
    ok: bool
    answer: str
    calls: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    images: int = 0


def truncate(
    renderer: HarmonyRenderer, prefix: list[Message], turns: list[list[Message]]
) -> list[int]:
    """The prompt for the newest turn, without the oldest whole turns that do not fit
    (a turn: a user's message and everything after it up to the next one)."""
    for first in range(len(turns)):
        messages = prefix + [m for turn in turns[first:] for m in turn]
        prompt = renderer.render_prompt(messages)
        if len(prompt) + MAX_TOKENS_PER_MESSAGE <= CONTEXT or first == len(turns) - 1:
            return prompt
    raise AssertionError("unreachable")


async def _complete(
    generator: Generator, renderer: HarmonyRenderer, prompt: list[int], cache_key: str
) -> list[int]:
    request = GenerationRequest(
        prompt_tokens=prompt,
        max_tokens=min(MAX_TOKENS_PER_MESSAGE, CONTEXT - len(prompt)),
        stop_tokens=renderer.stop_tokens,
        temperature=0.0,
        cache_key=cache_key,
    )
    return [token async for token in generator.generate(request)]


async def run_turn(
    generator: Generator,
    renderer: HarmonyRenderer,
    prefix: list[Message],
    turns: list[list[Message]],
    user: str,
    kernel: Kernel,
    cells: Sequence[data.HandCell] = (),
    cache_key: str = "",
) -> TurnResult:
    """The service's loop for one response. ``turns`` holds the earlier turns' messages
    (it gains this one's); the hand cells run in the kernel first and are shown as the
    chat page sends them."""
    current: list[Message] = []
    for cell in cells:
        logs = kernel.run(cell.code)
        current += [python_call_message(cell.code), tool_output_message(logs.text)]
    current.append(user_message(user))
    turns.append(current)
    result = TurnResult(ok=False, answer="")
    for _ in range(MAX_CALLS_PER_TURN + 1):
        prompt = truncate(renderer, prefix, turns)
        completion = await _complete(generator, renderer, prompt, cache_key)
        try:
            messages = renderer.encoding.parse_messages_from_completion_tokens(
                completion, Role.ASSISTANT
            )
        except Exception:
            return result  # not valid harmony: the turn fails
        current.extend(messages)
        if not messages:
            return result
        last = messages[-1]
        text = "".join(getattr(part, "text", "") for part in last.content)
        if last.recipient == "python" and completion[-1] == renderer.call_token:
            if len(result.calls) == MAX_CALLS_PER_TURN:
                break
            result.calls.append(text)
            observation = kernel.run(text)
            result.images += observation.images
            output = format_tool_output(observation)
            result.outputs.append(output)
            current.append(tool_output_message(output))
            continue
        if last.channel == "final":
            result.answer = text
            return result
        # Reasoning only, or a message cut short: nothing to answer with.
        break
    return result


def check_turn(turn: data.Turn, result: TurnResult, kernel: LocalKernel) -> bool:
    if turn.family == data.OUT_OF_SCOPE:
        return not result.calls and result.answer.strip() == data.CANNOT_DO
    if not result.calls or not all(expected in result.answer for expected in turn.expected):
        return False
    if turn.file is not None:
        name, contents = turn.file
        return kernel.read(name) == contents
    if turn.family == "plot":
        return result.images > 0
    return True


async def evaluate_conversation(
    generator: Generator,
    renderer: HarmonyRenderer,
    conversation: data.Conversation,
    python: str,
    cache_key: str = "",
) -> list[TurnResult]:
    kernel = LocalKernel(python, conversation.files)
    try:
        prefix = conversation.prefix()
        turns: list[list[Message]] = []
        results = []
        for turn in conversation.turns:
            result = await run_turn(
                generator, renderer, prefix, turns, turn.user, kernel, turn.cells, cache_key
            )
            result.ok = check_turn(turn, result, kernel)
            results.append(result)
        return results
    finally:
        kernel.close()


@dataclass(frozen=True)
class EvaluationSet:
    """The conversations of one evaluation, drawn from one seed."""

    families: list[data.Conversation]
    long: list[data.Conversation]
    out_of_scope: list[data.Conversation]


def evaluation_set(
    seed: int = data.EVAL_SEED,
    count: int = 40,
    long_count: int = 40,
    long_turns: int = 10,
    held_out: bool = True,
    families: Sequence[str] = data.FAMILIES,
) -> EvaluationSet:
    """The held-out phrasings and prompts (or, for pilots, the training ones)."""
    phrasings = heldout.PHRASINGS if held_out else data.PHRASINGS
    rng = random.Random(seed)
    family_set = [
        data.family_conversation(rng, families[i % len(families)], phrasings, casual=not held_out)
        for i in range(count * len(families))
    ]
    if held_out:
        prompts: Sequence[str] = heldout.OUT_OF_SCOPE
    else:
        prompts = [data.out_of_scope_prompt(rng) for _ in range(50)]
    long_set = [
        data.mixed_conversation(rng, long_turns, phrasings, prompts, casual=not held_out)
        for _ in range(long_count)
    ]
    oos_set = [
        data.Conversation(
            data.OUT_OF_SCOPE,
            (data.out_of_scope(rng, prompt),),
            data._system(rng),
            data._instructions(rng),
        )
        for prompt in prompts
    ]
    return EvaluationSet(family_set, long_set, oos_set)


def _table(right: dict[str, int], total: dict[str, int]) -> dict[str, dict[str, float]]:
    return {
        key: {"accuracy": round(right[key] / total[key], 4), "right": right[key], "n": total[key]}
        for key in total
    }


def _trace(conversation: data.Conversation, results: list[TurnResult]) -> str:
    return json.dumps(
        {
            "family": conversation.family,
            "turns": [
                {
                    "position": index + 1,
                    "ok": result.ok,
                    "family": turn.family,
                    "user": turn.user,
                    "expected": turn.expected,
                    "reference_code": turn.code,
                    "calls": result.calls,
                    "outputs": result.outputs,
                    "answer": result.answer,
                }
                for index, (turn, result) in enumerate(
                    zip(conversation.turns, results, strict=True)
                )
            ],
        }
    )


async def evaluate(
    generator: Generator,
    sets: EvaluationSet,
    python: str,
    failures: Path | None = None,
) -> dict[str, object]:
    renderer = HarmonyRenderer()
    log = failures.open("w") if failures else None
    report: dict[str, object] = {}
    try:
        right: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        for index, conversation in enumerate(sets.families):
            results = await evaluate_conversation(
                generator, renderer, conversation, python, f"f{index}"
            )
            ok = all(result.ok for result in results)
            total[conversation.family] += 1
            right[conversation.family] += ok
            if log and not ok:
                print(_trace(conversation, results), file=log, flush=True)
        if total:
            report["families"] = _table(right, total)

        by_position: dict[str, int] = defaultdict(int)
        position_total: dict[str, int] = defaultdict(int)
        by_family: dict[str, int] = defaultdict(int)
        family_total: dict[str, int] = defaultdict(int)
        for index, conversation in enumerate(sets.long):
            results = await evaluate_conversation(
                generator, renderer, conversation, python, f"l{index}"
            )
            for position, (turn, result) in enumerate(
                zip(conversation.turns, results, strict=True), start=1
            ):
                position_total[str(position)] += 1
                by_position[str(position)] += result.ok
                family_total[turn.family] += 1
                by_family[turn.family] += result.ok
            if log and not all(result.ok for result in results):
                print(_trace(conversation, results), file=log, flush=True)
        if position_total:
            report["long_by_position"] = _table(by_position, position_total)
            report["long_by_family"] = _table(by_family, family_total)

        oos_right = 0
        for index, conversation in enumerate(sets.out_of_scope):
            results = await evaluate_conversation(
                generator, renderer, conversation, python, f"o{index}"
            )
            oos_right += results[0].ok
            if log and not results[0].ok:
                print(_trace(conversation, results), file=log, flush=True)
        if sets.out_of_scope:
            n = len(sets.out_of_scope)
            report["out_of_scope"] = {
                "accuracy": round(oos_right / n, 4),
                "right": oos_right,
                "n": n,
            }
    finally:
        if log:
            log.close()
    return report


def load_checkpoint(source: str) -> Generator:
    """The checkpoint exactly as the service loads it (``load_generator``: the
    transformers backend with the checkpoint's token map), on the CPU."""
    from model_runner.loading import load_generator

    return load_generator(source, device="cpu", cache_budget_bytes=256 * 1024**2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", default="demo", help="a folder, or 'demo' for the shipped one"
    )
    parser.add_argument("--count", type=int, default=40, help="conversations per family")
    parser.add_argument("--long-count", type=int, default=40)
    parser.add_argument("--long-turns", type=int, default=10)
    parser.add_argument("--skip-out-of-scope", action="store_true")
    parser.add_argument("--seed", type=int, default=data.EVAL_SEED)
    parser.add_argument(
        "--phrasings", choices=("heldout", "train"), default="heldout",
        help="train: the training phrasings (pilots on VALIDATION_SEED only)",
    )  # fmt: skip
    parser.add_argument("--kernel-python", default=sys.executable)
    parser.add_argument("--families", nargs="*", default=list(data.FAMILIES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--failures", type=Path, help="write failed conversations here (JSONL)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    generator = load_checkpoint(args.checkpoint)
    sets = evaluation_set(
        args.seed, args.count, args.long_count, args.long_turns, args.phrasings == "heldout",
        args.families,
    )  # fmt: skip
    if args.skip_out_of_scope:
        sets = EvaluationSet(sets.families, sets.long, [])
    started = time.monotonic()
    report = asyncio.run(evaluate(generator, sets, args.kernel_python, args.failures))
    print(
        json.dumps(
            {
                "mode": "offline (in-process generation, local Python kernel)",
                "checkpoint": str(args.checkpoint),
                "seed": args.seed,
                "phrasings": args.phrasings,
                **report,
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
