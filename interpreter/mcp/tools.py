"""The MCP tools over the session manager, and which container an MCP session uses.

Every tool takes an optional ``container_id``. Without one, a tool uses its MCP
session's container, created at first use (or by ``create_container``), so an agent's
state persists across its calls:

- over stdio, the session is the process: one agent, one container;
- over HTTP, the session is the SDK's ``Mcp-Session-Id`` (the 2025 protocol revisions
  that desktop clients speak), per API key;
- the 2026-07-28 revision has no sessions at all: there, a call without a
  ``container_id`` is refused with a message saying to call ``create_container`` first,
  rather than leaving a new container behind at every call.

Service errors become tool errors (``is_error``) whose text starts with the error's code
(``not_found``, ``container_expired``, ...), which an agent can act on. An exception in
the user's code is not a tool error: it is one of the execution's outputs.
"""

from __future__ import annotations

import base64
import contextlib
import mimetypes
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import Field

from interpreter.api.protocol import output_object
from interpreter.errors import InterpreterError, SessionExpired, SessionNotFound
from interpreter.responses.conversation import error_text
from interpreter.sandboxes.outputs import (
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    StreamOutput,
)
from interpreter.sessions.manager import DATA_ROOT, FileRecord, Session, SessionManager

#: The image types MCP clients show as images.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: The largest file ``download_file`` returns inline (base64 in a JSON message).
MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024
#: MCP sessions remembered with their container; the least recently used are forgotten
#: (their containers live on until they idle out).
MAX_REMEMBERED_SESSIONS = 10_000
STDIO_SESSION = "stdio"

NO_SESSION = (
    "no_container: this MCP connection has no session (the 2026-07-28 protocol is "
    "sessionless), so there is no default container. Call create_container and pass its "
    "container_id to the other tools."
)

ContainerId = Annotated[
    str | None,
    Field(
        description="The container to use (cntr_...). Omit it to use this MCP session's "
        "container, which is created at first use."
    ),
]
OwnerOf = Callable[[Mapping[str, str] | None], str | None]


@dataclass
class _Default:
    container_id: str | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    try:
        yield
    except InterpreterError as exc:
        raise ToolError(f"{exc.code}: {exc.message}" if exc.code else exc.message) from exc


class SandboxTools:
    """The tools. ``sessions`` gives the session manager (built after the tools, in the
    app's lifespan); ``owner_of`` turns a request's headers (None on stdio) into the
    owner its containers belong to."""

    def __init__(self, sessions: Callable[[], SessionManager], owner_of: OwnerOf) -> None:
        self._sessions = sessions
        self._owner_of = owner_of
        self._defaults: OrderedDict[str, _Default] = OrderedDict()

    def register(self, server: MCPServer) -> None:
        server.add_tool(self.create_container)
        server.add_tool(self.execute, annotations=ToolAnnotations(open_world_hint=False))
        server.add_tool(self.upload_file)
        server.add_tool(self.download_file, annotations=ToolAnnotations(read_only_hint=True))
        server.add_tool(self.list_files, annotations=ToolAnnotations(read_only_hint=True))
        server.add_tool(self.interrupt)
        server.add_tool(self.restart, annotations=ToolAnnotations(destructive_hint=True))

    # -- which container -----------------------------------------------------------------

    def _session_key(self, ctx: Context, owner: str | None) -> str | None:
        headers = ctx.headers
        if headers is None:
            return STDIO_SESSION
        mcp_session = headers.get("mcp-session-id")
        # Per owner: another key that learnt a session id finds nothing of this one's.
        return f"{owner}:{mcp_session}" if mcp_session else None

    def _default(self, key: str) -> _Default:
        default = self._defaults.pop(key, None) or _Default()
        self._defaults[key] = default
        while len(self._defaults) > MAX_REMEMBERED_SESSIONS:
            self._defaults.popitem(last=False)
        return default

    async def _container(
        self, ctx: Context, container_id: str | None, *, create: bool = True
    ) -> tuple[Session, str | None]:
        """The container a call uses, and a notice for the agent when its session's
        earlier container had gone and a new one took its place."""
        owner = self._owner_of(ctx.headers)
        manager = self._sessions()
        if container_id:
            return manager.get(container_id, owner), None
        key = self._session_key(ctx, owner)
        if key is None:
            raise ToolError(NO_SESSION)
        default = self._default(key)
        async with default.lock:
            lost = None
            if default.container_id is not None:
                try:
                    return manager.get(default.container_id, owner), None
                except (SessionExpired, SessionNotFound) as exc:
                    lost = exc.message
            if not create:
                raise ToolError(
                    "no_container: this MCP session has no container yet; execute code "
                    "or call create_container first."
                )
            session = await manager.create(owner=owner, name="mcp")
            default.container_id = session.id
        notice = f"{lost} This is a new, empty container: {session.id}." if lost else None
        return session, notice

    # -- the tools -----------------------------------------------------------------------

    async def create_container(
        self,
        ctx: Context,
        name: str = "",
        memory_limit: Annotated[
            Literal["1g", "4g", "16g", "64g"] | None,
            Field(description="Memory of the container; the server's default if omitted."),
        ] = None,
        expires_after_minutes: Annotated[
            float | None,
            Field(description="Idle minutes before the container ends (default 20)."),
        ] = None,
    ) -> dict[str, Any]:
        """Create a new sandbox: a Python (Jupyter) kernel in its own container with no
        network, files in /mnt/data. It becomes this MCP session's container, which the
        other tools use when given no container_id."""
        owner = self._owner_of(ctx.headers)
        with _tool_errors():
            session = await self._sessions().create(
                owner=owner,
                name=name,
                ttl_minutes=expires_after_minutes,
                memory_limit=memory_limit,
            )
        key = self._session_key(ctx, owner)
        if key is not None:
            self._default(key).container_id = session.id
        return {
            "container_id": session.id,
            "name": session.info.name,
            "memory_limit": session.info.memory_limit,
            "expires_after_minutes": session.info.ttl_s / 60,
        }

    async def execute(
        self,
        ctx: Context,
        code: Annotated[str, Field(description="Python code, run as a notebook cell.")],
        container_id: ContainerId = None,
        timeout_seconds: Annotated[
            float | None, Field(description="Seconds before the code is interrupted.")
        ] = None,
    ) -> CallToolResult:
        """Run Python code in the container's kernel, as a Jupyter cell: variables,
        imports and files persist between calls. Returns what the code printed, its
        result, images it displayed (matplotlib figures) and any error, in order."""
        with _tool_errors():
            session, notice = await self._container(ctx, container_id)
            result = await self._sessions().execute(session, code, timeout_s=timeout_seconds)
        content = _content_of(result)
        if notice:
            content.insert(0, TextContent(text=f"[{notice}]"))
        outputs = []
        for output in result.outputs:
            typed = output_object(output)
            if isinstance(output, DisplayOutput):
                # Images travel once, as image content; the typed outputs name them.
                typed["data"] = {
                    mime: value for mime, value in output.data.items() if mime not in IMAGE_TYPES
                }
                typed["images"] = [mime for mime in output.data if mime in IMAGE_TYPES]
            outputs.append(typed)
        return CallToolResult(
            content=content,
            structured_content={
                "container_id": session.id,
                "status": result.status,
                "execution_count": result.execution_count,
                "outputs": outputs,
                "truncated": result.truncated,
                "notice": notice or result.notice,
            },
        )

    async def upload_file(
        self,
        ctx: Context,
        filename: Annotated[str, Field(description="A plain file name, saved in /mnt/data.")],
        content: str,
        encoding: Annotated[
            Literal["text", "base64"],
            Field(description="How content is given: UTF-8 text, or base64 for binary files."),
        ] = "text",
        container_id: ContainerId = None,
    ) -> dict[str, Any]:
        """Save a file into the container's /mnt/data, where the code can read it."""
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else None
        except ValueError as exc:
            raise ToolError(f"invalid_value: content is not valid base64: {exc}") from exc
        with _tool_errors():
            session, _ = await self._container(ctx, container_id)
            record = await self._sessions().upload(
                session, filename, data if data is not None else content.encode()
            )
        return _file_object(session, record)

    async def download_file(
        self,
        ctx: Context,
        path: Annotated[
            str,
            Field(description="A file in /mnt/data: its path, its name, or its id (cfile_...)."),
        ],
        container_id: ContainerId = None,
    ) -> CallToolResult:
        """Read a file from the container's /mnt/data: images come back as images, text
        as text, anything else as base64."""
        with _tool_errors():
            session, _ = await self._container(ctx, container_id)
            manager = self._sessions()
            wanted = path if path.startswith(("/", "cfile_")) else f"{DATA_ROOT}/{path}"
            record = next(
                (r for r in await manager.list_files(session) if wanted in (r.id, r.path)),
                None,
            )
            if record is None:
                raise ToolError(f"not_found: no file {path!r} in container {session.id}.")
            if record.bytes > MAX_DOWNLOAD_BYTES:
                raise ToolError(
                    f"file_too_large: {record.path} is {record.bytes} bytes, more than the "
                    f"{MAX_DOWNLOAD_BYTES} this tool returns; fetch it over HTTP: GET "
                    f"/v1/containers/{session.id}/files/{record.id}/content"
                )
            _, data = await manager.read_file(session, record.id)
        mime = mimetypes.guess_type(record.path)[0] or "application/octet-stream"
        block: ContentBlock
        if mime in IMAGE_TYPES:
            block = ImageContent(data=base64.b64encode(data).decode(), mime_type=mime)
        else:
            uri = f"file://{record.path}"
            try:
                text = data.decode()
            except UnicodeDecodeError:
                encoded = base64.b64encode(data).decode()
                resource: Any = BlobResourceContents(uri=uri, mime_type=mime, blob=encoded)
            else:
                text_mime = mime if mime != "application/octet-stream" else "text/plain"
                resource = TextResourceContents(uri=uri, mime_type=text_mime, text=text)
            block = EmbeddedResource(resource=resource)
        return CallToolResult(content=[block], structured_content=_file_object(session, record))

    async def list_files(self, ctx: Context, container_id: ContainerId = None) -> dict[str, Any]:
        """List the files in the container's /mnt/data: uploaded ones and those the code
        wrote."""
        with _tool_errors():
            session, _ = await self._container(ctx, container_id)
            records = await self._sessions().list_files(session)
        return {
            "container_id": session.id,
            "files": [_file_object(session, r) for r in records],
        }

    async def interrupt(self, ctx: Context, container_id: ContainerId = None) -> dict[str, Any]:
        """Interrupt the code running in the container (KeyboardInterrupt); variables and
        files are kept."""
        with _tool_errors():
            session, _ = await self._container(ctx, container_id, create=False)
            interrupted = await self._sessions().interrupt(session)
        return {"container_id": session.id, "interrupted": interrupted}

    async def restart(self, ctx: Context, container_id: ContainerId = None) -> dict[str, Any]:
        """Restart the container's kernel: every variable is lost, files in /mnt/data
        are kept."""
        with _tool_errors():
            session, _ = await self._container(ctx, container_id, create=False)
            await self._sessions().restart(session)
        return {"container_id": session.id, "restarted": True}


def _file_object(session: Session, record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "container_id": session.id,
        "path": record.path,
        "bytes": record.bytes,
        "source": record.source,
    }


def _content_of(result: ExecutionResult) -> list[ContentBlock]:
    """An execution's outputs as MCP content, in order: text, images, errors."""
    content: list[ContentBlock] = []
    if result.notice:
        content.append(TextContent(text=f"[{result.notice}]"))
    for output in result.outputs:
        if isinstance(output, StreamOutput):
            prefix = "[stderr]\n" if output.name == "stderr" else ""
            content.append(TextContent(text=prefix + output.text))
        elif isinstance(output, DisplayOutput):
            image = next((m for m in IMAGE_TYPES if m in output.data), None)
            if image is not None:
                content.append(ImageContent(data=output.data[image], mime_type=image))
            elif "text/plain" in output.data:
                content.append(TextContent(text=output.data["text/plain"]))
        elif isinstance(output, ErrorOutput):
            content.append(TextContent(text=error_text(output)))
    if result.status == "timeout":
        content.append(
            TextContent(
                text=f"[interrupted after {result.duration_s:.1f} s at the time limit; "
                "variables are kept]"
            )
        )
    if result.truncated:
        content.append(TextContent(text="[output truncated: more than the server's limit]"))
    if not content:
        content.append(TextContent(text="(no output)"))
    return content
