"""Test doubles, clearly named as such. ``ScriptedGenerator`` stands in for a real model
(a 20B model cannot run here) behind the same ``Generator`` interface: it plays given
harmony completions token by token, so the real Responses loop, harmony parsing and
sandboxes run around it. The real transformers path is tested in tests/model_runner."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import uvicorn

from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.harmony import load_encoding
from model_runner.server import create_app
from model_runner.startup import WARM_UP_PROMPT


@dataclass
class Paused:
    """A completion that stops after ``before`` until the test sets ``gate`` (or the
    generation is cancelled), then plays ``after``: a response held under way for as
    long as a test needs, without a clock. ``reached`` is set once ``before`` is out."""

    before: str
    after: str
    gate: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class ScriptedGenerator:
    """Plays ``completions`` in order, one per ``generate`` call, and records the prompts.

    A completion is an exception to raise (as a runner does for a prompt it refuses),
    harmony text as the model would write it after ``<|start|>assistant``,
    e.g. ``"<|channel|>analysis to=python code<|message|>print(1)<|call|>"``, or
    ``Paused`` text. It is cut at ``max_tokens`` like a real model's output.

    A service started with ``python -m interpreter serve`` asks its model for one token of
    a new conversation whose user says "Hi" before it serves (``ResponsesService.warm_up``).
    That request is no turn of a test's conversation: it is answered with one token,
    counted in ``warm_ups``, and takes nothing from the script.
    """

    name = "scripted-double"
    default_temperature = 1.0

    def __init__(
        self,
        completions: list[str | Exception | Paused],
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
        self.warm_ups = 0

    def generate(self, request: GenerationRequest) -> GenerationStream:
        if request.max_tokens == 1 and self._is_warm_up(request.prompt_tokens):
            self.warm_ups += 1
            one = self.encoding.encode("Hello")[:1]
            usage = GenerationUsage(prompt_tokens=len(request.prompt_tokens))
            return GenerationStream(self._play(one, frozenset()), usage)
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
        if isinstance(text, Paused):
            before = self.encoding.encode(text.before, allowed_special="all")
            after = self.encoding.encode(text.after, allowed_special="all")
            tokens, pause = (before + after)[: request.max_tokens], (len(before), text)
        else:
            tokens, pause = self.encoding.encode(text, allowed_special="all"), None
        return GenerationStream(
            self._play(tokens[: request.max_tokens], request.stop_tokens, pause), usage
        )

    def _is_warm_up(self, prompt: list[int]) -> bool:
        """The warm-up's prompt: a new conversation whose user says "Hi"."""
        return self.encoding.decode(prompt).endswith(WARM_UP_PROMPT)

    async def _play(
        self, tokens: list[int], stop: frozenset[int], pause: tuple[int, Paused] | None = None
    ) -> AsyncIterator[int]:
        try:
            for index, token in enumerate(tokens):
                if pause is not None and index == pause[0]:
                    pause[1].reached.set()
                    # In short waits, so that a cancelled generation stops at once.
                    while not await asyncio.to_thread(pause[1].gate.wait, 0.05):
                        pass
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


@contextlib.contextmanager
def served_over_http(double: ScriptedGenerator) -> Iterator[str]:
    """``double`` behind the model runner's own HTTP app (``model_runner.server``), from a
    thread of the test process: a service in another process uses it as a served engine
    (``INTERPRETER_MODEL=http://...``), and it outlives that service being killed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(double), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the double did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
