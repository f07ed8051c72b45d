"""The python tool of one turn: the conversation's session, its executions, the files
they write, the images they show, and what the model is told of each.

A turn whose conversation has no container yet gets one at the model's first python
call. Creating it (a pool claim, or a cold start of a second or two, plus uploading the
request's ``file_ids``) starts the moment the model begins writing the call and runs in
the background: the model keeps its place in the admission gate only for generating,
never while Docker works, and the container is usually ready by the time the code is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from interpreter.files import FileStore
from interpreter.responses.conversation import logs_of, observe, trim_to_tokens
from interpreter.responses.events import Citation, ToolFinished
from interpreter.responses.protocol import CodeInterpreterAuto, CodeInterpreterTool
from interpreter.sandboxes.outputs import DisplayOutput, ExecutionResult
from interpreter.sessions.manager import Session, SessionManager
from model_runner.harmony import format_tool_output

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg")

EXPIRED_NOTICE = (
    "The container of the earlier turns has expired: variables and files from before are "
    "gone. This is a new, empty container."
)


class ImageStore(Protocol):
    async def add_image(
        self, image_id: str, response_id: str, media_type: str, data: bytes
    ) -> None:
        """Keep an image an execution displayed, to serve it by id."""


class ExecutionLog(Protocol):
    async def add_execution(self, response_id: str, code: str, result: ExecutionResult) -> None:
        """Keep an execution with its outputs, for the conversation's notebook."""


class CodeTool:
    """Runs one turn's python calls in its conversation's session.

    ``session`` is the conversation's live session, if it has one; ``notice`` is told to
    the model with the first tool output (for example that an earlier container expired).
    """

    def __init__(
        self,
        *,
        config: CodeInterpreterTool,
        sessions: SessionManager,
        files: FileStore,
        images: ImageStore,
        owner: str | None,
        response_id: str,
        conversation_id: str,
        base_url: str,
        output_max_tokens: int,
        encode: Callable[[str], list[int]],
        decode: Callable[[list[int]], str],
        session: Session | None = None,
        notice: str | None = None,
        executions: ExecutionLog | None = None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._files = files
        self._images = images
        self._executions = executions
        self._owner = owner
        self._response_id = response_id
        self._conversation_id = conversation_id
        self._base_url = base_url.rstrip("/")
        self._output_max_tokens = output_max_tokens
        self._encode = encode
        self._decode = decode
        self._session = session
        if session is not None:
            sessions.hold(session)
        self._notice = notice
        self._container_id = session.id if session else None
        self._creating: asyncio.Future[Session] | None = None
        # Files this turn's code wrote or changed: path -> (file id, file name).
        self._written: dict[str, tuple[str, str]] = {}

    @property
    def container_id(self) -> str | None:
        """The conversation's container: known once a call has begun."""
        return self._container_id

    def open_call(self) -> str:
        """The id of the container a call beginning now will run in. Starts creating it,
        in the background, if the conversation has none yet."""
        if self._container_id is None:
            self._container_id = self._sessions.new_session_id()
            self._creating = asyncio.ensure_future(self._create(self._container_id))
        return self._container_id

    async def _create(self, session_id: str) -> Session:
        auto = self._config.container
        assert isinstance(auto, CodeInterpreterAuto)
        uploads = [self._files.content(file_id, self._owner) for file_id in auto.file_ids]
        session = await self._sessions.create(
            owner=self._owner,
            name=f"response {self._conversation_id}",
            memory_limit=auto.memory_limit,
            session_id=session_id,
        )
        self._sessions.hold(session)
        for stored, content in uploads:
            await self._sessions.upload(session, stored.filename, content)
        return session

    async def _ready(self) -> Session:
        if self._session is None:
            self.open_call()
            assert self._creating is not None
            # Shielded: a turn cancelled meanwhile (its client left) must not cancel the
            # creation of a container whose id the client has already been given.
            self._session = await asyncio.shield(self._creating)
        return self._session

    async def run(self, code: str) -> tuple[ToolFinished, str]:
        """Execute ``code``: what the client is shown, and the text the model is shown."""
        session = await self._ready()
        before = {r.path: (r.id, r.bytes) for r in await self._sessions.known_files(session)}
        result = await self._sessions.execute(session, code)
        if self._executions is not None:
            await self._executions.add_execution(self._response_id, code, result)
        new_files = []
        for record in await self._sessions.list_files(session):
            if before.get(record.path) != (record.id, record.bytes):
                new_files.append(record.path)
                self._written[record.path] = (record.id, record.path.rsplit("/", 1)[-1])

        image_urls = []
        for output in result.outputs:
            if not isinstance(output, DisplayOutput):
                continue
            mime = next((m for m in IMAGE_TYPES if m in output.data), None)
            if mime is not None:
                image_id = secrets.token_hex(16)
                data = base64.b64decode(output.data[mime])
                await self._images.add_image(image_id, self._response_id, mime, data)
                image_urls.append(f"{self._base_url}/v1/code_interpreter/images/{image_id}")
        status = {"timeout": "incomplete", "died": "failed"}.get(result.status, "completed")
        finished = ToolFinished(status, logs_of(result), tuple(image_urls))  # type: ignore[arg-type]

        observation = observe(result, new_files)
        notices = [n for n in (self._notice, observation.notice) if n]
        self._notice = None
        if notices:
            observation = replace(observation, notice=" ".join(notices))
        text = trim_to_tokens(
            format_tool_output(observation), self._output_max_tokens, self._encode, self._decode
        )
        return finished, text

    def citations(self, text: str) -> tuple[Citation, ...]:
        """A citation for the first mention of each file this turn's code wrote."""
        if self._container_id is None:
            return ()
        found = []
        for path, (file_id, filename) in self._written.items():
            for needle in (path, filename):
                start = text.find(needle)
                if start >= 0:
                    found.append(
                        Citation(self._container_id, file_id, filename, start, start + len(needle))
                    )
                    break
        return tuple(sorted(found, key=lambda c: c.start_index))

    async def close(self) -> None:
        """See a container creation through, so that the conversation keeps its container
        even when the turn ended before its first call ran (a failure, a disconnect); and
        let the session be ended for room again."""
        if self._creating is not None:
            with contextlib.suppress(Exception):
                self._session = await asyncio.shield(self._creating)
        if self._session is not None:
            self._sessions.release(self._session)
