"""A client for the sandbox agent's HTTP API on its unix socket (see sandbox_image/agent.py).

The agent runs inside the sandbox, beside code that may be hostile, and its socket lies
in a folder that code can write: nothing it answers is trusted. Paths are checked before
they are sent (a path with ``..`` would be normalised by the HTTP client into another
request altogether), paths it lists are checked before they are used, an answer that is
not what the agent sends is a ``SandboxError``, and the socket must still be a socket,
not a link that the sandbox put there to point the service at one of the host's.

The client speaks just the HTTP/1.1 the agent does (a request with a ``Content-Length``
body; an answer with one), over a few kept-alive connections. The service asks the agent
something on every turn (whether the sandbox lives, which files the code wrote), and
with a general HTTP client (httpx) a request took 1.9 ms where this one takes 0.3 and the
bare exchange 0.2 (``bench/sessions.py``, ``agent_request_ms``): event-loop time that
every other conversation's model step waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from interpreter.errors import FileNotFound, InvalidRequest, SandboxError, StorageFull


@dataclass(frozen=True)
class KernelStatus:
    generation: int
    started_at: float  # wall-clock time the current kernel process started
    alive: bool
    last_exit: int | None


@dataclass(frozen=True)
class SandboxFile:
    path: str  # absolute inside the sandbox, e.g. /mnt/data/report.csv
    bytes: int
    mtime: float


log = logging.getLogger(__name__)

AGENT_CONNECTIONS = 4
CONNECT_TIMEOUT_S = 5.0
# The longest wait for the agent's next bytes.
READ_TIMEOUT_S = 30.0
# A kept-alive connection idle for longer is not used again: the agent drops one after
# 60 s, and a request sent as it does so would be lost.
REUSE_IDLE_S = 20.0
# The most a JSON answer may hold (a listing of very many files); more is not the agent.
MAX_JSON_BYTES = 64 << 20
READ_CHUNK = 1 << 20
# How long a removed or replaced agent socket may take to come back (the agent checks
# its path every second).
SOCKET_RETURN_S = 2.5


def plain_relative_path(relative: str) -> bool:
    """Whether ``relative`` names something below the data folder and nothing else."""
    segments = relative.split("/")
    return all(segment not in ("", ".", "..") and segment.isprintable() for segment in segments)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default=0.0)

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class _StaleConnection(Exception):
    """A kept-alive connection the agent had closed: the request never reached it."""


class AgentClient:
    def __init__(self, socket_path: Path, data_root: str = "/mnt/data") -> None:
        self._socket_path = socket_path
        self._data_root = data_root.rstrip("/")
        # The agent serves on a fixed number of threads (it may have no pid left to
        # start more); stay well below it.
        self._slots = asyncio.Semaphore(AGENT_CONNECTIONS)
        self._idle: list[_Connection] = []
        self._closed = False

    async def _check_socket(self) -> None:
        """Code in the sandbox can remove or replace the socket; the agent takes it back
        within a second, so give it a little longer than that before giving up."""
        deadline = asyncio.get_running_loop().time() + SOCKET_RETURN_S
        while True:
            try:
                if stat.S_ISSOCK(os.lstat(self._socket_path).st_mode):
                    return
                problem = "the sandbox agent's socket was replaced by something else"
            except OSError as exc:
                problem = f"the sandbox agent's socket is gone: {exc}"
            if asyncio.get_running_loop().time() > deadline:
                raise SandboxError(problem)
            await asyncio.sleep(0.05)

    async def _call(
        self, method: str, url: str, body: bytes = b"", limit: int | None = MAX_JSON_BYTES
    ) -> _Answer:
        """One request; an answer larger than ``limit`` bytes is refused unread."""
        await self._check_socket()
        head = (
            f"{method} {url} HTTP/1.1\r\nHost: sandbox\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            answer = await self._send(method, head, body, limit)
        except SandboxError as exc:
            raise SandboxError(f"the sandbox agent did not answer {method} {url}: {exc}") from exc
        if answer.status == 404 and url.startswith("/files/"):
            raise FileNotFound("No such file in the container.")
        if answer.status == 400:
            raise InvalidRequest(str(_json(answer).get("error", "bad request")))
        if answer.status == 507:
            raise StorageFull("The container's /mnt/data is full.")
        if answer.status >= 400:
            raise SandboxError(f"the sandbox agent answered {answer.status}")
        return answer

    async def _send(self, method: str, head: bytes, body: bytes, limit: int | None) -> _Answer:
        async with self._slots:
            while True:
                connection = self._reusable()
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                try:
                    answer, keep = await self._exchange(connection, head, body, limit)
                except _StaleConnection as exc:
                    connection.close()
                    # Closed by the agent as it sat idle: the request never reached it.
                    # Only a GET goes again, though: a change that did reach it (and
                    # then failed to answer) must not be made twice.
                    if reused and method == "GET":
                        continue
                    raise SandboxError("the connection closed before an answer") from exc
                except (OSError, ValueError, EOFError, TimeoutError) as exc:
                    connection.close()
                    raise SandboxError(f"{type(exc).__name__} {exc}".strip()) from exc
                except BaseException:
                    connection.close()  # cancelled halfway: the connection is unusable
                    raise
                if keep and not self._closed:
                    connection.idle_since = asyncio.get_running_loop().time()
                    self._idle.append(connection)
                else:
                    connection.close()
                return answer

    def _reusable(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()
            fresh = now - connection.idle_since < REUSE_IDLE_S
            if fresh and not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise SandboxError("the client is closed (the sandbox was removed)")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(self._socket_path))
        except (OSError, TimeoutError) as exc:
            raise SandboxError(f"cannot connect: {type(exc).__name__} {exc}".strip()) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, limit: int | None
    ) -> tuple[_Answer, bool]:
        """Send a request and read its answer; whether the connection can be kept."""
        loop = asyncio.get_running_loop()
        reader, writer = connection.reader, connection.writer
        async with asyncio.timeout(READ_TIMEOUT_S) as timeout:
            sent = True
            try:
                writer.write(head)
                if body:
                    writer.write(body)
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                # The agent may have answered before reading the whole body (a full
                # /mnt/data, a refused path) and closed: its answer is still to be read.
                sent = False
            try:
                answer_head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise EOFError("the answer ended in its headers") from exc
                raise _StaleConnection() from exc
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnection() from exc
            except asyncio.LimitOverrunError as exc:
                raise ValueError("the answer's headers are too long") from exc
            version, status, headers = _parse_head(answer_head)
            keep = (
                sent and version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            )
            if "transfer-encoding" in headers:
                raise ValueError("the answer is not sent as the agent sends one")
            if "content-length" not in headers:
                # Everything until the connection closes (HTTP/1.0's way).
                chunks, size = [], 0
                while chunk := await reader.read(READ_CHUNK):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise ValueError(f"the answer is larger than {limit} bytes")
                    chunks.append(chunk)
                    timeout.reschedule(loop.time() + READ_TIMEOUT_S)
                return _Answer(status, b"".join(chunks)), False
            length = int(headers["content-length"])
            if length < 0 or (limit is not None and length > limit):
                raise ValueError(f"the answer's length {length} is refused")
            chunks = []
            while length > 0:
                chunk = await reader.readexactly(min(length, READ_CHUNK))
                chunks.append(chunk)
                length -= len(chunk)
                timeout.reschedule(loop.time() + READ_TIMEOUT_S)
        return _Answer(status, b"".join(chunks)), keep

    def _file_url(self, path: str) -> str:
        relative = path.removeprefix(self._data_root + "/").lstrip("/")
        if not plain_relative_path(relative):
            raise InvalidRequest(f"Not a path inside {self._data_root}: {path!r}")
        return "/files/" + quote(relative)

    async def health(self) -> KernelStatus:
        body = _json(await self._call("GET", "/health"))
        try:
            kernel = body["kernel"]
            return KernelStatus(
                int(kernel["generation"]),
                float(kernel["started_at"]),
                bool(kernel["alive"]),
                None if kernel["last_exit"] is None else int(kernel["last_exit"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxError(f"the sandbox agent's health is unreadable: {exc!r}") from exc

    async def interrupt(self) -> bool:
        return _json(await self._call("POST", "/kernel/interrupt")).get("interrupted") is True

    async def restart(self) -> str:
        """Restart the kernel; return what the ended processes were doing, in words."""
        answer = _json(await self._call("POST", "/kernel/restart"))
        if not isinstance(answer.get("generation"), int):
            raise SandboxError("the sandbox agent's answer to a restart is unreadable")
        return str(answer.get("ended", ""))

    async def list_files(self) -> list[SandboxFile]:
        listed = _json(await self._call("GET", "/files")).get("files")
        found = []
        for entry in listed if isinstance(listed, list) else []:
            file = self._sandbox_file(entry)
            if file is None:
                log.warning("ignoring a file the sandbox listed as %r", entry)
            else:
                found.append(file)
        return found

    def _sandbox_file(self, entry: Any) -> SandboxFile | None:
        """A listed file, or None when the entry is not one the agent would send."""
        try:
            path, size, mtime = entry["path"], entry["bytes"], entry.get("mtime", 0.0)
        except (KeyError, TypeError, AttributeError):
            return None
        if not (
            isinstance(path, str)
            and path.startswith("/")
            and plain_relative_path(path[1:])
            and isinstance(size, int)
            and isinstance(mtime, int | float)
        ):
            return None
        return SandboxFile(self._data_root + path, size, float(mtime))

    async def write_file(self, path: str, content: bytes) -> SandboxFile:
        url = self._file_url(path)
        written = self._sandbox_file(_json(await self._call("PUT", url, content)))
        if written is None:
            raise SandboxError("the sandbox agent's answer to an upload is unreadable")
        return written

    async def read_file(self, path: str, limit: int | None = None) -> bytes:
        """A file's content; one longer than ``limit`` bytes (more than /mnt/data holds:
        not the agent answering) is an error."""
        return (await self._call("GET", self._file_url(path), limit=limit)).body

    async def delete_file(self, path: str) -> None:
        await self._call("DELETE", self._file_url(path))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    """The status line and headers of an answer; ValueError if they are not HTTP's."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("the answer is not HTTP")
    status = int(rest.partition(" ")[0])
    headers = {}
    for line in lines[1:]:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError("the answer's headers are malformed")
            headers[name.strip().lower()] = value.strip()
    return version, status, headers


def _json(answer: _Answer) -> dict[str, Any]:
    try:
        body = json.loads(answer.body)
    except ValueError as exc:
        raise SandboxError("the sandbox agent's answer is not JSON") from exc
    if not isinstance(body, dict):
        raise SandboxError("the sandbox agent's answer is not a JSON object")
    return body
