"""``python -m model_runner serve --model SPEC``: serve a model over HTTP."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from model_runner.errors import ModelRunnerError
from model_runner.loading import load_generator
from model_runner.startup import freeze_startup_objects, warm_up

#: When told to stop, generations still streaming get this long before they are cut.
GRACEFUL_SHUTDOWN_S = 5


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from model_runner.server import create_app

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options: dict[str, object] = {}
    if "://" not in args.model:  # a model in this process, not a served one
        if args.cache_budget_mb is not None:
            options["cache_budget_bytes"] = int(args.cache_budget_mb * 1024**2)
        if args.device:
            options["device"] = args.device
        if args.max_batch:
            options["max_batch"] = args.max_batch
        if args.context_length:
            options["context_length"] = args.context_length
        if args.threads:  # else the demo model would set its own one thread again
            options["cpu_threads"] = args.threads
    if args.name:
        options["name"] = args.name
    parent = _Parent(args.control_fd, args.uds) if args.control_fd is not None else None
    try:
        generator = load_generator(args.model, **options)
        if "://" not in args.model:
            warm_up(generator)  # a failure here is reported as a failure to load
    except ModelRunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if parent is not None:
            parent.report(exc)
        return 2
    logging.getLogger(__name__).info("serving %s", generator.name)
    app = create_app(generator)
    freeze_startup_objects()
    if not args.uds:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        return 0
    config = uvicorn.Config(
        app, uds=args.uds, log_level=args.log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
    )
    server = uvicorn.Server(config)
    if parent is not None:
        parent.serving(server)
    server.run()
    if parent is not None and parent.gone.is_set():
        parent.remove_socket_folder()
    return 0


class _Parent:
    """The process that started this runner (``model_runner.process``), over a socket
    it handed down: a start-up failure is written to it, and when it closes (the parent
    ended, however) this runner stops: at once while the model loads, after its
    graceful shutdown once it serves. Nobody is then left to remove the socket's
    folder, which the parent made for it, so the runner does."""

    def __init__(self, fd: int, uds: str | None) -> None:
        self.socket = socket.socket(fileno=fd)
        self.uds = uds
        self.gone = threading.Event()
        self._server: Any = None
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="parent-watch", daemon=True).start()

    def report(self, exc: ModelRunnerError) -> None:
        line = json.dumps({"code": exc.code, "message": str(exc)}) + "\n"
        with contextlib.suppress(OSError):
            self.socket.sendall(line.encode())

    def serving(self, server: Any) -> None:
        """From now on, stop through ``server`` (a ``uvicorn.Server``)."""
        with self._lock:
            self._server = server
            if self.gone.is_set():
                server.should_exit = True

    def remove_socket_folder(self) -> None:
        if self.uds is not None:
            Path(self.uds).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                Path(self.uds).parent.rmdir()

    def _watch(self) -> None:
        with contextlib.suppress(OSError):
            while self.socket.recv(1):
                pass
        with self._lock:
            self.gone.set()
            if self._server is not None:
                self._server.should_exit = True
                return
        # Still loading: nothing to wind down.
        self.remove_socket_folder()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_runner")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve a model over HTTP (native, vLLM and SGLang token APIs)"
    )
    serve.add_argument("--model", required=True, help="demo, random:tiny, a folder, a hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--uds", default=None, help="listen on this unix socket instead")
    serve.add_argument(
        "--control-fd",
        type=int,
        default=None,
        help="an inherited socket: start-up errors are written to it, and the runner "
        "stops when it closes (used by model_runner.process)",
    )
    serve.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    serve.add_argument("--name", default=None, help="the model name to report")
    serve.add_argument(
        "--cache-budget-mb",
        type=float,
        default=None,
        help="key/value slot memory (default: 512 on a CPU, half the free GPU memory)",
    )
    serve.add_argument("--max-batch", type=int, default=0, help="generations per step")
    serve.add_argument(
        "--context-length", type=int, default=0, help="tokens a slot holds (default 8192)"
    )
    serve.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)"
    )
    serve.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
