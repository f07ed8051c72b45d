"""``python -m interpreter mcp``: the MCP tools over stdin and stdout, for desktop clients
(Claude Desktop, Cursor) that start a command and talk to it.

The process runs its own sessions on the local Docker engine rather than calling a
running service: a desktop client starts the command when it opens and expects it to
work alone, with nothing else to start first, and one process is one agent, whose
container lives as long as the process (or until it idles out). An agent that should
share containers with the chat page, or with other clients, connects to a service's
``/mcp`` over HTTP instead.

Its sandboxes carry a service name and folders of their own (with the process id), so
they never mix with a running service's or another client's; it ends them when it
exits, and at start removes what earlier processes that were killed left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from pathlib import Path

from interpreter.config import Settings
from interpreter.mcp.http import new_server
from interpreter.mcp.tools import SandboxTools
from interpreter.metrics import Metrics
from interpreter.preflight import sandbox_backend
from interpreter.sessions.manager import SessionManager

log = logging.getLogger(__name__)

MCP_DATA = "mcp"


def own_settings(settings: Settings, pid: int) -> Settings:
    """The settings of the stdio process ``pid``: its own names and folders. One agent
    needs one warm sandbox, unless INTERPRETER_POOL_SIZE says otherwise."""
    update: dict[str, object] = {
        "service_name": f"{settings.service_name}-mcp-{pid}",
        "data_dir": settings.data_dir / MCP_DATA / str(pid),
        # Beside the service's run folder, not in it: the service removes stray folders
        # from its own.
        "run_root": settings.run_root.with_name(f"{settings.run_root.name}-mcp-{pid}"),
    }
    if "pool_size" not in settings.model_fields_set:
        update["pool_size"] = 1
    return settings.model_copy(update=update)


def _dead_processes(root: Path) -> list[int]:
    """Stdio processes, by the folders they left, that are no longer running."""
    if not root.is_dir():
        return []
    return [
        int(folder.name)
        for folder in root.iterdir()
        if re.fullmatch(r"\d+", folder.name) and not Path(f"/proc/{folder.name}").exists()
    ]


def _remove_folders(settings: Settings) -> None:
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        settings.run_root.rmdir()  # empty once its sandboxes are destroyed


async def _remove_leftovers(settings: Settings) -> None:
    """Sandboxes and folders of stdio processes that died without cleaning up."""
    for pid in await asyncio.to_thread(_dead_processes, settings.data_dir / MCP_DATA):
        dead = own_settings(settings, pid)
        log.info("removing the sandboxes of stdio process %d, which has gone", pid)
        backend = await asyncio.to_thread(sandbox_backend, dead)
        try:
            for record in await backend.list():
                await backend.destroy(record.id)
        finally:
            await backend.close()
        await asyncio.to_thread(_remove_folders, dead)


async def serve(settings: Settings) -> None:
    """Serve the tools on stdin/stdout until the client closes them."""
    await _remove_leftovers(settings)
    mine = own_settings(settings, os.getpid())
    backend = await asyncio.to_thread(sandbox_backend, mine)
    manager = SessionManager(mine, backend, Metrics())
    try:
        await manager.start()
        # No keys over stdio: whoever can start the process owns its containers.
        server = new_server(SandboxTools(lambda: manager, lambda headers: None))
        await server.run_stdio_async()
    finally:
        await manager.close(end_sessions=True)
        await backend.close()
        await asyncio.to_thread(_remove_folders, mine)
