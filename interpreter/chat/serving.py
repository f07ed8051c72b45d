"""Serving ``/v1/chat/completions``: a request becomes a turn of the same model/tool loop
the Responses API runs, with the code interpreter always on, streamed as chunks or
answered whole.

Which container a turn runs in, first match wins:

1. the ``x-session-affinity`` header;
2. ``metadata["session_id"]``;
3. the ``user`` field;
4. otherwise the container the earlier messages were answered in, found from them
   (``transcript``), so a front-end that resends the history finds the same kernel.

The explicit keys come first because a client that sends one names its conversation
deliberately; ``user`` comes after the other two because it names a person, who may
have many conversations (every conversation that sends only ``user`` shares one
kernel). A key or conversation whose container has expired gets a new one, and the
model is told its earlier state is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from openai_harmony import Message

from interpreter.chat.protocol import SESSION_METADATA_KEY, ChatCompletionRequest
from interpreter.chat.store import ChatStore, ConversationState
from interpreter.chat.transcript import (
    affinity_key,
    conversation_key,
    plain_history,
    read_messages,
)
from interpreter.chat.wire import (
    ContentWriter,
    Delta,
    FinishReason,
    chunk,
    completion,
    delta_of,
    new_completion_id,
)
from interpreter.errors import InterpreterError
from interpreter.responses.code_tool import CodeTool
from interpreter.responses.events import LoopEvent, TurnFailed, TurnIncomplete
from interpreter.responses.loop import ModelTurn
from interpreter.responses.protocol import CodeInterpreterTool
from interpreter.responses.scheduler import INTERACTIVE
from interpreter.responses.turn_builder import TurnBuilder
from model_runner.errors import ModelRunnerError
from model_runner.harmony import user_message

log = logging.getLogger(__name__)


class ChatTurnFailed(InterpreterError):
    """The model or the sandbox failed while a completion was being made."""


@dataclass
class ChatTurn:
    id: str
    created: int
    request: ChatCompletionRequest
    model: ModelTurn
    tool: CodeTool
    writer: ContentWriter
    #: The conversation's user and assistant texts, this turn's user messages included.
    said: list[tuple[str, str]]
    owner: str | None
    affinity_key: str | None
    conversation_date: str
    root_id: str
    finish_reason: FinishReason = "stop"
    error: InterpreterError | None = None


UntilStopping = Callable[[AsyncIterator[LoopEvent]], AsyncIterator[LoopEvent]]


class ChatCompletionsService:
    """``until_stopping`` is the Responses API's: a turn under way when the service
    begins to stop ends at once (``ServiceStopping``), as a response does."""

    def __init__(
        self, builder: TurnBuilder, store: ChatStore, until_stopping: UntilStopping
    ) -> None:
        self.builder = builder
        self.store = store
        self._until_stopping = until_stopping

    async def prepare(
        self,
        request: ChatCompletionRequest,
        owner: str | None,
        base_url: str,
        affinity_header: str | None,
    ) -> ChatTurn:
        """Everything that can fail as an HTTP error, before anything runs."""
        request.check()
        transcript = read_messages(request.messages)
        earlier = (
            await self.store.conversation(conversation_key(owner, transcript.earlier))
            if transcript.earlier
            else None
        )
        affinity = (
            affinity_header or (request.metadata or {}).get(SESSION_METADATA_KEY) or request.user
        )
        keyed = affinity_key(owner, affinity) if affinity else None
        if keyed is not None:
            container_id = await self.store.container(keyed)
        else:
            container_id = earlier.container_id if earlier else None

        completion_id = new_completion_id()
        root_id = earlier.root_id if earlier else completion_id
        builder = self.builder
        system = builder.system_prompt(
            conversation_date=earlier.conversation_date if earlier else None,
            effort=request.reasoning_effort,
            with_python=True,
        )
        history = (
            [Message.from_dict(m) for m in earlier.messages]
            if earlier
            else plain_history(transcript.earlier)
        )
        model_turn = ModelTurn(
            prefix=builder.prefix(system, transcript.instructions),
            history=history,
            new_messages=[user_message(text) for text in transcript.new],
            sampling=builder.sampling(request.temperature, request.top_p, request.seed),
            max_output_tokens=builder.max_output_tokens(request.max_output_tokens),
            max_tool_calls=builder.max_tool_calls(None),
            cache_key=request.prompt_cache_key or affinity or root_id,
            priority=INTERACTIVE,
        )
        builder.fit(model_turn, param="messages")
        session, notice = await builder.continue_in(container_id, owner)
        tool = builder.code_tool(
            config=CodeInterpreterTool(type="code_interpreter"),
            owner=owner,
            response_id=completion_id,
            conversation_id=root_id,
            base_url=base_url,
            session=session,
            notice=notice,
        )
        return ChatTurn(
            id=completion_id,
            created=int(time.time()),
            request=request,
            model=model_turn,
            tool=tool,
            writer=ContentWriter(),
            said=transcript.earlier + [("user", text) for text in transcript.new],
            owner=owner,
            affinity_key=keyed,
            conversation_date=system.conversation_start_date,
            root_id=root_id,
        )

    # -- running ------------------------------------------------------------------------

    async def deltas(self, turn: ChatTurn) -> AsyncIterator[Delta]:
        """Run the turn: the assistant's message as it is written. Afterwards the turn
        has its ``finish_reason``, or its ``error``. If the consumer stops early (a
        client went away), generation and any execution are cancelled; the sandbox and
        its state survive."""
        finished = False
        try:
            try:
                async for event in self._until_stopping(
                    self.builder.loop.run(turn.model, turn.tool)
                ):
                    delta = turn.writer.apply(event)
                    if delta is not None:
                        yield delta
            except TurnIncomplete:
                turn.finish_reason = "length"
            except TurnFailed as exc:
                turn.error = ChatTurnFailed(exc.message, code=exc.code)
            except ModelRunnerError as exc:
                turn.error = ChatTurnFailed(f"The model failed: {exc}", code="server_error")
            except InterpreterError as exc:
                turn.error = exc
            closing = turn.writer.finish()
            if closing is not None:
                yield closing
            await self._close(turn)
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._close(turn))

    async def _close(self, turn: ChatTurn) -> None:
        """Let the session go, and remember the conversation: its container under its
        key, and (for an answer a client will send back) its messages under its text.
        A store that cannot (a full disk) costs the client nothing now: the answer goes
        out, and a later turn finds its history less exactly (see the module)."""
        await turn.tool.close()
        try:
            await self._remember(turn)
        except InterpreterError as exc:
            log.error("could not remember chat completion %s: %s", turn.id, exc.message)

    async def _remember(self, turn: ChatTurn) -> None:
        container_id = turn.tool.container_id
        if turn.affinity_key is not None and container_id is not None:
            await self.store.set_container(turn.affinity_key, container_id)
        if turn.error is not None:
            return
        said = [*turn.said, ("assistant", turn.writer.content)]
        await self.store.save_conversation(
            conversation_key(turn.owner, said),
            ConversationState(
                container_id=container_id,
                messages=[m.to_dict() for m in turn.model.history + turn.model.new_messages],
                conversation_date=turn.conversation_date,
                root_id=turn.root_id,
            ),
        )

    async def complete(self, turn: ChatTurn) -> dict[str, Any]:
        async for _ in self.deltas(turn):
            pass
        if turn.error is not None:
            raise turn.error
        return completion(
            turn.id,
            turn.created,
            turn.request.model,
            turn.writer,
            turn.finish_reason,
            turn.model.usage,
        )

    async def chunks(self, turn: ChatTurn) -> AsyncIterator[dict[str, Any]]:
        """The streamed completion's chunks. A failure after the start ends them without
        a finish reason, and leaves the turn's ``error`` for the transport to report."""
        model = turn.request.model
        yield chunk(turn.id, turn.created, model, {"role": "assistant", "content": ""})
        async for delta in self.deltas(turn):
            yield chunk(turn.id, turn.created, model, delta_of(delta))
        if turn.error is not None:
            return
        yield chunk(turn.id, turn.created, model, {}, finish_reason=turn.finish_reason)
        if turn.request.include_usage:
            yield chunk(turn.id, turn.created, model, None, usage=turn.model.usage)
