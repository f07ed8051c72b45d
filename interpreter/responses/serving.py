"""Serving ``/v1/responses``: a request becomes a turn, and the turn runs streamed,
blocking or in the background; stored responses are retrieved, cancelled, deleted.

``prepare`` does everything that can fail as an HTTP error (validation, the previous
response, an explicit container) before anything runs. ``events`` then drives the
model/tool loop (``loop``) and reports it through a ``ResponseWriter`` (``wire``);
whatever happens, the response is stored at the end with a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from openai.types.responses import Response
from openai_harmony import Message

from interpreter.config import Settings
from interpreter.errors import (
    InterpreterError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceStopping,
    SessionExpired,
    SessionNotFound,
)
from interpreter.files import FileStore
from interpreter.metrics import Metrics
from interpreter.responses.code_tool import CodeTool
from interpreter.responses.conversation import input_to_messages
from interpreter.responses.events import (
    LoopEvent,
    ToolFinished,
    ToolRunning,
    TurnFailed,
    TurnIncomplete,
)
from interpreter.responses.loop import ModelTurn
from interpreter.responses.protocol import ResponsesRequest
from interpreter.responses.scheduler import BACKGROUND, INTERACTIVE, AdmissionGate
from interpreter.responses.store import ResponseStore, StoredResponse
from interpreter.responses.turn_builder import TurnBuilder
from interpreter.responses.wire import Event, ResponseWriter, new_id
from interpreter.sessions.manager import SessionManager
from model_runner.errors import ModelRunnerError
from model_runner.generator import Generator
from model_runner.harmony import SystemPrompt, user_message
from model_runner.startup import WARM_UP_MESSAGE, generate_one_token

log = logging.getLogger(__name__)

# How often a finished response the store could not take (a full disk) is tried again.
SAVE_RETRY_S = 2.0

STOPPING_MESSAGE = (
    "The service is shutting down: this response was stopped before it finished. Send it "
    "again in a moment."
)


@dataclass
class Turn:
    """One response being made."""

    id: str
    request: ResponsesRequest
    owner: str | None
    model: ModelTurn
    tool: CodeTool | None
    writer: ResponseWriter
    system: SystemPrompt
    input_items: list[dict[str, Any]]
    root_id: str
    #: For a background response: what ``recover`` needs to run it again.
    replay: dict[str, Any] | None = None

    @property
    def container_id(self) -> str | None:
        return self.tool.container_id if self.tool else None


class ResponsesService:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionManager,
        generator: Generator,
        store: ResponseStore,
        files: FileStore,
        metrics: Metrics,
        gate: AdmissionGate | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.generator = generator
        self.store = store
        self.files = files
        self.metrics = metrics
        self.builder = TurnBuilder(settings, sessions, generator, store, files, gate)
        self.renderer = self.builder.renderer
        self.gate = self.builder.gate
        self.loop = self.builder.loop
        self._live: dict[str, Turn] = {}
        # Finished turns the store could not take yet (see _close_and_save).
        self._unsaved: dict[str, Turn] = {}
        self._saving: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background_slots = asyncio.Semaphore(settings.background_workers)
        self._stopping = asyncio.Event()

    # -- preparing a turn (errors here are HTTP errors) --------------------------------

    async def prepare(
        self,
        request: ResponsesRequest,
        owner: str | None,
        base_url: str,
        affinity: str | None,
        *,
        response_id: str | None = None,
    ) -> Turn:
        """The turn ``request`` asks for; ``response_id`` names one being run again."""
        config = request.code_interpreter()
        request.check_includes()
        self._check_key_quota(owner)
        if request.background and not request.store:
            raise InvalidRequest("background responses must be stored (store=true).", param="store")
        if request.background and request.stream:
            raise InvalidRequest(
                "stream with background is not supported here: poll GET /v1/responses/{id}.",
                param="stream",
            )
        new_messages, extra_instructions = input_to_messages(request.input)
        if not new_messages:
            raise InvalidRequest("input must hold at least one message.", param="input")

        previous = await self._previous(request, owner)
        history = [Message.from_dict(m) for m in previous.messages] if previous else []
        instructions = "\n\n".join(filter(None, [request.instructions, *extra_instructions]))
        builder = self.builder
        system = builder.system_prompt(
            conversation_date=previous.conversation_date if previous else None,
            effort=request.reasoning.effort if request.reasoning else None,
            with_python=config is not None,
        )
        response_id = response_id or new_id("resp")
        root_id = previous.root_id if previous else response_id
        model_turn = ModelTurn(
            prefix=builder.prefix(system, instructions),
            history=history,
            new_messages=new_messages,
            sampling=builder.sampling(request.temperature, request.top_p, request.seed),
            max_output_tokens=builder.max_output_tokens(request.max_output_tokens),
            max_tool_calls=builder.max_tool_calls(request.max_tool_calls),
            cache_key=request.prompt_cache_key or affinity or root_id,
            priority=BACKGROUND if request.background else INTERACTIVE,
            truncate=request.truncation == "auto",
        )
        builder.fit(model_turn, param="input")
        tool = None
        if config is not None:
            session, notice = await self._conversation_session(config.container, previous, owner)
            tool = builder.code_tool(
                config=config,
                owner=owner,
                response_id=response_id,
                conversation_id=root_id,
                base_url=base_url,
                session=session,
                notice=notice,
            )
        turn = Turn(
            id=response_id,
            request=request,
            owner=owner,
            model=model_turn,
            tool=tool,
            writer=ResponseWriter(
                self._initial_body(request, response_id, config, system),
                include_outputs="code_interpreter_call.outputs" in request.include,
            ),
            system=system,
            input_items=_input_items(request.input),
            root_id=root_id,
            replay=(
                {"request": request.model_dump(mode="json", exclude_unset=True),
                 "base_url": base_url, "affinity": affinity}
                if request.background
                else None
            ),
        )  # fmt: skip
        return turn

    def _check_key_quota(self, owner: str | None) -> None:
        limit = self.settings.max_responses_per_key
        if owner is None or not limit:
            return
        if sum(1 for turn in self._live.values() if turn.owner == owner) >= limit:
            raise RateLimited(
                f"This API key has {limit} responses under way, its maximum. Retry when one "
                "has finished.",
                retry_after_s=2,
            )

    async def _previous(
        self, request: ResponsesRequest, owner: str | None
    ) -> StoredResponse | None:
        if not request.previous_response_id:
            return None
        try:
            previous = await self.store.get(request.previous_response_id, owner)
        except NotFound:
            raise NotFound(
                f"Previous response with id '{request.previous_response_id}' not found.",
                param="previous_response_id",
            ) from None
        if previous.body.get("status") in ("queued", "in_progress"):
            raise InvalidRequest(
                "The previous response has not finished yet.", param="previous_response_id"
            )
        return previous

    async def _conversation_session(
        self, container: Any, previous: StoredResponse | None, owner: str | None
    ) -> tuple[Any, str | None]:
        """The session the turn runs in now, and what to tell the model about it. An
        ``auto`` container that does not exist yet is created at the first python call."""
        if isinstance(container, str):
            try:
                session = self.sessions.get(container, owner)
                await self.sessions.check_alive(session)
            except (SessionExpired, SessionNotFound) as exc:
                exc.param = "tools[0].container"
                raise
            return session, None
        # A container gone is not a failure: a new one, and the model is told what was lost.
        found, notice = await self.builder.continue_in(
            previous.container_id if previous else None, owner
        )
        if found is None:
            await self.sessions.check_engine()
        return found, notice

    def _initial_body(
        self, request: ResponsesRequest, response_id: str, config: Any, system: SystemPrompt
    ) -> Response:
        return Response.model_validate(
            {
                "id": response_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": "queued" if request.background else "in_progress",
                "background": request.background,
                "model": request.model,
                "output": [],
                "instructions": request.instructions,
                "previous_response_id": request.previous_response_id,
                # Echoed normalised: a code_interpreter tool always names its container.
                "tools": [config.model_dump(exclude_none=True)] if config else [],
                "tool_choice": request.tool_choice,
                "parallel_tool_calls": request.parallel_tool_calls,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "max_output_tokens": request.max_output_tokens,
                "max_tool_calls": request.max_tool_calls,
                "reasoning": {
                    "effort": system.reasoning_effort,
                    "summary": request.reasoning.summary if request.reasoning else None,
                },
                "store": request.store,
                "metadata": request.metadata or {},
                "prompt_cache_key": request.prompt_cache_key,
                "text": {"format": {"type": "text"}},
                "truncation": request.truncation,
                "user": request.user,
                "usage": None,
                "error": None,
                "incomplete_details": None,
            }
        )

    # -- running ------------------------------------------------------------------------

    async def begin(self, turn: Turn) -> None:
        """Store the response as under way before it runs, so that it is never lost: a
        restart marks it failed, or runs a background one again (``recover``). A store
        that cannot take it (a full disk) answers the request with its error."""
        await self._save(turn)

    async def events(self, turn: Turn) -> AsyncIterator[Event]:
        """Run the turn, yielding every event; the response is stored at the end, and
        around each execution (so a crash leaves a record of code that may have run).

        If the consumer stops early (a client disconnected), generation and any running
        execution are cancelled; the sandbox and its state survive. If the service stops
        meanwhile, the turn ends with a final ``response.failed`` that says so.
        """
        writer = turn.writer
        self._live[turn.id] = turn
        finished = False
        try:
            for event in writer.started():
                yield event
            status, error, reason = "completed", None, None
            try:
                async for loop_event in self.until_stopping(self.loop.run(turn.model, turn.tool)):
                    for event in writer.apply(loop_event):
                        yield event
                    if isinstance(loop_event, ToolRunning | ToolFinished):
                        # Before the code runs, and after: a restart then knows it may
                        # have run (see recover).
                        await self._save_quietly(turn)
            except ServiceStopping:
                if turn.request.background:
                    raise  # left unfinished, to run again at the next start
                status, error = "failed", ("server_error", STOPPING_MESSAGE)
            except TurnIncomplete as exc:
                status, reason = "incomplete", exc.reason
            except TurnFailed as exc:
                status, error = "failed", (exc.code, exc.message)
            except ModelRunnerError as exc:
                # A prompt too long, a runner unreachable or gone mid-stream.
                status, error = "failed", ("server_error", f"The model failed: {exc}")
            except InterpreterError as exc:
                code = "rate_limit_exceeded" if isinstance(exc, RateLimited) else "server_error"
                status, error = "failed", (code, exc.message)
            final = writer.finish(status, turn.model.usage, error=error, incomplete_reason=reason)  # type: ignore[arg-type]
            await self._close_and_save(turn)
            finished = True
            self.metrics.responses.labels(status).inc()
            if final is not None:
                yield final
        finally:
            if not finished:
                if self._stopping.is_set() and turn.request.background:
                    # Left to be run again at the next start (see recover).
                    writer.body.status = "queued"
                else:
                    writer.finish("cancelled", turn.model.usage)
                self.metrics.responses.labels("cancelled").inc()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._close_and_save(turn))
            self._live.pop(turn.id, None)

    async def until_stopping(self, events: AsyncIterator[LoopEvent]) -> AsyncIterator[LoopEvent]:
        """``events``, until the service begins to stop: then the step under way is
        cancelled (a generation stops, an execution is interrupted) and ``ServiceStopping``
        ends the turn. Each step runs as a task of its own, so it must be cancelled here
        whenever this generator is left early (a client gone, a cancel)."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        step: asyncio.Future[LoopEvent] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(events))
                await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    raise ServiceStopping(STOPPING_MESSAGE)
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
                yield event
        finally:
            stopping.cancel()
            if step is not None and not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
            await events.aclose()  # type: ignore[attr-defined]

    async def _close_tool(self, turn: Turn) -> None:
        if turn.tool is not None:
            await turn.tool.close()

    async def _close_and_save(self, turn: Turn) -> None:
        """The turn's end: let its session go and store how it ended. A store that cannot
        take it now (a full disk) gets it again every few seconds until it does; until
        then it is answered from memory, so a finished response never reads as unfinished
        (nor is it run or failed again by the next start)."""
        await self._close_tool(turn)
        if await self._save_quietly(turn):
            return
        self._unsaved[turn.id] = turn
        if self._saving is None or self._saving.done():
            self._saving = asyncio.create_task(self._save_later())

    async def _save_later(self) -> None:
        while self._unsaved:
            await asyncio.sleep(SAVE_RETRY_S)
            for turn in list(self._unsaved.values()):
                with contextlib.suppress(InterpreterError):
                    await self._save(turn)
                    del self._unsaved[turn.id]
                    log.info("stored response %s after all", turn.id)

    async def _save(self, turn: Turn) -> None:
        if not turn.request.store:
            return
        await self.store.save(
            StoredResponse(
                id=turn.id,
                owner=turn.owner,
                body=turn.writer.snapshot(),
                input_items=turn.input_items,
                messages=[m.to_dict() for m in turn.model.history + turn.model.new_messages],
                conversation_date=turn.system.conversation_start_date,
                container_id=turn.container_id,
                root_id=turn.root_id,
                request=turn.replay,
            )
        )

    async def _save_quietly(self, turn: Turn) -> bool:
        """Store the turn; a store that cannot (a full disk) must not cost the client the
        answer it is being sent: that is logged, and the answer goes out."""
        try:
            await self._save(turn)
        except InterpreterError as exc:
            log.error("could not store response %s: %s", turn.id, exc.message)
            return False
        return True

    # -- the three ways to run ----------------------------------------------------------

    async def run_to_completion(self, turn: Turn) -> dict[str, Any]:
        async for _ in self.events(turn):
            pass
        return turn.writer.snapshot()

    async def start_background(self, turn: Turn) -> dict[str, Any]:
        self._live[turn.id] = turn

        async def run() -> None:
            async with self._background_slots:
                with contextlib.suppress(ServiceStopping):
                    await self.run_to_completion(turn)

        task = asyncio.create_task(run())
        self._tasks[turn.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(turn.id, None))
        return turn.writer.snapshot()

    # -- restarts and stops ---------------------------------------------------------------

    async def warm_up(self) -> None:
        """Before serving: one token from a new conversation's first prompt, so that the
        first response after a start finds today's system message in the model's prefix
        cache and, for a model in a process of its own, a connection already open and
        its route already run once.

        Best effort: a failure, no token within ``model_warm_up_timeout_s``, or a stop
        asked for meanwhile ends it, logged, never raised. The model was already loaded
        or probed, and a response will say what goes wrong."""
        timeout_s = self.settings.model_warm_up_timeout_s
        if not timeout_s:
            return
        system = self.builder.system_prompt(conversation_date=None, effort=None, with_python=True)
        prompt = self.renderer.render_prompt(
            [*self.builder.prefix(system, ""), user_message(WARM_UP_MESSAGE)]
        )
        warming = asyncio.ensure_future(generate_one_token(self.generator, prompt))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                (warming, stopping), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            warming.cancel()
            (outcome,) = await asyncio.gather(warming, return_exceptions=True)
        if isinstance(outcome, asyncio.CancelledError):
            if self._stopping.is_set():
                log.info("a stop was asked for during the model's warm-up; it was ended")
            else:
                log.warning(
                    "the model gave no token in %g s of warm-up; serving without it", timeout_s
                )
        elif isinstance(outcome, ModelRunnerError):
            log.warning("the model's warm-up failed: %s", outcome)
        elif isinstance(outcome, BaseException):
            log.warning("the model's warm-up failed", exc_info=outcome)

    async def recover(self) -> None:
        """Settle the responses the last run of the service left unfinished (it was
        killed, or stopped while they ran):

        - a streamed or plain one is marked failed, with the reason: its client is gone;
        - a background one runs again from the start, unless it had already run code:
          then it is marked failed rather than run twice (code need not be safe to repeat).
        """
        for stored in await self.store.unfinished():
            body = stored.body
            ran_code = any(
                item.get("type") == "code_interpreter_call" for item in body.get("output", [])
            )
            if body.get("background") and stored.request is not None and not ran_code:
                try:
                    turn = await self.prepare(
                        ResponsesRequest.model_validate(stored.request["request"]),
                        stored.owner,
                        stored.request["base_url"],
                        stored.request.get("affinity"),
                        response_id=stored.id,
                    )
                except InterpreterError as exc:
                    await self._fail_stored(stored, f"It could not be run again: {exc.message}")
                    continue
                log.info("running background response %s again after a restart", stored.id)
                await self.begin(turn)
                await self.start_background(turn)
                continue
            why = (
                "The service stopped while this background response was running, after it "
                "had run code: it was not run again, since code is not always safe to run "
                "twice. Send it again if yours is."
                if body.get("background")
                else "The service stopped while this response was being generated: it did not "
                "finish. Continue the conversation from its previous response."
            )
            await self._fail_stored(stored, why)

    async def _fail_stored(self, stored: StoredResponse, message: str) -> None:
        body = stored.body
        body["status"] = "failed"
        body["error"] = {"code": "server_error", "message": message}
        for item in body.get("output", []):
            if item.get("status") in ("in_progress", "interpreting"):
                item["status"] = "incomplete"
        await self.store.save(stored)
        self.metrics.responses.labels("failed").inc()

    def begin_shutdown(self) -> None:
        """The service is stopping: turns under way end now with a final event, and
        background ones are left to run again at the next start."""
        self._stopping.set()

    async def retrieve(self, response_id: str, owner: str | None) -> dict[str, Any]:
        live = self._live.get(response_id) or self._unsaved.get(response_id)
        if live is not None and live.owner == owner:
            return live.writer.snapshot()
        return (await self.store.get(response_id, owner)).body

    async def cancel(self, response_id: str, owner: str | None) -> dict[str, Any]:
        body = await self.retrieve(response_id, owner)
        if not body.get("background"):
            raise InvalidRequest("Only background responses can be cancelled.", param="response_id")
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if body["status"] in ("queued", "in_progress"):
            stored = await self.store.get(response_id, owner)
            stored.body["status"] = "cancelled"
            await self.store.save(stored)
        return await self.retrieve(response_id, owner)

    async def delete(self, response_id: str, owner: str | None) -> None:
        await self.store.delete(response_id, owner)

    async def input_items(self, response_id: str, owner: str | None) -> list[dict[str, Any]]:
        return (await self.store.get(response_id, owner)).input_items

    async def close(self) -> None:
        self._stopping.set()
        if self._saving is not None:
            self._saving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saving
        for turn in list(self._unsaved.values()):  # a last try
            with contextlib.suppress(InterpreterError):
                await self._save(turn)
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's input as items with ids, for ``GET .../input_items``."""
    if isinstance(value, str):
        value = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}
        ]
    items = []
    for raw in value:
        item = dict(raw)
        item.setdefault("type", "message")
        if item["type"] == "message":
            content = item.get("content")
            if isinstance(content, str):
                item["content"] = [{"type": "input_text", "text": content}]
            item.setdefault("status", "completed")
        item.setdefault("id", new_id("msg"))
        items.append(item)
    return items
