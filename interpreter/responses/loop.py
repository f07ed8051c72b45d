"""The model/tool loop: render the conversation, generate, parse, run the model's python
calls, feed their outputs back, until the model answers.

It knows harmony and the ``Generator``, not any wire format: it yields ``events`` that
the Responses API (and any other front-end) turns into its own. Each model call holds a
place in the admission gate only while it generates; the tool runs outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from openai_harmony import Message

from interpreter.responses.code_tool import CodeTool
from interpreter.responses.conversation import split_turns
from interpreter.responses.events import (
    ItemDelta,
    ItemDone,
    ItemStarted,
    LoopEvent,
    ToolRefused,
    ToolRunning,
    TurnFailed,
    TurnIncomplete,
    Usage,
)
from interpreter.responses.scheduler import BACKGROUND, AdmissionGate
from model_runner.generator import GenerationRequest, Generator
from model_runner.harmony import (
    PYTHON_TOOL,
    ContentDelta,
    HarmonyParseError,
    HarmonyRenderer,
    MessageDone,
    MessageStarted,
    ParseEvent,
    PromptTokens,
    tool_output_message,
)

TOOL_LIMIT_NOTE = "[No more tool calls are allowed in this response: answer with what you have.]"

#: Tokens a prompt must leave free in the model's context for the completion to start.
MIN_COMPLETION_ROOM = 16


class ContextOverflow(Exception):
    """The conversation does not fit the model's context (and may not be truncated)."""

    def __init__(self, prompt_tokens: int, context: int) -> None:
        super().__init__(
            f"The conversation is {prompt_tokens} tokens long; the model's context is "
            f"{context}. Send truncation='auto' to drop the oldest turns, or start a new "
            "conversation."
        )
        self.prompt_tokens = prompt_tokens
        self.context = context


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class ModelTurn:
    """One turn as the loop sees it: the conversation so far, and its limits.

    ``prefix`` (system and developer messages) and ``history`` (earlier turns) are
    replayed as they are; ``new_messages`` starts with this turn's input and grows with
    what the model and the tool add.
    """

    prefix: list[Message]
    history: list[Message]
    new_messages: list[Message]
    sampling: Sampling
    max_output_tokens: int
    max_tool_calls: int
    cache_key: str | None
    priority: int
    #: Drop the oldest turns of ``history`` when the prompt outgrows the model's context.
    truncate: bool = False
    usage: Usage = field(default_factory=Usage)
    #: The prompt as last rendered: each model call renders only what is new since.
    rendered: PromptTokens | None = field(default=None, repr=False, compare=False)


class ModelToolLoop:
    def __init__(
        self, generator: Generator, gate: AdmissionGate, renderer: HarmonyRenderer
    ) -> None:
        self.generator = generator
        self.gate = gate
        self.renderer = renderer

    def prompt_of(self, turn: ModelTurn) -> list[int]:
        if turn.rendered is None:
            turn.rendered = PromptTokens(self.renderer)
        return turn.rendered.render(turn.prefix + turn.history + turn.new_messages)

    def fit(self, turn: ModelTurn) -> list[int]:
        """The turn's prompt, made to fit the model's context: with ``truncate``, the
        oldest turns of the history are dropped (the kernel keeps their state); without,
        an overflow raises ``ContextOverflow``.

        Truncation cuts down to three quarters of the context rather than just under
        it, so the next few turns start from the same point and keep their prefix cache.
        """
        prompt = self.prompt_of(turn)
        context = self.generator.max_context
        if context is None:
            return prompt
        room = min(context // 8, 256) if turn.truncate else MIN_COMPLETION_ROOM
        if len(prompt) <= context - room:
            return prompt
        if turn.truncate:
            turns = split_turns(turn.history)
            while turns and len(prompt) > context * 3 // 4:
                turns.pop(0)
                turn.history = [m for t in turns for m in t]
                prompt = self.prompt_of(turn)
        if len(prompt) > context - MIN_COMPLETION_ROOM:
            raise ContextOverflow(len(prompt), context)
        return prompt

    async def run(self, turn: ModelTurn, tool: CodeTool | None) -> AsyncIterator[LoopEvent]:
        """Run ``turn`` to its answer. Raises ``TurnIncomplete`` or ``TurnFailed``; model
        runner and session errors pass through as they are."""
        calls = refused = 0
        while True:
            remaining = turn.max_output_tokens - turn.usage.output
            if remaining <= 0:
                raise TurnIncomplete("max_output_tokens")
            done: list[MessageDone] = []
            last_token = None
            async for event in self._generate(turn, tool, remaining, done):
                if isinstance(event, int):
                    last_token = event
                else:
                    yield event
            if last_token not in self.renderer.stop_tokens:
                raise TurnIncomplete("max_output_tokens")
            turn.new_messages.extend(d.message for d in done)
            if last_token != self.renderer.call_token:
                return  # <|return|>: the answer is complete
            call = done[-1] if done else None
            if call is None or call.recipient is None:
                raise TurnFailed("The model ended a message with <|call|> but named no tool.")
            if call.recipient != PYTHON_TOOL or tool is None:
                raise TurnFailed(f"The model called an unknown tool {call.recipient!r}.")
            channel = call.channel or "analysis"
            if calls >= turn.max_tool_calls:
                refused += 1
                if refused > 1:
                    raise TurnIncomplete("max_tool_calls")
                yield ToolRefused()
                turn.new_messages.append(tool_output_message(TOOL_LIMIT_NOTE, channel))
                continue
            calls += 1
            yield ToolRunning()
            finished, observation = await tool.run(call.text)
            yield finished
            turn.new_messages.append(tool_output_message(observation, channel))

    async def _generate(
        self, turn: ModelTurn, tool: CodeTool | None, max_tokens: int, done: list[MessageDone]
    ) -> AsyncIterator[LoopEvent | int]:
        """One model call: its events, and each token id (for the caller to see the last)."""
        try:
            prompt = self.fit(turn)
        except ContextOverflow as exc:
            raise TurnFailed(str(exc), code="invalid_prompt") from exc
        async with self.gate.admit(turn.priority):
            stream = self.generator.generate(
                GenerationRequest(
                    prompt_tokens=prompt,
                    max_tokens=max_tokens,
                    stop_tokens=self.renderer.stop_tokens,
                    temperature=turn.sampling.temperature,
                    top_p=turn.sampling.top_p,
                    seed=turn.sampling.seed,
                    cache_key=turn.cache_key,
                    background=turn.priority == BACKGROUND,
                )
            )
            parser = self.renderer.new_parser()
            try:
                async for token in stream:
                    yield token
                    try:
                        parsed = parser.feed(token)
                    except HarmonyParseError as exc:
                        raise TurnFailed(f"The model produced malformed output: {exc}") from exc
                    for event in parsed:
                        translated = self._translate(event, turn, tool, done)
                        if translated is not None:
                            yield translated
            finally:
                await stream.aclose()
                turn.usage.input += stream.usage.prompt_tokens or len(prompt)
                turn.usage.cached += stream.usage.cached_tokens
                turn.usage.output += stream.usage.completion_tokens

    def _translate(
        self, event: ParseEvent, turn: ModelTurn, tool: CodeTool | None, done: list[MessageDone]
    ) -> LoopEvent | None:
        if isinstance(event, MessageStarted):
            if event.kind != "code":
                return ItemStarted(event.kind)
            if tool is None:
                raise TurnFailed(
                    "The model called the python tool, but the request has no "
                    "code_interpreter tool."
                )
            if event.recipient != PYTHON_TOOL:
                raise TurnFailed(f"The model called an unknown tool {event.recipient!r}.")
            return ItemStarted("code", container_id=tool.open_call())
        if isinstance(event, ContentDelta):
            return ItemDelta(event.kind, event.text)
        done.append(event)
        if event.kind == "reasoning":
            turn.usage.reasoning += len(
                self.renderer.encoding.encode(event.text, disallowed_special=())
            )
        citations = tool.citations(event.text) if event.kind == "text" and tool else ()
        return ItemDone(event.kind, event.text, citations)
