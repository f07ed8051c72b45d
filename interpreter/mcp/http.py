"""The MCP tools over streamable HTTP at ``/mcp``, on the service's own FastAPI app and
its own sessions, behind the same API keys as ``/v1`` (``Authorization: Bearer``): a
container created over MCP belongs to the key, exactly as one created over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from interpreter.api.auth import Unauthorized, current_owner, owner_of_key
from interpreter.api.errors import error_response
from interpreter.mcp.tools import SandboxTools

PATH = "/mcp"
INSTRUCTIONS = (
    "Each tool works on a sandbox container holding a Python (Jupyter) kernel, with "
    "files in /mnt/data and no network. Without a container_id, tools use this MCP "
    "session's container, so variables persist from one call to the next."
)


def new_server(tools: SandboxTools) -> MCPServer:
    server = MCPServer("code-interpreter", instructions=INSTRUCTIONS)
    tools.register(server)
    return server


class _BearerKeys:
    """Lets a request through only with one of the service's keys, when it has any;
    refused ones get the service's own 401 in OpenAI's error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await current_owner(Request(scope))
        except Unauthorized as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount(app: FastAPI, host: str) -> contextlib.AbstractAsyncContextManager[None]:
    """Serve the tools at ``/mcp`` on ``app``; the returned context runs the MCP
    session manager and must be entered in the app's lifespan, after its sessions exist."""

    def owner_of(headers: Mapping[str, str] | None) -> str | None:
        # The guard has checked the key already: here it only names the owner.
        if not app.state.api_keys or headers is None:
            return None
        _, _, token = headers.get("authorization", "").partition(" ")
        return owner_of_key(token.strip())

    server = new_server(SandboxTools(lambda: app.state.sessions, owner_of))
    # Builds the SDK's session manager (with its DNS-rebinding protection for a loopback
    # host); its own Starlette app is not used: the route goes on ours.
    server.streamable_http_app(streamable_http_path=PATH, host=host)
    endpoint = _BearerKeys(StreamableHTTPASGIApp(server.session_manager))
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    return running()
