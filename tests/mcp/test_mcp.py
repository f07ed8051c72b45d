"""The MCP server, end to end: the official MCP SDK's own client against the real server
over both transports, streamable HTTP at /mcp (behind the service's API keys) and stdio
(``python -m interpreter mcp`` as a subprocess), with real sandboxes."""

from __future__ import annotations

import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import docker
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, EmbeddedResource, ImageContent, TextContent

from interpreter.api.app import create_app
from interpreter.mcp import stdio
from interpreter.preflight import sandbox_backend
from interpreter.sandboxes.base import SandboxSpec
from tests.conftest import REPO, RunningServer, wait_until

pytestmark = [pytest.mark.docker]

TOOLS = {
    "create_container",
    "execute",
    "upload_file",
    "download_file",
    "list_files",
    "interrupt",
    "restart",
}
PNG = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"


@contextlib.asynccontextmanager
async def http_client(url: str, key: str, mode: str = "legacy") -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP with a bearer key. ``legacy`` speaks the
    handshake revisions (with MCP sessions), as desktop clients do today."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=300)
        ) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def run(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    return await client.call_tool(tool, arguments)


def test_over_http_with_keys_a_session_keeps_its_container(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> None:
    server = serve(create_app(make_settings(api_keys="key-a,key-b"), cleanup_on_exit=True))
    url = f"{server.base_url}/mcp"
    refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"

    async def scenario() -> None:
        async with http_client(url, "key-a") as agent:
            assert {tool.name for tool in (await agent.list_tools()).tools} == TOOLS
            # No container_id: the MCP session's own container, made at first use.
            first = await run(agent, "execute", code="x = 21\nprint('set')")
            assert not first.is_error and text_of(first) == "set\n"
            container_id = first.structured_content["container_id"]
            doubled = await run(agent, "execute", code="x * 2")
            assert doubled.structured_content["container_id"] == container_id
            assert text_of(doubled) == "42"
            assert doubled.structured_content["outputs"][0]["type"] == "result"
            # An image is image content; an exception in the code is an output, not a
            # tool error.
            plotted = await run(agent, "execute", code=PNG)
            images = [b for b in plotted.content if isinstance(b, ImageContent)]
            assert len(images) == 1 and images[0].mime_type == "image/png"
            assert base64.b64decode(images[0].data)[:8] == b"\x89PNG\r\n\x1a\n"
            raised = await run(agent, "execute", code="1 / 0")
            assert not raised.is_error and "ZeroDivisionError" in text_of(raised)
            assert raised.structured_content["status"] == "error"

            # Files in and out.
            uploaded = await run(agent, "upload_file", filename="data.csv", content="a,b\n1,2\n")
            assert uploaded.structured_content["path"] == "/mnt/data/data.csv"
            read = await run(
                agent,
                "execute",
                code="import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv').b.sum())\n"
                + PNG.replace("plt.show()", "plt.savefig('/mnt/data/plot.png')"),
            )
            assert text_of(read).startswith("2\n")
            listed = await run(agent, "list_files")
            paths = {f["path"] for f in listed.structured_content["files"]}
            assert paths == {"/mnt/data/data.csv", "/mnt/data/plot.png"}
            text = (await run(agent, "download_file", path="data.csv")).content[0]
            assert isinstance(text, EmbeddedResource)
            assert text.resource.text == "a,b\n1,2\n"  # type: ignore[union-attr]
            image = (await run(agent, "download_file", path="/mnt/data/plot.png")).content[0]
            assert isinstance(image, ImageContent) and image.mime_type == "image/png"

            # Interrupt code that is running (it signals its start with a file), then
            # restart: variables go, files stay.
            async with anyio.create_task_group() as group:
                slow: list[CallToolResult] = []

                async def sleep() -> None:
                    code = "import time\nopen('/mnt/data/started', 'w').close()\ntime.sleep(60)"
                    slow.append(await run(agent, "execute", code=code))

                group.start_soon(sleep)
                files_url = f"{server.v1}/containers/{container_id}/files"
                headers = {"Authorization": "Bearer key-a"}
                async with httpx.AsyncClient(headers=headers) as rest:
                    for _ in range(600):
                        listed = (await rest.get(files_url)).json()["data"]
                        if any(f["path"] == "/mnt/data/started" for f in listed):
                            break
                        await anyio.sleep(0.05)
                    else:
                        raise AssertionError("the code never started")
                stopped = await run(agent, "interrupt")
                assert stopped.structured_content == {
                    "container_id": container_id,
                    "interrupted": True,
                }
            assert "KeyboardInterrupt" in text_of(slow[0])
            assert not (await run(agent, "restart")).is_error
            gone = await run(agent, "execute", code="print(x)")
            assert "NameError" in text_of(gone)
            assert "/mnt/data/data.csv" in {
                f["path"] for f in (await run(agent, "list_files")).structured_content["files"]
            }

        # Another key: its own session and container; the first key's is unknown to it.
        async with http_client(url, "key-b") as other:
            mine = await run(other, "execute", code="print('x' in globals())")
            assert text_of(mine) == "False\n"
            assert mine.structured_content["container_id"] != container_id
            foreign = await run(other, "execute", code="1", container_id=container_id)
            assert foreign.is_error and "not_found: No container found" in text_of(foreign)
            unknown = await run(other, "list_files", container_id="cntr_nope")
            assert unknown.is_error
            assert text_of(unknown) == (
                "Error executing tool list_files: "
                "not_found: No container found with id 'cntr_nope'."
            )

        # The 2026-07-28 revision has no sessions: the container is named in each call.
        async with http_client(url, "key-a", mode="auto") as stateless:
            refused = await run(stateless, "execute", code="1")
            assert refused.is_error and "create_container" in text_of(refused)
            made = await run(stateless, "create_container", name="explicit")
            named = made.structured_content["container_id"]
            ran = await run(stateless, "execute", code="y = 7", container_id=named)
            assert not ran.is_error
            again = await run(stateless, "execute", code="print(y)", container_id=named)
            assert text_of(again) == "7\n"

    anyio.run(scenario)


def test_over_stdio_alone(make_settings: Callable[..., Any], tmp_path: Path) -> None:
    """The stdio server runs its own sessions (no service runs here), ends them when it
    exits, and first removes what a stdio process that was killed left behind."""
    settings = make_settings(pool_size=0, preimport="")
    engine = docker.from_env()

    def left() -> set[str]:
        """This test's sandboxes, by service name."""
        names = set()
        for container in engine.containers.list(
            all=True, filters={"label": "code-interpreter.service"}, sparse=True
        ):
            name = (container.attrs.get("Labels") or {})["code-interpreter.service"]
            if name.startswith(settings.service_name):
                names.add(name)
        return names

    # A sandbox of a stdio process that is gone (no such pid), with its folders.
    dead_pid = next(p for p in range(999_999, 0, -1) if not Path(f"/proc/{p}").exists())
    dead = stdio.own_settings(settings, dead_pid)
    dead.data_dir.mkdir(parents=True)
    backend = sandbox_backend(dead)
    anyio.run(backend.create, SandboxSpec(2**30, 1.0, 64, 2**26))
    anyio.run(backend.close)
    assert left() == {dead.service_name}

    env = {
        **os.environ,
        "INTERPRETER_DATA_DIR": str(settings.data_dir),
        "INTERPRETER_RUN_ROOT": str(settings.run_root),
        "INTERPRETER_SERVICE_NAME": settings.service_name,
        "INTERPRETER_POOL_SIZE": "0",
        "INTERPRETER_PREIMPORT": "",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "interpreter", "mcp"], env=env, cwd=REPO
    )

    async def scenario() -> None:
        with (tmp_path / "server.log").open("w") as log:
            async with Client(stdio_client(params, errlog=log)) as agent:
                first = await run(agent, "execute", code="x = 5")
                assert not first.is_error
                second = await run(agent, "execute", code="print(x * x)")
                assert text_of(second) == "25\n"
                unknown = await run(agent, "restart", container_id="cntr_nope")
                assert unknown.is_error and "not_found:" in text_of(unknown)
                running = await anyio.to_thread.run_sync(left)
                assert len(running) == 1 and dead.service_name not in running

    with contextlib.closing(engine):
        anyio.run(scenario)
        assert not dead.data_dir.exists() and not dead.run_root.exists()
        # The process ended its own sandbox on the way out.
        wait_until(lambda: not left(), timeout_s=30)
