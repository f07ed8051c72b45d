"""Test doubles, clearly named as such. ``ScriptedGenerator`` stands in for a real model
(a 20B model cannot run here) behind the same ``Generator`` interface: it plays given
harmony completions token by token, so the real Responses loop, harmony parsing and
sandboxes run around it. The real transformers path is tested in tests/model_runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.harmony import load_encoding


class ScriptedGenerator:
    """Plays ``completions`` in order, one per ``generate`` call, and records the prompts.

    A completion is an exception to raise (as a runner does for a prompt it refuses), or
    harmony text as the model would write it after ``<|start|>assistant``,
    e.g. ``"<|channel|>analysis to=python code<|message|>print(1)<|call|>"``. It is cut at
    ``max_tokens`` like a real model's output.
    """

    name = "scripted-double"
    default_temperature = 1.0

    def __init__(
        self,
        completions: list[str | Exception],
        token_delay_s: float = 0.0,
        concurrency: int = 4,
        max_context: int | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.max_context = max_context
        self.encoding = load_encoding()
        self.completions = list(completions)
        self.prompts: list[list[int]] = []
        self.requests: list[GenerationRequest] = []
        self.token_delay_s = token_delay_s
        self.cancelled = 0

    def generate(self, request: GenerationRequest) -> GenerationStream:
        self.prompts.append(list(request.prompt_tokens))
        self.requests.append(request)
        text = (
            self.completions.pop(0)
            if self.completions
            else "<|channel|>final<|message|>(script ended)<|return|>"
        )
        usage = GenerationUsage(prompt_tokens=len(request.prompt_tokens))
        if isinstance(text, Exception):
            return GenerationStream(self._fail(text), usage)
        tokens = self.encoding.encode(text, allowed_special="all")[: request.max_tokens]
        return GenerationStream(self._play(tokens, request.stop_tokens), usage)

    async def _play(self, tokens: list[int], stop: frozenset[int]) -> AsyncIterator[int]:
        try:
            for token in tokens:
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                yield token
                if token in stop:
                    return
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 1
            raise

    async def _fail(self, error: Exception) -> AsyncIterator[int]:
        raise error
        yield  # an async generator that raises when first iterated, as runners do

    def prompt_text(self, index: int = -1) -> str:
        return self.encoding.decode(self.prompts[index])


def python_call(code: str) -> str:
    return f"<|channel|>analysis to=python code<|message|>{code}<|call|>"


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"
