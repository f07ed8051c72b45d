"""A client for the sandbox agent's HTTP API on its unix socket (see sandbox_image/agent.py).

The agent runs inside the sandbox, beside code that may be hostile, and its socket lies
in a folder that code can write: nothing it answers is trusted. Paths are checked before
they are sent (a path with ``..`` would be normalised by the HTTP client into another
request altogether), paths it lists are checked before they are used, an answer that is
not what the agent sends is a ``SandboxError``, and the socket must still be a socket,
not a link that the sandbox put there to point the service at one of the host's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

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
# How long a removed or replaced agent socket may take to come back (the agent checks
# its path every second).
SOCKET_RETURN_S = 2.5


def plain_relative_path(relative: str) -> bool:
    """Whether ``relative`` names something below the data folder and nothing else."""
    segments = relative.split("/")
    return all(segment not in ("", ".", "..") and segment.isprintable() for segment in segments)


class AgentClient:
    def __init__(self, socket_path: Path, data_root: str = "/mnt/data") -> None:
        self._socket_path = socket_path
        self._data_root = data_root.rstrip("/")
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://sandbox",
            timeout=httpx.Timeout(30.0, connect=5.0),
            # The agent serves on a fixed number of threads (it may have no pid left
            # to start more); stay well below it.
            limits=httpx.Limits(max_connections=AGENT_CONNECTIONS),
        )

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

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        await self._check_socket()
        try:
            response = await self._client.request(method, url, **kwargs)
        except (httpx.HTTPError, RuntimeError) as exc:
            # RuntimeError: this client was closed, as the sandbox was removed meanwhile.
            raise SandboxError(
                f"the sandbox agent did not answer {method} {url}: {type(exc).__name__} {exc}"
            ) from exc
        if response.status_code == 404 and url.startswith("/files/"):
            raise FileNotFound("No such file in the container.")
        if response.status_code == 400:
            raise InvalidRequest(str(_json(response).get("error", "bad request")))
        if response.status_code == 507:
            raise StorageFull("The container's /mnt/data is full.")
        if response.status_code >= 400:
            raise SandboxError(f"the sandbox agent answered {response.status_code}")
        return response

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

    async def restart(self) -> int:
        generation = _json(await self._call("POST", "/kernel/restart")).get("generation")
        if not isinstance(generation, int):
            raise SandboxError("the sandbox agent's answer to a restart is unreadable")
        return generation

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

    async def write_file(self, path: str, content: bytes | AsyncIterator[bytes]) -> SandboxFile:
        url = self._file_url(path)
        written = self._sandbox_file(_json(await self._call("PUT", url, content=content)))
        if written is None:
            raise SandboxError("the sandbox agent's answer to an upload is unreadable")
        return written

    async def read_file(self, path: str) -> bytes:
        return (await self._call("GET", self._file_url(path))).content

    async def delete_file(self, path: str) -> None:
        await self._call("DELETE", self._file_url(path))

    async def close(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise SandboxError("the sandbox agent's answer is not JSON") from exc
    if not isinstance(body, dict):
        raise SandboxError("the sandbox agent's answer is not a JSON object")
    return body
