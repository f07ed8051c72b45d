"""A client for the sandbox agent's HTTP API on its unix socket (see sandbox_image/agent.py)."""

from __future__ import annotations

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


AGENT_CONNECTIONS = 4


class AgentClient:
    def __init__(self, socket_path: Path, data_root: str = "/mnt/data") -> None:
        self._data_root = data_root.rstrip("/")
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://sandbox",
            timeout=httpx.Timeout(30.0, connect=5.0),
            # The agent serves on a fixed number of threads (it may have no pid left
            # to start more); stay well below it.
            limits=httpx.Limits(max_connections=AGENT_CONNECTIONS),
        )

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except (httpx.HTTPError, RuntimeError) as exc:
            # RuntimeError: this client was closed, as the sandbox was removed meanwhile.
            raise SandboxError(f"the sandbox agent did not answer: {exc}") from exc
        if response.status_code == 404 and url.startswith("/files/"):
            raise FileNotFound("No such file in the container.")
        if response.status_code == 400:
            raise InvalidRequest(response.json().get("error", "bad request"))
        if response.status_code == 507:
            raise StorageFull("The container's /mnt/data is full.")
        if response.status_code >= 400:
            raise SandboxError(f"the sandbox agent answered {response.status_code}")
        return response

    def _file_url(self, path: str) -> str:
        relative = path.removeprefix(self._data_root + "/").lstrip("/")
        return "/files/" + quote(relative)

    async def health(self) -> KernelStatus:
        kernel = (await self._call("GET", "/health")).json()["kernel"]
        return KernelStatus(
            kernel["generation"], kernel["started_at"], kernel["alive"], kernel["last_exit"]
        )

    async def interrupt(self) -> bool:
        return bool((await self._call("POST", "/kernel/interrupt")).json()["interrupted"])

    async def restart(self) -> int:
        return int((await self._call("POST", "/kernel/restart")).json()["generation"])

    async def list_files(self) -> list[SandboxFile]:
        files = (await self._call("GET", "/files")).json()["files"]
        return [SandboxFile(self._data_root + f["path"], f["bytes"], f["mtime"]) for f in files]

    async def write_file(self, path: str, content: bytes | AsyncIterator[bytes]) -> SandboxFile:
        body = (await self._call("PUT", self._file_url(path), content=content)).json()
        return SandboxFile(self._data_root + body["path"], body["bytes"], 0.0)

    async def read_file(self, path: str) -> bytes:
        return (await self._call("GET", self._file_url(path))).content

    async def delete_file(self, path: str) -> None:
        await self._call("DELETE", self._file_url(path))

    async def close(self) -> None:
        await self._client.aclose()
