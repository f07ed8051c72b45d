"""The Responses loop: render, generate, run the model's python calls in the
conversation's sandbox, feed the outputs back, until the model answers.

Everything a response does is an event (``response.output_item.added``, deltas, ...).
Streaming sends them as they happen; a plain request collects them; a background request
runs them in a task and stores the result for polling. The wire shapes are those of the
``openai`` SDK's types.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from openai_harmony import Message

from interpreter.config import Settings
from interpreter.errors import (
    InterpreterError,
    InvalidRequest,
    NotFound,
    SessionExpired,
    SessionLimitReached,
    SessionNotFound,
)
from interpreter.files import FileStore
from interpreter.metrics import Metrics
from interpreter.responses.conversation import (
    input_to_messages,
    logs_of,
    observe,
    trim_to_tokens,
)
from interpreter.responses.protocol import CodeInterpreterTool, ResponsesRequest
from interpreter.responses.scheduler import BACKGROUND, INTERACTIVE, ModelScheduler
from interpreter.responses.store import ResponseStore, StoredResponse
from interpreter.sandboxes.outputs import DisplayOutput
from interpreter.sessions.manager import Session, SessionManager
from model_runner.errors import ModelRunnerError
from model_runner.generator import GenerationRequest, Generator
from model_runner.harmony import (
    PYTHON_TOOL,
    ContentDelta,
    HarmonyParseError,
    HarmonyRenderer,
    MessageDone,
    MessageStarted,
    ParseEvent,
    SystemPrompt,
    developer_message,
    format_tool_output,
    tool_output_message,
)

log = logging.getLogger(__name__)

Event = dict[str, Any]

# The most output tokens a request may ask for.
MAX_OUTPUT_TOKENS_CAP = 32_768
TOOL_LIMIT_NOTE = "[No more tool calls are allowed in this response: answer with what you have.]"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


class ResponseFailed(Exception):
    """Ends a response as ``failed`` with this message (not an HTTP error: the response
    had already started)."""

    def __init__(self, message: str, code: str = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ResponseIncomplete(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Turn:
    """One response being made: its request, conversation and wire body."""

    id: str
    request: ResponsesRequest
    owner: str | None
    base_url: str
    tool: CodeInterpreterTool | None
    system: SystemPrompt
    instructions: str | None
    history: list[Message]  # the conversation before this turn's input
    new_messages: list[Message]  # this turn's input, then what the model and tool add
    input_items: list[dict[str, Any]]
    root_id: str
    cache_key: str
    session: Session | None = None
    session_notice: str | None = None  # told to the model with the first tool output
    body: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0
    cited_files: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> id, name
    usage: dict[str, int] = field(
        default_factory=lambda: {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
    )
    priority: int = INTERACTIVE


class ResponsesService:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionManager,
        generator: Generator,
        store: ResponseStore,
        files: FileStore,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.generator = generator
        self.store = store
        self.files = files
        self.metrics = metrics
        self.renderer = HarmonyRenderer()
        self.scheduler = ModelScheduler()
        self._live: dict[str, Turn] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background_slots = asyncio.Semaphore(settings.background_workers)

    # -- preparing a turn (errors here are HTTP errors) --------------------------------

    async def prepare(
        self, request: ResponsesRequest, owner: str | None, base_url: str, affinity: str | None
    ) -> Turn:
        tool = request.code_interpreter()
        request.check_includes()
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

        history: list[Message] = []
        previous: StoredResponse | None = None
        if request.previous_response_id:
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
            history = [Message.from_dict(m) for m in previous.messages]

        instructions = "\n\n".join(filter(None, [request.instructions, *extra_instructions]))
        effort = (request.reasoning.effort if request.reasoning else None) or "medium"
        system = SystemPrompt(
            # A conversation keeps its first date, so its prompt prefix stays byte-stable.
            conversation_start_date=(
                previous.conversation_date if previous else datetime.now(UTC).date().isoformat()
            ),
            reasoning_effort="low" if effort == "minimal" else effort,
            tool_timeout_s=self.settings.execution_timeout_s,
            with_python_tool=tool is not None,
        )
        response_id = _new_id("resp")
        root_id = previous.root_id if previous else response_id
        turn = Turn(
            id=response_id,
            request=request,
            owner=owner,
            base_url=base_url.rstrip("/"),
            tool=tool,
            system=system,
            instructions=instructions or None,
            history=history,
            new_messages=new_messages,
            input_items=_input_items(request.input),
            root_id=root_id,
            cache_key=request.prompt_cache_key or affinity or root_id,
            priority=BACKGROUND if request.background else INTERACTIVE,
        )
        await self._resolve_container(turn, previous)
        turn.body = self._initial_body(turn)
        return turn

    async def _resolve_container(self, turn: Turn, previous: StoredResponse | None) -> None:
        """Find the conversation's session now; an ``auto`` container that does not exist
        yet is created at the model's first python call."""
        if turn.tool is None:
            return
        container = turn.tool.container
        if isinstance(container, str):
            try:
                turn.session = self.sessions.get(container, turn.owner)
            except (SessionExpired, SessionNotFound) as exc:
                exc.param = "tools[0].container"
                raise
            return
        if previous is None or previous.container_id is None:
            return
        try:
            turn.session = self.sessions.get(previous.container_id, turn.owner)
        except (SessionExpired, SessionNotFound):
            # Not a failure: a new container, and the model is told what was lost.
            turn.session_notice = (
                "The container of the earlier turns has expired: variables and files from "
                "before are gone. This is a new, empty container."
            )

    def _initial_body(self, turn: Turn) -> dict[str, Any]:
        request = turn.request
        return {
            "id": turn.id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued" if request.background else "in_progress",
            "background": request.background,
            "model": request.model,
            "output": [],
            "instructions": request.instructions,
            "previous_response_id": request.previous_response_id,
            # Echoed normalised: a code_interpreter tool always names its container.
            "tools": [turn.tool.model_dump(exclude_none=True)] if turn.tool else [],
            "tool_choice": request.tool_choice,
            "parallel_tool_calls": request.parallel_tool_calls,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_output_tokens": request.max_output_tokens,
            "max_tool_calls": request.max_tool_calls,
            "reasoning": {
                "effort": turn.system.reasoning_effort,
                "summary": request.reasoning.summary if request.reasoning else None,
            },
            "store": request.store,
            "metadata": request.metadata or {},
            "prompt_cache_key": request.prompt_cache_key,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "user": request.user,
            "usage": None,
            "error": None,
            "incomplete_details": None,
        }

    # -- running ------------------------------------------------------------------------

    def _event(self, turn: Turn, type_: str, **fields: Any) -> Event:
        event = {"type": type_, "sequence_number": turn.sequence, **fields}
        turn.sequence += 1
        return event

    def _snapshot(self, turn: Turn) -> dict[str, Any]:
        body = dict(turn.body)
        body["output"] = [dict(item) for item in turn.body["output"]]
        return body

    async def events(self, turn: Turn) -> AsyncIterator[Event]:
        """Run the turn, yielding every event; the stored response is saved at the end.

        If the consumer stops early (a client disconnected), generation and any running
        execution are cancelled; the sandbox and its state survive.
        """
        self._live[turn.id] = turn
        finished = False
        try:
            turn.body["status"] = "in_progress"
            yield self._event(turn, "response.created", response=self._snapshot(turn))
            yield self._event(turn, "response.in_progress", response=self._snapshot(turn))
            try:
                async for event in self._loop(turn):
                    yield event
                turn.body["status"] = "completed"
                turn.body["completed_at"] = int(time.time())
            except ResponseIncomplete as exc:
                turn.body["status"] = "incomplete"
                turn.body["incomplete_details"] = {"reason": exc.reason}
            except ResponseFailed as exc:
                turn.body["status"] = "failed"
                turn.body["error"] = {"code": exc.code, "message": exc.message}
            except ModelRunnerError as exc:
                # Raised when a stream starts: a prompt too long, a runner unreachable.
                turn.body["status"] = "failed"
                turn.body["error"] = {"code": "server_error", "message": f"The model failed: {exc}"}
            except InterpreterError as exc:
                turn.body["status"] = "failed"
                code = (
                    "rate_limit_exceeded"
                    if isinstance(exc, SessionLimitReached)
                    else "server_error"
                )
                turn.body["error"] = {"code": code, "message": exc.message}
            self._close_open_items(turn)
            turn.body["usage"] = self._usage(turn)
            final_type = {
                "completed": "response.completed",
                "incomplete": "response.incomplete",
                "failed": "response.failed",
            }[turn.body["status"]]
            await self._save(turn)
            finished = True
            self.metrics.responses.labels(turn.body["status"]).inc()
            yield self._event(turn, final_type, response=self._snapshot(turn))
        finally:
            if not finished:
                turn.body["status"] = "cancelled"
                self._close_open_items(turn)
                turn.body["usage"] = self._usage(turn)
                self.metrics.responses.labels("cancelled").inc()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._save(turn))
            self._live.pop(turn.id, None)

    async def _loop(self, turn: Turn) -> AsyncIterator[Event]:
        request = turn.request
        budget = min(
            request.max_output_tokens or self.settings.max_output_tokens, MAX_OUTPUT_TOKENS_CAP
        )
        max_calls = self.settings.max_tool_calls
        if request.max_tool_calls is not None:
            max_calls = min(max_calls, request.max_tool_calls)
        calls = 0
        refused_calls = 0
        prefix = [turn.system.to_message()]
        if turn.instructions:
            prefix.append(developer_message(turn.instructions))
        while True:
            remaining = budget - turn.usage["output"]
            if remaining <= 0:
                raise ResponseIncomplete("max_output_tokens")
            prompt = self.renderer.render_prompt(prefix + turn.history + turn.new_messages)
            done: list[MessageDone] = []
            last_token = None
            async with self.scheduler.slot(turn.priority):
                stream = self.generator.generate(
                    GenerationRequest(
                        prompt_tokens=prompt,
                        max_tokens=remaining,
                        stop_tokens=self.renderer.stop_tokens,
                        temperature=self._temperature(request),
                        top_p=request.top_p if request.top_p is not None else 1.0,
                        seed=request.seed,
                        cache_key=turn.cache_key,
                    )
                )
                parser = self.renderer.new_parser()
                try:
                    async for token in stream:
                        last_token = token
                        try:
                            parsed = parser.feed(token)
                        except HarmonyParseError as exc:
                            raise ResponseFailed(
                                f"The model produced malformed output: {exc}"
                            ) from exc
                        for event in parsed:
                            async for wire in self._on_parse_event(turn, event, done):
                                yield wire
                finally:
                    await stream.aclose()
                    turn.usage["input"] += stream.usage.prompt_tokens or len(prompt)
                    turn.usage["cached"] += stream.usage.cached_tokens
                    turn.usage["output"] += stream.usage.completion_tokens
            if last_token not in self.renderer.stop_tokens:
                raise ResponseIncomplete("max_output_tokens")
            turn.new_messages.extend(d.message for d in done)
            if last_token != self.renderer.call_token:
                return  # <|return|>: the answer is complete
            call = done[-1] if done else None
            if call is None or call.recipient is None:
                raise ResponseFailed("The model ended a message with <|call|> but named no tool.")
            if call.recipient != PYTHON_TOOL:
                raise ResponseFailed(f"The model called an unknown tool {call.recipient!r}.")
            item = turn.body["output"][-1]
            if calls >= max_calls:
                refused_calls += 1
                if refused_calls > 1:
                    raise ResponseIncomplete("max_tool_calls")
                item["status"] = "incomplete"
                yield self._event(
                    turn,
                    "response.output_item.done",
                    output_index=len(turn.body["output"]) - 1,
                    item=dict(item),
                )
                turn.new_messages.append(
                    tool_output_message(TOOL_LIMIT_NOTE, call.channel or "analysis")
                )
                continue
            calls += 1
            async for wire in self._execute(turn, item, call):
                yield wire

    def _temperature(self, request: ResponsesRequest) -> float:
        if request.temperature is not None:
            return request.temperature
        return self.settings.temperature_default()

    async def _on_parse_event(
        self, turn: Turn, event: ParseEvent, done: list[MessageDone]
    ) -> AsyncIterator[Event]:
        output = turn.body["output"]
        if isinstance(event, MessageStarted):
            if event.kind == "code":
                if turn.tool is None:
                    raise ResponseFailed(
                        "The model called the python tool, but the request has no "
                        "code_interpreter tool."
                    )
                if event.recipient != PYTHON_TOOL:
                    raise ResponseFailed(f"The model called an unknown tool {event.recipient!r}.")
                session = await self._session_for(turn)
                item: dict[str, Any] = {
                    "id": _new_id("ci"),
                    "type": "code_interpreter_call",
                    "status": "in_progress",
                    "code": "",
                    "container_id": session.id,
                    "outputs": None,
                }
                output.append(item)
                index = len(output) - 1
                yield self._event(
                    turn, "response.output_item.added", output_index=index, item=dict(item)
                )
                yield self._event(
                    turn,
                    "response.code_interpreter_call.in_progress",
                    output_index=index,
                    item_id=item["id"],
                )
            elif event.kind == "reasoning":
                item = {
                    "id": _new_id("rs"),
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": ""}],
                    "status": "in_progress",
                }
                output.append(item)
                yield self._event(
                    turn,
                    "response.output_item.added",
                    output_index=len(output) - 1,
                    item=_copy(item),
                )
            else:
                item = {
                    "id": _new_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
                output.append(item)
                index = len(output) - 1
                yield self._event(
                    turn, "response.output_item.added", output_index=index, item=_copy(item)
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                item["content"].append(part)
                yield self._event(
                    turn,
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                )
            return
        item = output[-1]
        index = len(output) - 1
        if isinstance(event, ContentDelta):
            if event.kind == "code":
                item["code"] += event.text
                yield self._event(
                    turn,
                    "response.code_interpreter_call_code.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=event.text,
                )
            elif event.kind == "reasoning":
                item["content"][0]["text"] += event.text
                yield self._event(
                    turn,
                    "response.reasoning_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=event.text,
                )
            else:
                item["content"][0]["text"] += event.text
                yield self._event(
                    turn,
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=event.text,
                    logprobs=[],
                )
            return
        # MessageDone
        done.append(event)
        if event.kind == "code":
            item["code"] = event.text
            yield self._event(
                turn,
                "response.code_interpreter_call_code.done",
                item_id=item["id"],
                output_index=index,
                code=event.text,
            )
        elif event.kind == "reasoning":
            item["content"][0]["text"] = event.text
            item["status"] = "completed"
            turn.usage["reasoning"] += len(
                self.renderer.encoding.encode(event.text, disallowed_special=())
            )
            yield self._event(
                turn,
                "response.reasoning_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=event.text,
            )
            yield self._event(
                turn, "response.output_item.done", output_index=index, item=_copy(item)
            )
        else:
            part = item["content"][0]
            part["text"] = event.text
            for number, annotation in enumerate(self._citations(turn, event.text)):
                part["annotations"].append(annotation)
                yield self._event(
                    turn,
                    "response.output_text.annotation.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    annotation_index=number,
                    annotation=annotation,
                )
            yield self._event(
                turn,
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=event.text,
                logprobs=[],
            )
            yield self._event(
                turn,
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=dict(part),
            )
            item["status"] = "completed"
            yield self._event(
                turn, "response.output_item.done", output_index=index, item=_copy(item)
            )

    async def _session_for(self, turn: Turn) -> Session:
        if turn.session is not None:
            return turn.session
        container = turn.tool.container if turn.tool else None
        auto = container if container is not None and not isinstance(container, str) else None
        uploads = [
            self.files.content(file_id, turn.owner) for file_id in (auto.file_ids if auto else [])
        ]
        session = await self.sessions.create(
            owner=turn.owner,
            name=f"response {turn.root_id}",
            memory_limit=auto.memory_limit if auto else None,
        )
        for stored, content in uploads:
            await self.sessions.upload(session, stored.filename, content)
        turn.session = session
        return session

    async def _execute(
        self, turn: Turn, item: dict[str, Any], call: MessageDone
    ) -> AsyncIterator[Event]:
        session = await self._session_for(turn)
        index = len(turn.body["output"]) - 1
        item["status"] = "interpreting"
        yield self._event(
            turn,
            "response.code_interpreter_call.interpreting",
            output_index=index,
            item_id=item["id"],
        )
        before = {r.path: (r.id, r.bytes) for r in await self.sessions.list_files(session)}
        result = await self.sessions.execute(session, call.text)
        after = await self.sessions.list_files(session)
        new_files = []
        for record in after:
            if before.get(record.path) != (record.id, record.bytes):
                new_files.append(record.path)
                turn.cited_files[record.path] = (record.id, record.path.rsplit("/", 1)[-1])

        outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs_of(result)}]
        for output in result.outputs:
            if isinstance(output, DisplayOutput):
                for mime in ("image/png", "image/jpeg"):
                    if mime in output.data:
                        image_id = secrets.token_hex(16)
                        await self.store.add_image(
                            image_id, turn.id, mime, base64.b64decode(output.data[mime])
                        )
                        url = f"{turn.base_url}/v1/code_interpreter/images/{image_id}"
                        outputs.append({"type": "image", "url": url})
                        break
        if "code_interpreter_call.outputs" in turn.request.include:
            item["outputs"] = outputs
        item["status"] = {"timeout": "incomplete", "died": "failed"}.get(result.status, "completed")
        yield self._event(
            turn, "response.code_interpreter_call.completed", output_index=index, item_id=item["id"]
        )
        yield self._event(turn, "response.output_item.done", output_index=index, item=_copy(item))

        observation = observe(result, new_files)
        notices = [n for n in (turn.session_notice, observation.notice) if n]
        turn.session_notice = None
        if notices:
            observation = replace(observation, notice=" ".join(notices))
        text = trim_to_tokens(
            format_tool_output(observation),
            self.settings.tool_output_max_tokens,
            lambda text: self.renderer.encoding.encode(text, disallowed_special=()),
            self.renderer.decode,
        )
        turn.new_messages.append(tool_output_message(text, call.channel or "analysis"))

    def _citations(self, turn: Turn, text: str) -> list[dict[str, Any]]:
        """A ``container_file_citation`` for each mention of a file this response wrote."""
        annotations: list[dict[str, Any]] = []
        if turn.session is None:
            return annotations
        for path, (file_id, filename) in turn.cited_files.items():
            for needle in (path, filename):
                start = text.find(needle)
                if start >= 0:
                    annotations.append(
                        {
                            "type": "container_file_citation",
                            "container_id": turn.session.id,
                            "file_id": file_id,
                            "filename": filename,
                            "start_index": start,
                            "end_index": start + len(needle),
                        }
                    )
                    break
        return sorted(annotations, key=lambda a: a["start_index"])

    def _close_open_items(self, turn: Turn) -> None:
        for item in turn.body["output"]:
            if item.get("status") in ("in_progress", "interpreting"):
                item["status"] = "incomplete"

    def _usage(self, turn: Turn) -> dict[str, Any]:
        usage = turn.usage
        return {
            "input_tokens": usage["input"],
            "input_tokens_details": {
                "cached_tokens": usage["cached"],
                "cache_write_tokens": max(0, usage["input"] - usage["cached"]),
            },
            "output_tokens": usage["output"],
            "output_tokens_details": {"reasoning_tokens": usage["reasoning"]},
            "total_tokens": usage["input"] + usage["output"],
        }

    async def _save(self, turn: Turn) -> None:
        if not turn.request.store:
            return
        await self.store.save(
            StoredResponse(
                id=turn.id,
                owner=turn.owner,
                body=turn.body,
                input_items=turn.input_items,
                messages=[m.to_dict() for m in turn.history + turn.new_messages],
                conversation_date=turn.system.conversation_start_date,
                container_id=turn.session.id if turn.session else None,
                root_id=turn.root_id,
            )
        )

    # -- the three ways to run ----------------------------------------------------------

    async def run_to_completion(self, turn: Turn) -> dict[str, Any]:
        async for _ in self.events(turn):
            pass
        return self._snapshot(turn)

    async def start_background(self, turn: Turn) -> dict[str, Any]:
        await self._save(turn)  # queued, so a poll finds it at once
        self._live[turn.id] = turn

        async def run() -> None:
            async with self._background_slots:
                await self.run_to_completion(turn)

        task = asyncio.create_task(run())
        self._tasks[turn.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(turn.id, None))
        return self._snapshot(turn)

    async def retrieve(self, response_id: str, owner: str | None) -> dict[str, Any]:
        live = self._live.get(response_id)
        if live is not None and live.owner == owner:
            return self._snapshot(live)
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
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "content" in copied:
        copied["content"] = [
            dict(part, annotations=list(part.get("annotations", [])))
            if "annotations" in part
            else dict(part)
            for part in copied["content"]
        ]
    return copied


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
        item.setdefault("id", _new_id("msg"))
        items.append(item)
    return items
