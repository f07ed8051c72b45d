"""The agent client's own HTTP, against servers on a unix socket that behave as the
agent does and as it must not: kept-alive connections that the server has let go are
replaced without losing the request, and an answer that is not the agent's is an error.
(The client against the real agent: every sandbox test.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from interpreter.errors import SandboxError, StorageFull
from interpreter.sandboxes import agent as agent_module
from interpreter.sandboxes.agent import AgentClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

HEALTH = {"kernel": {"generation": 3, "started_at": 1.0, "alive": True, "last_exit": None}}


def answer(body: object, *headers: str) -> bytes:
    data = json.dumps(body).encode()
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(data)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Awaitable[AgentClient]]]:
    servers: list[asyncio.AbstractServer] = []
    clients: list[AgentClient] = []

    async def start(handler: Handler) -> AgentClient:
        async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except asyncio.IncompleteReadError:
                pass  # the client closed the connection
            finally:
                writer.close()

        path = tmp_path / f"agent{len(servers)}.sock"
        servers.append(await asyncio.start_unix_server(closing, str(path)))
        clients.append(AgentClient(path))
        return clients[-1]

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_connection_the_agent_let_go_is_replaced(serve) -> None:  # type: ignore[no-untyped-def]
    connections = requests = 0

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections, requests
        connections += 1
        await read_request(reader)
        requests += 1
        writer.write(answer(HEALTH))  # kept alive, as far as the client can tell...
        await writer.drain()
        writer.close()  # ...but closed, as the agent closes an idle one

    client = await serve(one_answer_then_close)
    for _ in range(3):
        assert (await client.health()).generation == 3
    assert requests == 3 and connections == 3


async def test_kept_alive_connections_are_used_again(serve) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            request = await read_request(reader)
            body = {"files": [{"path": "/a.txt", "bytes": 1, "mtime": 0}]}
            writer.write(answer(body if b"GET /files " in request else HEALTH))
            await writer.drain()

    client = await serve(keep_alive)
    for _ in range(5):
        assert [f.path for f in await client.list_files()] == ["/mnt/data/a.txt"]
        assert (await client.health()).alive
    assert connections == 1


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\nX" + b"x" * 70_000 + b"\r\n\r\n",
        b"",
    ],
)
async def test_an_answer_that_is_not_the_agents_is_an_error(serve, reply: bytes) -> None:  # type: ignore[no-untyped-def]
    async def lie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    client = await serve(lie)
    with pytest.raises(SandboxError, match="the sandbox agent"):
        await client.health()


async def test_an_agent_that_never_answers_times_out(
    serve,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(agent_module, "READ_TIMEOUT_S", 0.2)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes

    client = await serve(silent)
    with pytest.raises(SandboxError, match="TimeoutError"):
        await client.health()


@pytest.mark.parametrize("reads_the_body", [True, False])
async def test_a_refused_upload_is_never_sent_twice(serve, reads_the_body: bool) -> None:  # type: ignore[no-untyped-def]
    """The agent answers a full /mnt/data after reading what is left of the body (the
    answer then arrives); a server that does not read it resets the connection, and the
    answer may be lost. Either way the upload is not sent again."""
    puts = 0

    async def full_disk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal puts
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"PUT"):
                puts += 1
                if reads_the_body:
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                data = b'{"error": "No space left on device"}'
                writer.write(b"HTTP/1.1 507 Full\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()
                if not reads_the_body:
                    return
                continue
            writer.write(answer(HEALTH))
            await writer.drain()

    client = await serve(full_disk)
    await client.health()  # the upload goes on this kept-alive connection
    refused = StorageFull if reads_the_body else SandboxError
    with pytest.raises(refused):
        await client.write_file("/mnt/data/big.bin", b"x" * (32 << 20))
    assert puts == 1
    assert (await client.health()).alive
