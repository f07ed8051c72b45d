"""Offline accuracy of a demo checkpoint: the generation loop in this process, with a
local Python process standing in for the sandbox.

    python -m model_runner.demo.evaluate --checkpoint DIR [--count 40] [--kernel-python PY]

The prompts come from ``EVAL_SEED``, which no training batch draws from. Each turn runs
the service's loop: render the conversation, decode greedily until ``<|call|>`` or
``<|return|>``, run the code and append its output as the service would, again. A
conversation is right when every turn's final answer quotes the real values (and, for
the file family, the file holds what was asked for). ``bench/eval_demo.py`` measures the
same through the real Responses API and the real sandbox; this script is for training.

``--kernel-python`` must have numpy, pandas and matplotlib (the sandbox's stack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from openai_harmony import Message, Role

from model_runner.demo import data, local_kernel
from model_runner.generator import GenerationRequest, Generator
from model_runner.harmony import (
    HarmonyRenderer,
    ToolObservation,
    format_tool_output,
    tool_output_message,
    user_message,
)

MAX_CALLS_PER_TURN = 3
MAX_TOKENS_PER_MESSAGE = 400


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
    calls: list[str]
    outputs: list[str]


async def _complete(
    generator: Generator, renderer: HarmonyRenderer, prompt: list[int]
) -> list[int]:
    request = GenerationRequest(
        prompt_tokens=prompt,
        max_tokens=MAX_TOKENS_PER_MESSAGE,
        stop_tokens=renderer.stop_tokens,
        temperature=0.0,
    )
    return [token async for token in generator.generate(request)]


async def run_turn(
    generator: Generator,
    renderer: HarmonyRenderer,
    history: list[Message],
    user: str,
    kernel: Kernel,
) -> tuple[str, list[str], list[str]]:
    """The service's loop for one response; appends what it shows the model to
    ``history`` and returns the final answer, the code sent and the outputs shown."""
    history.append(user_message(user))
    calls: list[str] = []
    outputs: list[str] = []
    for _ in range(MAX_CALLS_PER_TURN + 1):
        completion = await _complete(generator, renderer, renderer.render_prompt(history))
        try:
            messages = renderer.encoding.parse_messages_from_completion_tokens(
                completion, Role.ASSISTANT
            )
        except Exception:
            return "", calls, outputs  # not valid harmony: the turn fails
        history.extend(messages)
        if not messages:
            return "", calls, outputs
        last = messages[-1]
        text = "".join(getattr(part, "text", "") for part in last.content)
        if last.recipient == "python" and completion[-1] == renderer.call_token:
            if len(calls) == MAX_CALLS_PER_TURN:
                break
            calls.append(text)
            output = format_tool_output(kernel.run(text))
            outputs.append(output)
            history.append(tool_output_message(output))
            continue
        if last.channel == "final":
            return text, calls, outputs
        # Reasoning only, or a message cut short: nothing to answer with.
        break
    return "", calls, outputs


def check_turn(
    conversation: data.Conversation, index: int, answer: str, kernel: LocalKernel
) -> bool:
    turn = conversation.turns[index]
    if not all(expected in answer for expected in turn.expected):
        return False
    if conversation.family == "file":
        path = kernel.root / Path(turn.expected[0]).name
        return path.is_file() and path.read_text() == data.file_contents(conversation)
    return True


async def evaluate_conversation(
    generator: Generator, renderer: HarmonyRenderer, conversation: data.Conversation, python: str
) -> list[TurnResult]:
    kernel = LocalKernel(python, conversation.files)
    try:
        history = conversation.messages(upto_turn=0)
        results = []
        for index, turn in enumerate(conversation.turns):
            answer, calls, outputs = await run_turn(generator, renderer, history, turn.user, kernel)
            ok = check_turn(conversation, index, answer, kernel)
            results.append(TurnResult(ok, answer, calls, outputs))
        return results
    finally:
        kernel.close()


async def evaluate(
    generator: Generator,
    conversations: Sequence[data.Conversation],
    python: str,
    verbose: bool = False,
) -> dict[str, dict[str, float]]:
    renderer = HarmonyRenderer()
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for conversation in conversations:
        results = await evaluate_conversation(generator, renderer, conversation, python)
        ok = all(result.ok for result in results)
        total[conversation.family] += 1
        right[conversation.family] += ok
        if verbose and not ok:
            for turn, result in zip(conversation.turns, results, strict=True):
                print(
                    json.dumps(
                        {
                            "family": conversation.family,
                            "user": turn.user,
                            "expected": turn.expected,
                            "calls": result.calls,
                            "outputs": result.outputs,
                            "answer": result.answer,
                        }
                    ),
                    file=sys.stderr,
                )
    return {
        family: {
            "accuracy": right[family] / total[family],
            "right": right[family],
            "n": total[family],
        }
        for family in total
    }


def load_checkpoint(source: str) -> Generator:
    """The checkpoint exactly as the service loads it (``load_generator``: the
    transformers backend with the checkpoint's token map), on the CPU."""
    from model_runner.loading import load_generator

    return load_generator(source, device="cpu", cache_budget_bytes=0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", default="demo", help="a folder, or 'demo' for the shipped one"
    )
    parser.add_argument("--count", type=int, default=40, help="conversations per family")
    parser.add_argument("--seed", type=int, default=data.EVAL_SEED)
    parser.add_argument("--kernel-python", default=sys.executable)
    parser.add_argument("--families", nargs="*", default=list(data.FAMILIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="print failures to stderr")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    generator = load_checkpoint(args.checkpoint)
    conversations = data.conversations(args.seed, args.count * len(args.families), args.families)
    started = time.monotonic()
    table = asyncio.run(evaluate(generator, conversations, args.kernel_python, args.verbose))
    print(
        json.dumps(
            {
                "mode": "offline (in-process generation, local Python kernel)",
                "checkpoint": str(args.checkpoint),
                "seed": args.seed,
                "families": table,
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
