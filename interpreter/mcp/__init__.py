"""The sandboxes as MCP tools, on the official ``mcp`` SDK.

``tools`` defines the tools over a ``SessionManager`` (create a container, execute, upload,
download and list files, interrupt, restart) and which container an MCP session uses;
``http`` serves them at ``/mcp`` on the service's own app, behind its API keys;
``stdio`` serves them over stdin/stdout from a process that runs its own sessions.
Imports ``sessions`` and ``api.auth``; only ``api.app`` and ``__main__`` import it.
"""
