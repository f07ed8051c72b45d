"""``python -m interpreter serve``: run the service with uvicorn.
``python -m interpreter mcp``: serve the sandboxes as MCP tools over stdin/stdout."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from interpreter.api.app import build_wire_types, create_app, load_model
from interpreter.config import Settings
from interpreter.errors import SandboxError
from interpreter.preflight import StartupRefused, sandbox_backend
from model_runner.errors import ModelRunnerError
from model_runner.startup import freeze_startup_objects


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C, while the model loads or after uvicorn's clean stop (which raises the
        # signal again so that the process ends as one stopped by it): end that way,
        # without the traceback Python would print.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m interpreter")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="default: INTERPRETER_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: INTERPRETER_PORT or 8000")
    serve.add_argument(
        "--cleanup-on-exit",
        action="store_true",
        help="end every session when the service stops (default: keep them for re-adoption)",
    )
    sub.add_parser(
        "mcp",
        help="serve the sandboxes as MCP tools over stdin/stdout (for desktop clients); "
        "runs its own sessions on the local Docker engine",
    )
    args = parser.parse_args(argv)
    if args.command == "mcp":
        _serve_mcp()
        return

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        sys.exit(f"Cannot start: {_setting_errors(exc)}.")
    if (
        not settings.api_key_set()
        and not _is_loopback(settings.host)
        and not settings.dangerously_expose_without_keys
    ):
        sys.exit(
            f"Refusing to listen on {settings.host} without API keys: anyone reaching it could "
            "run code. Set INTERPRETER_API_KEYS, or bind to 127.0.0.1, or set "
            "INTERPRETER_DANGEROUSLY_EXPOSE_WITHOUT_KEYS=true if something in front of the "
            "service authenticates."
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per request to the model's process or engine is noise at this level.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Before any port is bound or any sandbox made, settings that cannot work stop the
    # start with one sentence: the sandboxes' engine, image and limits first (quick),
    # then the model (a local one takes a while to load; a served one must answer).
    try:
        backend = sandbox_backend(settings)
    except StartupRefused as exc:
        sys.exit(f"Cannot start: {str(exc).rstrip('.')}.")
    try:
        generator = load_model(settings)
    except ModelRunnerError as exc:
        sys.exit(f"Cannot start with INTERPRETER_MODEL={settings.model}: {exc}")
    app = create_app(
        settings,
        backend=backend,
        generator=generator,
        cleanup_on_exit=args.cleanup_on_exit,
        warm_up_model=True,
    )
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")
    build_wire_types()
    freeze_startup_objects()
    GracefulServer(config, app).run()


def _setting_errors(exc: ValidationError) -> str:
    """Each bad setting as its variable, what it must be and what it was."""
    return "; ".join(
        f"INTERPRETER_{str(error['loc'][0]).upper()}: {error['msg']} (it is {error['input']!r})"
        for error in exc.errors()
    )


class GracefulServer(uvicorn.Server):
    """uvicorn, telling the service as soon as a stop is asked for: uvicorn waits for
    open connections to close before the app's own shutdown, and a streamed response
    stays open until it is told to end (with a final event rather than a cut)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        responses = getattr(self.app.state, "responses", None)
        if responses is not None:
            responses.begin_shutdown()
            # A model in a child process that exits from now on is not started again.
            stopping = getattr(responses.generator, "begin_shutdown", None)
            if stopping is not None:
                stopping()
        super().handle_exit(sig, frame)


def _serve_mcp() -> None:
    from interpreter.mcp.stdio import serve as serve_stdio

    # stdout is the protocol's: logs go to stderr, which desktop clients keep.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_stdio(Settings()))
    except StartupRefused as exc:
        sys.exit(f"Cannot serve MCP: {exc}")
    except SandboxError as exc:
        sys.exit(f"Cannot serve MCP: {exc.message}")


if __name__ == "__main__":
    main()
